"""Declaration periods (months or calendar quarters) and their deadlines.

A micro-entrepreneur declares each period by the last day of the month that follows
it: a month by the end of the next month, a quarter by 30 April, 31 July, 31 October
and 31 January (flows/actions/deadlines.py says the same to callers).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import date

Period = tuple[date, date]


def end_of_month(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + n
    return index // 12, index % 12 + 1


def period_containing(frequency: str, day: date) -> Period:
    if frequency == "monthly":
        return date(day.year, day.month, 1), end_of_month(day.year, day.month)
    if frequency == "quarterly":
        first = 3 * ((day.month - 1) // 3) + 1
        return date(day.year, first, 1), end_of_month(day.year, first + 2)
    raise ValueError(f"unknown declaration frequency {frequency!r}")


def next_period(frequency: str, period: Period) -> Period:
    year, month = _add_months(period[1].year, period[1].month, 1)
    return period_containing(frequency, date(year, month, 1))


def deadline(period: Period) -> date:
    """Last day of the month after the period's end."""
    year, month = _add_months(period[1].year, period[1].month, 1)
    return end_of_month(year, month)


def periods_between(frequency: str, first_day: date, last_day: date) -> Iterator[Period]:
    """Periods from the one containing `first_day` to the one containing `last_day`."""
    period = period_containing(frequency, first_day)
    while period[0] <= last_day:
        yield period
        period = next_period(frequency, period)
