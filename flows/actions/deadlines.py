"""Turnover declaration deadlines of micro-entrepreneurs (source: autoentrepreneur.urssaf.fr)."""

from __future__ import annotations

import calendar
from datetime import date

MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
          "septembre", "octobre", "novembre", "décembre")
QUARTERS = ("premier", "deuxième", "troisième", "quatrième")


def _end_of_month(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def next_quarterly_deadline(today: date) -> tuple[date, int, int]:
    """(deadline, quarter, year of the quarter) of the next quarterly declaration."""
    # Q1 -> 30 April, Q2 -> 31 July, Q3 -> 31 October, Q4 -> 31 January of the next year.
    candidates = []
    for year in (today.year - 1, today.year):
        candidates += [
            (date(year, 4, 30), 1, year),
            (date(year, 7, 31), 2, year),
            (date(year, 10, 31), 3, year),
            (date(year + 1, 1, 31), 4, year),
        ]
    return min((c for c in candidates if c[0] >= today), key=lambda c: c[0])


def next_monthly_deadline(today: date) -> tuple[date, int, int]:
    """(deadline, month, year of the month) of the next monthly declaration."""
    previous = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    deadline = _end_of_month(today.year, today.month)
    return deadline, previous[1], previous[0]


def _of(word: str) -> str:
    return f"d'{word}" if word[0] in "aeiouéèêâ" else f"de {word}"


def spoken_date(d: date) -> str:
    day = "1er" if d.day == 1 else str(d.day)
    return f"{day} {MONTHS[d.month - 1]} {d.year}"


def deadlines_text(today: date) -> list[str]:
    q_deadline, quarter, q_year = next_quarterly_deadline(today)
    m_deadline, month, m_year = next_monthly_deadline(today)
    return [
        (f"Si vous déclarez chaque trimestre, la prochaine échéance est le {spoken_date(q_deadline)}, "
        f"pour le {QUARTERS[quarter - 1]} trimestre {q_year}."),
        (f"Si vous déclarez chaque mois, déclarez le chiffre d'affaires {_of(MONTHS[month - 1])} {m_year} "
        f"au plus tard le {spoken_date(m_deadline)}."),
        "Même sans chiffre d'affaires, la déclaration est obligatoire : déclarez zéro.",
    ]
