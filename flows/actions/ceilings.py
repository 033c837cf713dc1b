"""Micro-entrepreneur turnover ceilings and the "nearing the ceiling" score.

Ceilings are revalued every three years. 2023-2025: 188 700 euros (sales of goods, food,
lodging) and 77 700 euros (services, BIC and BNC). 2026-2028: 203 100 and 83 600 euros,
as announced by the Urssaf in February 2026 (reported by secondary sources, e.g.
journaldeleconomie.fr 2026-03-04; no official page found in the reference library:
verify on autoentrepreneur.urssaf.fr). Mixed activity: the sales ceiling for the whole,
of which at most the services ceiling for services. Re-check each January.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.actions.spoken import percent_floor

# First year of validity -> (sales/lodging ceiling, services ceiling), in euro cents.
MICRO_CEILINGS: dict[int, tuple[int, int]] = {
    2023: (188_700_00, 77_700_00),
    2026: (203_100_00, 83_600_00),
}
ALERT_PERCENT = 80
ACTIVITIES = ("sales", "services", "mixed", "liberal")


def ceilings_for(year: int) -> tuple[int, int]:
    """(sales, services) ceilings in cents that apply to turnover of `year`."""
    starts = [y for y in MICRO_CEILINGS if y <= year]
    return MICRO_CEILINGS[max(starts) if starts else min(MICRO_CEILINGS)]


@dataclass(frozen=True)
class Score:
    year: int
    basis: str             # "total" (measured against the sales ceiling) or "services"
    measured_cents: int    # the turnover measured against `limit_cents`
    limit_cents: int
    percent: int           # rounded down
    alert: bool            # at ALERT_PERCENT or more
    exceeded: bool         # strictly above the ceiling


def score(activity: str, year: int, sales_cents: int, services_cents: int) -> Score:
    """How close a micro-entrepreneur's turnover is to the ceiling of their activity.

    Liberal professions are services (BNC). A mixed activity is measured against the
    limit it is closest to: the total against the sales ceiling, or the services part
    against the services ceiling."""
    sales_limit, services_limit = ceilings_for(year)
    total = sales_cents + services_cents
    if activity == "sales":
        candidates = [("total", total, sales_limit)]
    elif activity in ("services", "liberal"):
        candidates = [("services", total, services_limit)]
    elif activity == "mixed":
        candidates = [("total", total, sales_limit), ("services", services_cents, services_limit)]
    else:
        raise ValueError(f"unknown activity {activity!r}")
    basis, measured, limit = max(candidates, key=lambda c: c[1] * 10_000 // c[2])
    return Score(year=year, basis=basis, measured_cents=measured, limit_cents=limit,
                 percent=percent_floor(measured, limit), alert=measured * 100 >= limit * ALERT_PERCENT,
                 exceeded=measured > limit)
