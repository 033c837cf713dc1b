"""The agents' opening hours: whether a human can take a call now, when they next can, and
how to say both to a caller.

    hours = OpeningHours.parse("lun-ven 08:30-12:00,13:30-17:30; sam 09:00-12:00",
                               holidays="2026-12-25,2027-01-01")
    hours.is_open(datetime.now(UTC))
    hours.describe()              # "du lundi au vendredi, de 8 heures 30 à midi, puis ..."
    hours.next_opening_phrase(now)  # "demain à 8 heures 30"

Spec grammar: rules separated by ";", each "DAYS RANGES". DAYS: French abbreviations (lun
mar mer jeu ven sam dim), a span "lun-ven" or a list "lun,mer,ven" (or both: "lun-mer,ven").
RANGES: "HH:MM-HH:MM", comma-separated, start inclusive, end exclusive, up to "24:00".
"24/7" is always open; an empty spec is never open (callbacks only). Holidays are ISO
dates, comma-separated, closed all day (a "24/7" service too). Times are wall-clock times
of the configured zone, so a rule keeps its hours across daylight saving changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["OpeningHours", "OpeningRule"]

DAYS = ("lun", "mar", "mer", "jeu", "ven", "sam", "dim")
_DAY_NAMES = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_MONTH_NAMES = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
                "septembre", "octobre", "novembre", "décembre")
DAY_MINUTES = 24 * 60
LOOKAHEAD_DAYS = 14      # a longer closure is not one a caller can be promised a time for
_TIME_RE = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class OpeningRule:
    days: tuple[int, ...]                  # 0 = Monday, ascending
    ranges: tuple[tuple[int, int], ...]    # minutes since local midnight: [start, end)

    def __post_init__(self) -> None:
        if not self.days or any(not 0 <= d <= 6 for d in self.days) or list(self.days) != sorted(set(self.days)):
            raise ValueError(f"opening hours: days must be distinct weekdays 0-6 in order, got {self.days}")
        for start, end in self.ranges:
            if not 0 <= start < end <= DAY_MINUTES:
                raise ValueError(f"opening hours: range {_hhmm(start)}-{_hhmm(end)} must start before it "
                                 f"ends, within 00:00-24:00")


@dataclass(frozen=True)
class OpeningHours:
    rules: tuple[OpeningRule, ...] = ()
    holidays: frozenset[date] = frozenset()
    timezone: str = "Europe/Paris"
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _week: tuple[tuple[tuple[int, int], ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"opening hours: unknown time zone {self.timezone!r}") from e
        week: list[list[tuple[int, int]]] = [[] for _ in range(7)]
        for rule in self.rules:
            for d in rule.days:
                week[d].extend(rule.ranges)
        for d, ranges in enumerate(week):
            ranges.sort()
            for (_, end), (start, _) in pairwise(ranges):
                if start < end:      # two rules for one day that overlap: a typo, not a wish
                    raise ValueError(f"opening hours: ranges overlap on {_DAY_NAMES[d]} "
                                     f"({_hhmm(start)} starts before {_hhmm(end)})")
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_week", tuple(tuple(r) for r in week))

    @classmethod
    def parse(cls, spec: str, holidays: str = "", timezone: str = "Europe/Paris") -> OpeningHours:
        """Opening hours from the settings' strings; ValueError naming the bad part."""
        text = spec.strip().lower()
        if text == "24/7":
            rules: tuple[OpeningRule, ...] = (OpeningRule(tuple(range(7)), ((0, DAY_MINUTES),)),)
        else:
            rules = tuple(_parse_rule(part.strip()) for part in text.split(";") if part.strip())
        return cls(rules, _parse_holidays(holidays), timezone)

    def is_open(self, at: datetime) -> bool:
        """Whether agents answer at `at` (an aware datetime, in any zone)."""
        local = _aware(at).astimezone(self._zone)
        if local.date() in self.holidays:
            return False
        now = local.hour * 60 + local.minute     # seconds do not matter: ranges are whole minutes
        return any(start <= now < end for start, end in self._week[local.weekday()])

    def next_opening(self, at: datetime) -> datetime | None:
        """When agents next answer, in the configured zone: `at` itself when open now, else
        the start of the next open period within 14 days; None if none."""
        at = _aware(at)
        if self.is_open(at):
            return at.astimezone(self._zone)
        today = at.astimezone(self._zone).date()
        limit = at + timedelta(days=LOOKAHEAD_DAYS)
        for offset in range(LOOKAHEAD_DAYS + 1):
            day = today + timedelta(days=offset)
            if day in self.holidays:
                continue
            for start, _ in self._week[day.weekday()]:
                opening = datetime.combine(day, time(start // 60, start % 60), tzinfo=self._zone)
                # compared in UTC: Python compares same-zone datetimes by wall clock, which a
                # daylight saving change makes wrong
                if at.astimezone(UTC) <= opening.astimezone(UTC) <= limit.astimezone(UTC):
                    return opening
        return None

    def describe(self) -> str:
        """The opening hours as a caller hears them: "du lundi au vendredi, de 8 heures 30 à
        17 heures 30 et le samedi, de 9 heures à midi". Holidays are not listed."""
        if not self.rules:
            return "uniquement en vous rappelant"
        if all(ranges == ((0, DAY_MINUTES),) for ranges in self._week):
            return "tous les jours, à toute heure"
        parts = [f"{_days_phrase(rule.days)}, {_ranges_phrase(rule.ranges)}" for rule in self.rules]
        return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} et {parts[-1]}"

    def next_opening_phrase(self, at: datetime) -> str:
        """When agents next answer, for the callback promise: "aujourd'hui à 13 heures 30",
        "demain à 8 heures 30", "lundi à 8 heures 30", "le lundi 4 janvier à 8 heures 30"."""
        opening = self.next_opening(at)
        if opening is None:
            return "dès que possible"
        if self.is_open(at):
            return "dès maintenant"
        days = (opening.date() - _aware(at).astimezone(self._zone).date()).days
        if days == 0:
            day = "aujourd'hui"
        elif days == 1:
            day = "demain"
        elif days < 7:
            day = _DAY_NAMES[opening.weekday()]
        else:      # a week or more ahead: "lundi" alone would name the nearer one
            number = "1er" if opening.day == 1 else str(opening.day)
            day = f"le {_DAY_NAMES[opening.weekday()]} {number} {_MONTH_NAMES[opening.month - 1]}"
        minutes = opening.hour * 60 + opening.minute
        return f"{day} dès minuit" if minutes == 0 else f"{day} à {_clock(minutes)}"


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("opening hours: a naive datetime has no time zone to read it in")
    return at


def _parse_rule(rule: str) -> OpeningRule:
    parts = rule.split(None, 1)
    if len(parts) != 2:
        raise ValueError(f"opening hours: rule {rule!r} must be days then hours, e.g. 'lun-ven 08:30-17:30'")
    days_part, ranges_part = parts
    days: set[int] = set()
    for item in days_part.split(","):
        first, sep, last = item.partition("-")
        a = _day(first, rule)
        b = _day(last, rule) if sep else a
        if b < a:
            raise ValueError(f"opening hours: day span {item!r} in {rule!r} runs backwards (write lun-ven)")
        days.update(range(a, b + 1))
    ranges = []
    for item in ranges_part.split(","):
        start, sep, end = item.strip().partition("-")
        if not sep:
            raise ValueError(f"opening hours: hours {item.strip()!r} in {rule!r} must be HH:MM-HH:MM")
        a, b = _minutes(start, rule), _minutes(end, rule)
        if b <= a:
            raise ValueError(f"opening hours: hours {item.strip()!r} in {rule!r} end before they start")
        ranges.append((a, b))
    return OpeningRule(tuple(sorted(days)), tuple(sorted(ranges)))


def _day(abbrev: str, rule: str) -> int:
    try:
        return DAYS.index(abbrev.strip())
    except ValueError:
        raise ValueError(f"opening hours: unknown day {abbrev.strip()!r} in {rule!r} "
                         f"(expected {' '.join(DAYS)})") from None


def _minutes(hhmm: str, rule: str) -> int:
    m = _TIME_RE.fullmatch(hhmm.strip())
    if m is None:
        raise ValueError(f"opening hours: time {hhmm.strip()!r} in {rule!r} must be HH:MM")
    h, mi = int(m.group(1)), int(m.group(2))
    if mi > 59 or h * 60 + mi > DAY_MINUTES:
        raise ValueError(f"opening hours: time {hhmm.strip()!r} in {rule!r} is past 24:00 or not a time")
    return h * 60 + mi


def _parse_holidays(holidays: str) -> frozenset[date]:
    found: set[date] = set()
    for item in (s.strip() for s in holidays.split(",")):
        if not item:
            continue
        bad = f"opening hours: holiday {item!r} is not a date (YYYY-MM-DD)"
        if _DATE_RE.fullmatch(item) is None:      # fromisoformat also takes "20261225"
            raise ValueError(bad)
        try:
            found.add(date.fromisoformat(item))
        except ValueError:
            raise ValueError(bad) from None
    return frozenset(found)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _clock(minutes: int) -> str:
    """A time of day for speech synthesis: "8 heures 30", "midi", "minuit", "1 heure"."""
    if minutes in (0, DAY_MINUTES):
        return "minuit"
    if minutes == 12 * 60:
        return "midi"
    h, m = divmod(minutes, 60)
    hours = f"{h} heure{'s' if h > 1 else ''}"
    return f"{hours} {m}" if m else hours


def _ranges_phrase(ranges: tuple[tuple[int, int], ...]) -> str:
    if ranges == ((0, DAY_MINUTES),):
        return "à toute heure"
    return ", puis ".join(f"de {_clock(a)} à {_clock(b)}" for a, b in ranges)


def _days_phrase(days: tuple[int, ...]) -> str:
    """"du lundi au vendredi", "le samedi", "le lundi, le mercredi et le vendredi",
    "du lundi au mercredi et le vendredi", "tous les jours"."""
    if len(days) == 7:
        return "tous les jours"
    runs: list[list[int]] = []
    for d in days:
        if runs and runs[-1][-1] == d - 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    items: list[str] = []
    for run in runs:
        if len(run) >= 3:
            items.append(f"du {_DAY_NAMES[run[0]]} au {_DAY_NAMES[run[-1]]}")
        else:
            items.extend(f"le {_DAY_NAMES[d]}" for d in run)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} et {items[-1]}"
