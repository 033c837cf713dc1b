"""French business identifiers and postcodes: the one implementation of their checks, used
by the dialogue when the caller says or keys them (flows/slots.py), by the action server
and by the demo information system.

A SIRET is valid when its SIREN (first 9 digits) and the whole 14 digits both pass the Luhn
check: a misheard SIRET whose 14 digits happen to pass while its SIREN does not is refused
at the read-back, not later as a failed identification. La Poste's establishments share
SIREN 356000000, too many for the Luhn key: INSEE checks instead that their digit sum is a
multiple of 5; only the head office keeps a Luhn key.
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\d+")
LA_POSTE_SIREN = "356000000"
LA_POSTE_HEAD_OFFICE = "35600000000048"


def _digits_only(text: str, length: int) -> bool:
    return len(text) == length and text.isascii() and text.isdigit()


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


def siren_is_valid(siren: str) -> bool:
    return _digits_only(siren, 9) and luhn_ok(siren)


def siret_is_valid(siret: str) -> bool:
    if not _digits_only(siret, 14):
        return False
    if siret.startswith(LA_POSTE_SIREN):
        return siret == LA_POSTE_HEAD_OFFICE or sum(map(int, siret)) % 5 == 0
    return siren_is_valid(siret[:9]) and luhn_ok(siret)


def normalize_digits(value: object) -> str:
    """Digits said or keyed with spaces, dots or dashes ("123 456 789 00012") -> "12345678900012"."""
    if value is None:
        return ""
    text = str(value)
    return "".join(_DIGITS.findall(text)) if re.fullmatch(r"[\d\s.\-]*", text) else ""


def postcode_is_valid(postcode: str) -> bool:
    return _digits_only(postcode, 5)
