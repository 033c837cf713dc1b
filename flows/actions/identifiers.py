"""SIRET and postcode checks, shared by the actions and the demo information system."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\d+")
# La Poste's establishments share SIREN 356000000 and use a digit-sum rule instead of Luhn.
LA_POSTE_SIREN = "356000000"


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        n = int(c)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def luhn_check_digit(digits: str) -> str:
    """The digit that, appended to `digits`, makes the whole Luhn-valid."""
    for d in "0123456789":
        if luhn_ok(digits + d):
            return d
    raise AssertionError("unreachable: one of ten digits always completes a Luhn number")


def normalize_digits(value: object) -> str:
    """Digits said or keyed with spaces, dots or dashes ("123 456 789 00012") -> "12345678900012"."""
    if value is None:
        return ""
    text = str(value)
    return "".join(_DIGITS.findall(text)) if re.fullmatch(r"[\d\s.\-]*", text) else ""


def siret_is_valid(siret: str) -> bool:
    """14 digits; SIREN (first 9) and SIRET both Luhn-valid, or La Poste's digit-sum rule."""
    if len(siret) != 14 or not siret.isdigit():
        return False
    if siret.startswith(LA_POSTE_SIREN):
        # Establishments: digit sum a multiple of 5; the head office keeps a Luhn key.
        return sum(int(c) for c in siret) % 5 == 0 or luhn_ok(siret)
    return luhn_ok(siret[:9]) and luhn_ok(siret)


def postcode_is_valid(postcode: str) -> bool:
    return len(postcode) == 5 and postcode.isdigit()
