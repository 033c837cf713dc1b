"""Which regional office a call belongs to: from the postcode an account was identified
with (its département's office), else from the caller's number (its geographic area).

    office_for(postcode="75011", caller=None, rule="account_then_number")   # "Urssaf Île-de-France"
    office_for(postcode=None, caller="+33 2 99 00 00 00", rule="number")     # "zone Nord-Ouest (02)"

The mapping is data (flows/data/offices.yaml), read once. A number gives only a
zone for 02 to 05 (each covers several regions), nothing for mobiles and non-geographic
numbers: an account's postcode, when there is one, is the better answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

__all__ = ["OFFICE_RULES", "departement", "national_number", "office_for", "office_for_departement", "office_for_number"]

DATA = Path(__file__).parent / "data" / "offices.yaml"
OFFICE_RULES = ("account_then_number", "account", "number")
_POSTCODE_RE = re.compile(r"(?:[0-9]{5}|2[AB][0-9]{3})")
_NATIONAL_RE = re.compile(r"0[1-9][0-9]{8}")
_OVERSEAS = ("971", "972", "973", "974", "975", "976", "977", "978")


@dataclass(frozen=True)
class _Offices:
    by_departement: dict[str, str]
    prefixes: tuple[tuple[str, str | None], ...]   # longest first
    country_codes: tuple[str, ...]                 # longest first


@cache
def _offices() -> _Offices:
    raw = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    by_departement: dict[str, str] = {}
    for office, departements in raw["offices"].items():
        for dep in departements:
            dep = str(dep)
            if dep in by_departement:      # a typo that would silently move a département
                raise ValueError(f"{DATA.name}: département {dep} listed under two offices")
            by_departement[dep] = str(office)
    prefixes = sorted(((str(p), None if o is None else str(o)) for p, o in raw["phone_prefixes"].items()),
                      key=lambda item: (-len(item[0]), item[0]))
    codes = sorted((str(c) for c in raw["country_codes"]), key=lambda c: (-len(c), c))
    return _Offices(by_departement, tuple(prefixes), tuple(codes))


def departement(postcode: str | None) -> str | None:
    """The département of a French postcode: 2 characters ("75", "2A", "2B"), 3 overseas
    ("974"); None for anything that is not a postcode. Corsican postcodes (20xxx) are split
    as La Poste splits them: 200xx-201xx Corse-du-Sud, the rest Haute-Corse."""
    if postcode is None:
        return None
    code = postcode.replace(" ", "").upper()
    if _POSTCODE_RE.fullmatch(code) is None:
        return None
    if code[:2] in ("2A", "2B"):
        return code[:2]
    if code.startswith("20"):
        return "2A" if code[2] in "01" else "2B"
    if code.startswith(("97", "98")):
        return code[:3] if code[:3] in _OVERSEAS else None
    return None if code.startswith("00") else code[:2]


def office_for_departement(dep: str | None) -> str | None:
    return None if dep is None else _offices().by_departement.get(dep)


def national_number(caller: str | None) -> str | None:
    """A French number in national form ("0199000000") from what telephony gives: "+33 1 99
    00 00 00", "0033199000000", "+33 (0)1 99...", "sip:+33199000000@gateway", the overseas
    country codes (+262, +590, +594, +596); None if it is not a French number."""
    if not caller:
        return None
    text = caller.strip().lower()
    for scheme in ("sip:", "sips:", "tel:"):
        text = text.removeprefix(scheme)
    text = re.split(r"[@;]", text, maxsplit=1)[0]
    text = text.replace("(0)", "")
    text = re.sub(r"[\s.\-()/]", "", text)
    if text.startswith("+"):
        text = "00" + text[1:]
    if text.startswith("00"):
        rest = text[2:]
        for code in _offices().country_codes:
            if rest.startswith(code):
                text = "0" + rest[len(code):]
                break
        else:
            return None
    return text if _NATIONAL_RE.fullmatch(text) else None


def office_for_number(caller: str | None) -> str | None:
    """The office (or zone) of a geographic number's area; None for mobiles, non-geographic
    and foreign numbers."""
    number = national_number(caller)
    if number is None:
        return None
    for prefix, office in _offices().prefixes:
        if number.startswith(prefix):
            return office
    return None


def office_for(*, postcode: str | None, caller: str | None, rule: str) -> str | None:
    """The regional office of a call, by the configured rule (SupervisionSettings.office_rule):
    "account_then_number": the identified account's (from its postcode), else the caller
    number's area; "account": the account's only; "number": the number's only."""
    if rule not in OFFICE_RULES:
        raise ValueError(f"office rule must be one of {', '.join(OFFICE_RULES)}, got {rule!r}")
    account = office_for_departement(departement(postcode)) if rule != "number" else None
    if account is not None or rule == "account":
        return account
    return office_for_number(caller)
