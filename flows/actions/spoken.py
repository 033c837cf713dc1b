"""Amounts, dates and periods written the way a French TTS reads them well.

Amounts: "1 234,50 euros" (cents only when there are some); dates: "31 juillet 2026",
"1er mars 2026"; periods: "mars 2026", "deuxième trimestre 2026". The TTS front end
(voice/text_for_speech.py) turns these into words.
"""

from __future__ import annotations

from datetime import date

from flows.actions.deadlines import MONTHS, QUARTERS, spoken_date

__all__ = ["euros", "of_period", "percent_floor", "spoken_date", "spoken_period"]


def euros(cents: int) -> str:
    """12345050 -> "123 450,50 euros"; 100000 -> "1 000 euros"; 150 -> "1,50 euro"."""
    sign = "moins " if cents < 0 else ""
    whole, rest = divmod(abs(int(cents)), 100)
    grouped = f"{whole:,}".replace(",", " ")
    unit = "euro" if whole < 2 else "euros"   # French: plural from 2
    return f"{sign}{grouped},{rest:02d} {unit}" if rest else f"{sign}{grouped} {unit}"


def spoken_period(start: date, end: date) -> str:
    """A declaration period: a month ("mars 2026"), a quarter ("premier trimestre 2026")
    or, for anything else, its bounds."""
    if start.day == 1 and start.year == end.year:
        months = end.month - start.month + 1
        if months == 1:
            return f"{MONTHS[start.month - 1]} {start.year}"
        if months == 3 and start.month % 3 == 1:
            return f"{QUARTERS[start.month // 3]} trimestre {start.year}"
    return f"période du {spoken_date(start)} au {spoken_date(end)}"


def of_period(start: date, end: date) -> str:
    """"d'avril 2026", "de mars 2026", "du premier trimestre 2026", "de la période du ..."."""
    period = spoken_period(start, end)
    if period.startswith("période"):
        return f"de la {period}"
    if "trimestre" in period:
        return f"du {period}"
    return f"d'{period}" if period[0] in "aeiouéèêâ" else f"de {period}"


def percent_floor(part: int, whole: int) -> int:
    """Whole percent, rounded down: 79.6 % is said "79 %", never "80 %" below the alert."""
    return (100 * part) // whole if whole > 0 else 0
