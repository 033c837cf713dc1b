"""bot/agents/hours.py: the agents' opening hours, read from the settings, checked against
the clock (Europe/Paris wall time, daylight saving included), and said to a caller."""

from __future__ import annotations

import random
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.agents.hours import OpeningHours, OpeningRule

PARIS = ZoneInfo("Europe/Paris")
WEEKDAYS = "lun-ven 08:30-17:30"
SPLIT = "lun-ven 08:30-12:00,13:30-17:30; sam 09:00-12:00"


def paris(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=PARIS)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def test_the_time_zone_database_is_there() -> None:
    # 2026-04-15 is summer time in Paris: UTC+2
    assert paris(2026, 4, 15, 12).utcoffset() == timedelta(hours=2)
    assert paris(2026, 1, 15, 12).utcoffset() == timedelta(hours=1)


# ---------------------------------------------------------------- parsing

def test_parse_one_rule() -> None:
    hours = OpeningHours.parse(WEEKDAYS)
    assert hours.rules == (OpeningRule((0, 1, 2, 3, 4), ((510, 1050),)),)
    assert hours.holidays == frozenset()
    assert hours.timezone == "Europe/Paris"


def test_parse_ranges_and_rules() -> None:
    hours = OpeningHours.parse(SPLIT)
    assert hours.rules == (OpeningRule((0, 1, 2, 3, 4), ((510, 720), (810, 1050))),
                           OpeningRule((5,), ((540, 720),)))


@pytest.mark.parametrize(("spec", "days"), [
    ("lun,mer,ven 09:00-12:00", (0, 2, 4)),
    ("lun-mer,ven 09:00-12:00", (0, 1, 2, 4)),
    ("sam-dim 09:00-12:00", (5, 6)),
    ("dim 09:00-12:00", (6,)),
    ("ven,lun 09:00-12:00", (0, 4)),
    ("LUN-VEN 09:00-12:00", (0, 1, 2, 3, 4)),
    ("  lun-ven   09:00-12:00 ; ", (0, 1, 2, 3, 4)),
])
def test_parse_days(spec: str, days: tuple[int, ...]) -> None:
    assert OpeningHours.parse(spec).rules[0].days == days


def test_parse_tolerates_spaces_between_ranges_and_single_digit_hours() -> None:
    assert OpeningHours.parse("lun-ven 8:30-12:00, 13:30-17:30") == OpeningHours.parse(
        "lun-ven 08:30-12:00,13:30-17:30")


def test_parse_always_and_never() -> None:
    always = OpeningHours.parse("24/7")
    assert always.rules == (OpeningRule(tuple(range(7)), ((0, 1440),)),)
    assert OpeningHours.parse(" 24/7 ") == always
    assert OpeningHours.parse("").rules == ()
    assert OpeningHours.parse("   ").rules == ()


def test_parse_holidays() -> None:
    hours = OpeningHours.parse(WEEKDAYS, "2026-12-25,2027-01-01")
    assert hours.holidays == {date(2026, 12, 25), date(2027, 1, 1)}
    assert OpeningHours.parse(WEEKDAYS, " 2026-12-25 , 2027-01-01, ").holidays == hours.holidays


def test_parse_another_zone() -> None:
    hours = OpeningHours.parse(WEEKDAYS, timezone="America/Cayenne")      # Guyane: UTC-3, no DST
    assert hours.is_open(utc(2026, 4, 15, 11, 30))
    assert not hours.is_open(utc(2026, 4, 15, 11, 29))


@pytest.mark.parametrize(("spec", "bad"), [
    ("lundi-vendredi 08:30-17:30", "lundi"),
    ("lun-ven 08:30-17:30; samedi 09:00-12:00", "samedi"),
    ("mon-fri 08:30-17:30", "mon"),
    ("lun,,ven 08:30-17:30", "''"),
    ("ven-lun 08:30-17:30", "ven-lun"),
    ("lun-ven", "lun-ven"),
    ("08:30-17:30", "08:30-17:30"),
    ("lun-ven 17:30-08:30", "17:30-08:30"),
    ("lun-ven 08:30-08:30", "08:30-08:30"),
    ("lun-ven 08:30-25:00", "25:00"),
    ("lun-ven 08:30-24:01", "24:01"),
    ("lun-ven 24:00-24:00", "24:00-24:00"),
    ("lun-ven 08:60-17:30", "08:60"),
    ("lun-ven 8h30-17h30", "8h30-17h30"),
    ("lun-ven 08:30", "08:30"),
    ("lun-ven 08:30-", "''"),
    ("lun-ven 830-1730", "830"),
    ("24/24", "24/24"),
    ("lun-ven 08:30-12:00,11:00-17:30", "lundi"),                  # overlapping ranges
    ("lun-ven 08:30-17:30; mer 17:00-19:00", "mercredi"),           # two rules overlapping
])
def test_parse_errors_name_the_bad_part(spec: str, bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(bad)):
        OpeningHours.parse(spec)


@pytest.mark.parametrize("holidays", ["2026-13-01", "2026-02-30", "25/12/2026", "20261225", "noël",
                                      "2026-12-25;2027-01-01", "2026-1-1"])
def test_parse_errors_on_a_bad_holiday(holidays: str) -> None:
    with pytest.raises(ValueError, match="holiday"):
        OpeningHours.parse(WEEKDAYS, holidays)


@pytest.mark.parametrize("zone", ["Europe/Pariss", "", "../etc/passwd", "Paris"])
def test_parse_errors_on_a_bad_zone(zone: str) -> None:
    with pytest.raises(ValueError, match="time zone"):
        OpeningHours.parse(WEEKDAYS, timezone=zone)


def test_constructed_directly_it_is_checked_too() -> None:
    with pytest.raises(ValueError):
        OpeningRule((0,), ((600, 540),))
    with pytest.raises(ValueError):
        OpeningRule((7,), ((540, 600),))
    with pytest.raises(ValueError):
        OpeningHours((OpeningRule((0,), ((540, 600),)), OpeningRule((0,), ((590, 620),))))


def test_naive_datetimes_are_refused() -> None:
    hours = OpeningHours.parse(WEEKDAYS)
    with pytest.raises(ValueError, match="naive"):
        hours.is_open(datetime(2026, 4, 15, 10))
    with pytest.raises(ValueError, match="naive"):
        hours.next_opening(datetime(2026, 4, 15, 10))


# ---------------------------------------------------------------- is_open

@pytest.mark.parametrize(("at", "expected"), [
    (paris(2026, 4, 15, 8, 29, 59), False),
    (paris(2026, 4, 15, 8, 30), True),            # start inclusive
    (paris(2026, 4, 15, 11, 59, 59), True),
    (paris(2026, 4, 15, 12, 0), False),           # end exclusive: the lunch break starts
    (paris(2026, 4, 15, 13, 29), False),
    (paris(2026, 4, 15, 13, 30), True),
    (paris(2026, 4, 15, 17, 29, 59), True),
    (paris(2026, 4, 15, 17, 30), False),
    (paris(2026, 4, 15, 23, 59), False),
    (paris(2026, 4, 18, 9, 0), True),             # Saturday morning
    (paris(2026, 4, 18, 12, 0), False),
    (paris(2026, 4, 18, 14, 0), False),
    (paris(2026, 4, 19, 10, 0), False),           # Sunday
    (utc(2026, 4, 15, 6, 30), True),              # 08:30 in Paris (UTC+2)
    (utc(2026, 4, 15, 6, 29), False),
    (utc(2026, 4, 15, 15, 29), True),             # 17:29 in Paris
    (utc(2026, 4, 15, 15, 30), False),
    (datetime(2026, 4, 15, 2, 30, tzinfo=ZoneInfo("America/New_York")), True),   # 08:30 in Paris
])
def test_is_open_at_range_edges(at: datetime, expected: bool) -> None:
    assert OpeningHours.parse(SPLIT).is_open(at) is expected


def test_always_and_never() -> None:
    always, never = OpeningHours.parse("24/7"), OpeningHours.parse("")
    for at in (paris(2026, 4, 15, 0, 0), paris(2026, 4, 19, 3, 17), paris(2026, 4, 15, 23, 59, 59)):
        assert always.is_open(at)
        assert not never.is_open(at)
    assert OpeningHours.parse("lun-dim 00:00-24:00").is_open(paris(2026, 4, 15, 23, 59, 59))


def test_holidays_close_all_day() -> None:
    hours = OpeningHours.parse(WEEKDAYS, "2026-12-25,2027-01-01")
    assert hours.is_open(paris(2026, 12, 24, 10))
    assert not hours.is_open(paris(2026, 12, 25, 10))            # a Friday
    assert not hours.is_open(paris(2027, 1, 1, 8, 30))
    # the holiday is a Paris date: 23:30 UTC on the 24th is already the 25th in Paris
    always = OpeningHours.parse("24/7", "2026-12-25")
    assert always.is_open(utc(2026, 12, 24, 22, 59))
    assert not always.is_open(utc(2026, 12, 24, 23, 0))
    assert not always.is_open(utc(2026, 12, 25, 22, 59))
    assert always.is_open(utc(2026, 12, 25, 23, 0))


# ---------------------------------------------------------------- daylight saving

def test_spring_forward_keeps_the_wall_clock_hours() -> None:
    # Paris goes from UTC+1 to UTC+2 on Sunday 29 March 2026 at 01:00 UTC
    hours = OpeningHours.parse(WEEKDAYS)
    assert hours.is_open(utc(2026, 3, 27, 7, 30))          # Friday 08:30 CET
    assert not hours.is_open(utc(2026, 3, 27, 7, 29))
    assert hours.is_open(utc(2026, 3, 30, 6, 30))          # Monday 08:30 CEST
    assert not hours.is_open(utc(2026, 3, 30, 6, 29))
    assert hours.is_open(utc(2026, 3, 30, 15, 29))
    assert not hours.is_open(utc(2026, 3, 30, 15, 30))
    opening = hours.next_opening(utc(2026, 3, 27, 16, 30))  # Friday 17:30, closed
    assert opening == utc(2026, 3, 30, 6, 30)
    assert opening is not None and opening.utcoffset() == timedelta(hours=2)
    assert (opening.hour, opening.minute) == (8, 30)


def test_a_range_across_the_spring_gap() -> None:
    hours = OpeningHours.parse("dim 01:00-04:00")
    assert not hours.is_open(utc(2026, 3, 28, 23, 59))     # 00:59 CET
    assert hours.is_open(utc(2026, 3, 29, 0, 0))           # 01:00 CET
    assert hours.is_open(utc(2026, 3, 29, 0, 59))          # 01:59 CET
    assert hours.is_open(utc(2026, 3, 29, 1, 0))           # 03:00 CEST: 02:xx never happens
    assert hours.is_open(utc(2026, 3, 29, 1, 59))
    assert not hours.is_open(utc(2026, 3, 29, 2, 0))       # 04:00 CEST


def test_fall_back_keeps_the_wall_clock_hours() -> None:
    # Paris goes from UTC+2 to UTC+1 on Sunday 25 October 2026 at 01:00 UTC
    hours = OpeningHours.parse(WEEKDAYS)
    assert hours.next_opening(utc(2026, 10, 23, 16, 0)) == utc(2026, 10, 26, 7, 30)   # Monday 08:30 CET
    night = OpeningHours.parse("dim 01:00-04:00")
    assert night.is_open(utc(2026, 10, 24, 23, 0))         # 01:00 CEST
    assert night.is_open(utc(2026, 10, 25, 0, 30))         # 02:30 CEST
    assert night.is_open(utc(2026, 10, 25, 1, 30))         # 02:30 CET, the second time
    assert night.is_open(utc(2026, 10, 25, 2, 59))         # 03:59 CET
    assert not night.is_open(utc(2026, 10, 25, 3, 0))      # 04:00 CET


# ---------------------------------------------------------------- next opening

def test_next_opening_when_open_is_now() -> None:
    hours = OpeningHours.parse(WEEKDAYS)
    at = utc(2026, 4, 15, 9, 0)
    assert hours.next_opening(at) == at
    assert hours.next_opening_phrase(at) == "dès maintenant"


@pytest.mark.parametrize(("at", "expected"), [
    (paris(2026, 4, 15, 7, 0), paris(2026, 4, 15, 8, 30)),      # before opening
    (paris(2026, 4, 15, 8, 29, 59), paris(2026, 4, 15, 8, 30)),
    (paris(2026, 4, 15, 12, 0), paris(2026, 4, 15, 13, 30)),    # the lunch break
    (paris(2026, 4, 15, 17, 30), paris(2026, 4, 16, 8, 30)),    # evening
    (paris(2026, 4, 17, 17, 30), paris(2026, 4, 18, 9, 0)),     # Friday evening: Saturday morning
    (paris(2026, 4, 18, 12, 0), paris(2026, 4, 20, 8, 30)),     # Saturday noon: Monday
    (paris(2026, 4, 19, 23, 59), paris(2026, 4, 20, 8, 30)),
])
def test_next_opening(at: datetime, expected: datetime) -> None:
    found = OpeningHours.parse(SPLIT).next_opening(at)
    assert found == expected
    assert found is not None and found.tzinfo == PARIS


def test_next_opening_across_a_weekend_and_a_holiday() -> None:
    hours = OpeningHours.parse(WEEKDAYS, "2026-12-25,2027-01-01")
    # Thursday 24 December in the evening; Friday 25 is a holiday: Monday 28
    assert hours.next_opening(paris(2026, 12, 24, 18)) == paris(2026, 12, 28, 8, 30)
    assert hours.next_opening(paris(2026, 12, 25, 10)) == paris(2026, 12, 28, 8, 30)
    assert hours.next_opening(paris(2026, 12, 31, 17, 45)) == paris(2027, 1, 4, 8, 30)


def test_next_opening_within_fourteen_days() -> None:
    hours = OpeningHours.parse("lun 09:00-10:00", "2026-04-20")
    at = paris(2026, 4, 13, 10, 0)                   # a Monday, just closed
    assert hours.next_opening(at) == paris(2026, 4, 27, 9, 0)        # 13 days 23 hours later
    closed = OpeningHours.parse("lun 09:00-10:00", "2026-04-20,2026-04-27")
    assert closed.next_opening(at) is None
    assert closed.next_opening_phrase(at) == "dès que possible"


def test_next_opening_when_never_open() -> None:
    hours = OpeningHours.parse("")
    assert hours.next_opening(paris(2026, 4, 15, 10)) is None
    assert hours.next_opening_phrase(paris(2026, 4, 15, 10)) == "dès que possible"


def test_next_opening_of_a_24_7_service_after_a_holiday() -> None:
    hours = OpeningHours.parse("24/7", "2026-12-25")
    assert hours.next_opening(paris(2026, 12, 25, 10)) == paris(2026, 12, 26, 0, 0)
    assert hours.next_opening_phrase(paris(2026, 12, 25, 10)) == "demain dès minuit"


@pytest.mark.parametrize("seed", range(3))
def test_next_opening_is_the_first_open_minute(seed: int) -> None:
    """Against a minute-by-minute walk: open at the answer, closed every minute before it."""
    rng = random.Random(seed)
    hours = OpeningHours.parse(SPLIT, "2026-03-30,2026-04-06")
    for _ in range(25):
        # around the spring change of 2026, seconds included
        at = utc(2026, 3, 21) + timedelta(seconds=rng.randrange(21 * 86400))
        found = hours.next_opening(at)
        assert found is not None
        assert hours.is_open(found)
        assert found == at or (found.second == 0 and not hours.is_open(found - timedelta(minutes=1)))
        t = at
        while t < found:
            assert not hours.is_open(t), (at, t, found)
            t = (t + timedelta(minutes=1)).replace(second=0, microsecond=0)


# ---------------------------------------------------------------- what the caller hears

@pytest.mark.parametrize(("spec", "expected"), [
    (WEEKDAYS, "du lundi au vendredi, de 8 heures 30 à 17 heures 30"),
    ("lun-ven 09:00-12:00", "du lundi au vendredi, de 9 heures à midi"),
    (SPLIT, ("du lundi au vendredi, de 8 heures 30 à midi, puis de 13 heures 30 à 17 heures 30 "
             "et le samedi, de 9 heures à midi")),
    ("lun,mer,ven 09:00-12:00", "le lundi, le mercredi et le vendredi, de 9 heures à midi"),
    ("lun-mer,ven 09:00-12:00", "du lundi au mercredi et le vendredi, de 9 heures à midi"),
    ("sam 09:00-12:00", "le samedi, de 9 heures à midi"),
    ("sam-dim 10:00-12:30", "le samedi et le dimanche, de 10 heures à 12 heures 30"),
    ("lun-sam 08:00-20:00", "du lundi au samedi, de 8 heures à 20 heures"),
    ("lun-dim 08:05-18:00", "tous les jours, de 8 heures 5 à 18 heures"),
    ("lun-ven 01:00-24:00", "du lundi au vendredi, de 1 heure à minuit"),
    ("lun-ven 09:00-12:00; mer 14:00-16:00; sam 09:00-11:00",
     ("du lundi au vendredi, de 9 heures à midi, le mercredi, de 14 heures à 16 heures "
      "et le samedi, de 9 heures à 11 heures")),
    ("sam 00:00-24:00", "le samedi, à toute heure"),
    ("24/7", "tous les jours, à toute heure"),
    ("lun-dim 00:00-24:00", "tous les jours, à toute heure"),
    ("", "uniquement en vous rappelant"),
])
def test_describe(spec: str, expected: str) -> None:
    described = OpeningHours.parse(spec).describe()
    assert described == expected
    assert not re.search(r"[0-9]:[0-9]|[0-9]h", described)      # "8:30" or "8h30" would be read oddly


@pytest.mark.parametrize(("at", "expected"), [
    (paris(2026, 4, 15, 12, 10), "aujourd'hui à 13 heures 30"),
    (paris(2026, 4, 15, 7, 0), "aujourd'hui à 8 heures 30"),
    (paris(2026, 4, 15, 18, 0), "demain à 8 heures 30"),
    (paris(2026, 4, 16, 0, 30), "aujourd'hui à 8 heures 30"),      # after midnight: today
    (paris(2026, 4, 17, 18, 0), "demain à 9 heures"),              # Friday evening: Saturday
    (paris(2026, 4, 18, 12, 0), "lundi à 8 heures 30"),            # Saturday noon
    (paris(2026, 4, 19, 21, 0), "demain à 8 heures 30"),           # Sunday evening
    (utc(2026, 4, 15, 22, 30), "aujourd'hui à 8 heures 30"),       # 00:30 on the 16th in Paris
])
def test_next_opening_phrase(at: datetime, expected: str) -> None:
    assert OpeningHours.parse(SPLIT).next_opening_phrase(at) == expected


def test_next_opening_phrase_a_week_or_more_ahead_names_the_date() -> None:
    hours = OpeningHours.parse("ven 09:00-12:00", "2026-12-25")
    assert hours.next_opening_phrase(paris(2026, 12, 24, 10)) == "le vendredi 1er janvier à 9 heures"
    hours = OpeningHours.parse(WEEKDAYS, ",".join(f"2026-12-{d}" for d in range(21, 26)))
    assert hours.next_opening_phrase(paris(2026, 12, 18, 18)) == "le lundi 28 décembre à 8 heures 30"
    # the same weekday a week on is not "vendredi"
    hours = OpeningHours.parse("ven 09:00-12:00")
    assert hours.next_opening_phrase(paris(2026, 4, 17, 12)) == "le vendredi 24 avril à 9 heures"


def test_next_opening_phrase_across_the_spring_change() -> None:
    hours = OpeningHours.parse(WEEKDAYS)
    assert hours.next_opening_phrase(utc(2026, 3, 27, 16, 30)) == "lundi à 8 heures 30"
    assert hours.next_opening_phrase(utc(2026, 3, 29, 21, 0)) == "demain à 8 heures 30"   # Sun 23:00 CEST
    assert hours.next_opening_phrase(utc(2026, 3, 29, 22, 30)) == "aujourd'hui à 8 heures 30"


def test_hours_are_values() -> None:
    a, b = OpeningHours.parse(SPLIT, "2026-12-25"), OpeningHours.parse(SPLIT, "2026-12-25")
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.timezone = "UTC"      # type: ignore[misc]
