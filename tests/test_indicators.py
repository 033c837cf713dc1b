"""The supervisor console's indicators (bot/supervision/): offices from postcodes and numbers,
the indicators over a seeded call store (every expected figure counted by hand from the seed
below), the SVG charts and the indicators page."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from bot.agents.hours import OpeningHours
from bot.agents.tables import Callback, QueueEntry
from bot.store import Call, Event, Store, Turn
from bot.supervision.charts import bar_chart, fr_number, grouped_bar_chart, line_chart
from bot.supervision.indicators import compute_indicators, percentile
from bot.supervision.indicators_page import indicators_html
from bot.supervision.settings import SupervisionSettings
from flows.offices import departement, national_number, office_for

PARIS = ZoneInfo("Europe/Paris")
NBSP, NNBSP = "\u00a0", "\u202f"


# --- offices -------------------------------------------------------------------------------

@pytest.mark.parametrize(("postcode", "dep", "office"), [
    ("75011", "75", "Urssaf Île-de-France"),
    ("13001", "13", "Urssaf Provence-Alpes-Côte d'Azur"),
    ("35000", "35", "Urssaf Bretagne"),
    ("01000", "01", "Urssaf Auvergne-Rhône-Alpes"),
    ("02100", "02", "Urssaf Hauts-de-France"),
    ("90000", "90", "Urssaf Bourgogne-Franche-Comté"),
    ("20000", "2A", "Urssaf Corse"),        # Ajaccio
    ("20167", "2A", "Urssaf Corse"),
    ("20200", "2B", "Urssaf Corse"),        # Bastia
    ("2A004", "2A", "Urssaf Corse"),
    ("2b033", "2B", "Urssaf Corse"),
    ("97110", "971", "CGSS Guadeloupe"),
    ("97133", "971", "CGSS Guadeloupe"),    # Saint-Barthélemy
    ("97200", "972", "CGSS Martinique"),
    ("97300", "973", "CGSS Guyane"),
    ("97400", "974", "CGSS La Réunion"),
    ("97600", "976", "CSS Mayotte"),
    ("97500", "975", None),                 # Saint-Pierre-et-Miquelon: not an Urssaf
    ("98000", None, None),                  # Monaco
    ("00100", None, None),
    ("7501", None, None),
    ("750011", None, None),
    ("", None, None),
    (None, None, None),
])
def test_postcode_office(postcode, dep, office):
    assert departement(postcode) == dep
    assert office_for(postcode=postcode, caller=None, rule="account") == office


@pytest.mark.parametrize(("caller", "national", "office"), [
    ("0142000000", "0142000000", "Urssaf Île-de-France"),
    ("+33142000000", "0142000000", "Urssaf Île-de-France"),
    ("0033 1 42 00 00 00", "0142000000", "Urssaf Île-de-France"),
    ("+33 (0)1 42 00 00 00", "0142000000", "Urssaf Île-de-France"),
    ("01.42.00.00.00", "0142000000", "Urssaf Île-de-France"),
    ("sip:+33142000000@gateway.example;user=phone", "0142000000", "Urssaf Île-de-France"),
    ("0299000000", "0299000000", "zone Nord-Ouest (02)"),
    ("0388000000", "0388000000", "zone Nord-Est (03)"),
    ("0491000000", "0491000000", "zone Sud-Est (04)"),
    ("0556000000", "0556000000", "zone Sud-Ouest (05)"),
    ("0262123456", "0262123456", "CGSS La Réunion"),
    ("+262 263 12 34 56", "0263123456", "CGSS La Réunion"),
    ("+262269123456", "0269123456", "CSS Mayotte"),
    ("0590123456", "0590123456", "CGSS Guadeloupe"),
    ("+590590123456", "0590123456", "CGSS Guadeloupe"),
    ("0594123456", "0594123456", "CGSS Guyane"),
    ("+33596123456", "0596123456", "CGSS Martinique"),
    ("0508123456", "0508123456", None),     # Saint-Pierre-et-Miquelon, inside the 05 zone
    ("0612345678", "0612345678", None),
    ("+33712345678", "0712345678", None),
    ("0809000000", "0809000000", None),
    ("0970000000", "0970000000", None),
    ("+44 20 7946 0000", None, None),
    ("0142", None, None),
    ("anonymous", None, None),
    (None, None, None),
])
def test_number_office(caller, national, office):
    assert national_number(caller) == national
    assert office_for(postcode=None, caller=caller, rule="number") == office


def test_office_rules():
    # The account's office first, the number's area only without one.
    assert office_for(postcode="35000", caller="0142000000", rule="account_then_number") == "Urssaf Bretagne"
    assert office_for(postcode=None, caller="0142000000", rule="account_then_number") == "Urssaf Île-de-France"
    assert office_for(postcode="99999", caller="0142000000", rule="account_then_number") == "Urssaf Île-de-France"
    assert office_for(postcode=None, caller="0142000000", rule="account") is None
    assert office_for(postcode="35000", caller="0142000000", rule="number") == "Urssaf Île-de-France"
    with pytest.raises(ValueError, match="office rule"):
        office_for(postcode="35000", caller=None, rule="postcode")


# --- indicators over a seeded store -------------------------------------------------------
#
# Opening hours: Monday to Friday 08:30-17:30, 1 May 2026 (a Friday) a public holiday.
# Period: Thursday 30 April to Sunday 3 May 2026 included, Paris time (UTC+2).

HOURS = OpeningHours.parse("lun-ven 08:30-17:30", holidays="2026-05-01", timezone="Europe/Paris")
START = datetime(2026, 4, 30, tzinfo=PARIS)
END = datetime(2026, 5, 4, tzinfo=PARIS)


def paris(day: int, hour: int, minute: int = 0, month: int = 5) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=PARIS)


GREET = ("bot", None, None)        # the greeting: a bot turn, no latency (nobody spoke before)


def caller(intent: str) -> tuple:
    return ("caller", intent, None)


def bot(total_ms: int | None, intent: str | None = None) -> tuple:
    return ("bot", intent, total_ms)


# id: (start, channel, caller number, outcome, region, turns, events)
CALLS = {
    # Thursday 30 April, a working day
    "A": (paris(30, 10, month=4), "sip", "+33 1 99 00 00 01", "completed", None,
          [GREET, caller("attestation"), bot(800, intent="attestation")],
          [("turns_merged", {"merged": True}), ("dtmf", {"keys": "1"})]),
    "B": (paris(30, 11, month=4), "sip", "0299000002", "completed", None,
          [GREET, caller("attestation"), bot(1200)], []),
    "C": (paris(30, 12, month=4), "sip", "0612345678", "completed", "Urssaf Bretagne",
          [GREET, caller("attestation"), bot(700)], []),
    "D": (paris(30, 14, month=4), "webrtc", None, "completed", None,
          [GREET, caller("radiation"), bot(1500)], []),
    "E": (paris(30, 15, month=4), "sip", "0388000000", "transferred", None,
          [GREET, caller("contentieux"), bot(600), ("agent", None, 9999)],
          [("handoff", {"team": "recouvrement", "reason": "demande_conseiller"}),
           ("handoff", {"team": "recouvrement", "reason": "demande_conseiller"}),
           ("queued", {"team": "recouvrement", "reason": "demande_conseiller"}),
           ("agent_accepted", {"agent": "alice", "device": "browser"})]),
    "F": (paris(30, 16, month=4), "sip", "0491000000", "caller_hung_up", None,
          [GREET, caller("attestation")], [("turns_merged", {"merged": False})]),
    "G": (paris(30, 20, month=4), "sip", "0556000000", "caller_hung_up", None, [GREET], []),
    "H": (paris(30, 22, month=4), "webrtc", None, "not_connected", None, [], []),
    # Friday 1 May, a public holiday: closed all day
    "I": (paris(1, 3), "sip", "0262000000", "error", None,
          [GREET, caller("paiement"), bot(2000)], []),
    "B2": (paris(1, 9), "sip", "+33299000002", "caller_hung_up", None,   # B again, 22 h later
           [GREET, caller("paiement"), bot(900)], []),
    # Saturday 2 May
    "J": (paris(2, 10), "text", None, "completed", None,
          [GREET, caller("autre"), bot(None), caller("adhesion"), bot(None), caller("changement_adresse"),
           bot(None), caller("delai_paiement"), bot(None), caller("exoneration"), bot(None), caller("taux"),
           bot(None), caller("zfu"), bot(None)],
          [("fallback", {"backend": "extractive", "outcome": "answered"}),
           ("fallback", {"backend": "llm", "outcome": "answered"})]),
    # A withheld number: as unverifiable as a web call (not the same caller as every other one)
    "W": (paris(2, 11), "sip", "anonymous", "completed", None,
          [GREET, ("caller", None, None), bot(1100)], []),
    "C2": (paris(2, 14), "sip", "0612345678", "handoff", None,            # C again, 50 h later
           [GREET, caller("conseiller"), bot(1000)],
           [("handoff", {"team": "accueil", "reason": "demande_conseiller"}),
            ("queued", {"team": "accueil", "reason": "demande_conseiller"}),
            ("queue_left", {"state": "abandoned"})]),
    "P": (paris(2, 15), "sip", "0145000000", "handoff", None,
          [GREET, caller("conseiller"), bot(1300)],
          [("handoff", {"team": "accueil", "reason": "demande_conseiller"}),
           ("queued", {"team": "accueil", "reason": "demande_conseiller"}),
           ("queue_left", {"state": "callback"}),
           ("callback_booked", {"team": "accueil", "time_slot": "matin"})]),   # id filled in below
    # Sunday 3 May
    "N": (paris(3, 20), "sip", "0477000000", "completed", None,
          [GREET, caller("radiation"), bot(None)], []),
    "K": (paris(3, 23, 30), "sip", "0142000000", "handoff", "CGSS Martinique",
          [GREET, caller("conseiller"), bot(None)],
          [("handoff", {"team": "accueil", "reason": "hors_horaires"}),
           ("callback_booked", {"team": "accueil", "time_slot": "matin"})]),
    # Outside the period: before it (A's number, earlier) and after it (N's number, 12 h later)
    "L": (paris(29, 23, 59, month=4), "sip", "0199000001", "completed", None,
          [GREET, caller("attestation"), bot(500)], [("turns_merged", {"merged": True})]),
    "M": (paris(4, 8), "sip", "+33 4 77 00 00 00", "completed", None,
          [GREET, caller("attestation"), bot(500)], [("fallback", {"outcome": "answered"})]),
}


async def seed(store: Store) -> None:
    def utc(moment: datetime) -> datetime:
        return moment.astimezone(UTC)     # SQLite keeps no offset: the store writes UTC

    async with store.session() as s, s.begin():
        for cid, (start, channel, number, outcome, region, _, _) in CALLS.items():
            s.add(Call(id=cid, channel=channel, caller=number, started_at=utc(start),
                       ended_at=utc(start + timedelta(minutes=3)), outcome=outcome, region=region))
        callbacks = {
            # K's: booked Sunday night, written just after the period (its event is in it); done Monday
            "K": Callback(call_id="K", team="accueil", phone="0142000000", time_slot="matin",
                          created_at=utc(paris(4, 0, 5)), done_at=utc(paris(4, 10))),
            # C2's: no event (a row alone), not done
            "C2": Callback(call_id="C2", team="accueil", phone="0612345678", time_slot="apres_midi",
                           created_at=utc(paris(2, 14, 5))),
            # P's: a row and an event, done the same day: counted once
            "P": Callback(call_id="P", team="accueil", phone="0145000000", time_slot="matin",
                          created_at=utc(paris(2, 15, 10)), done_at=utc(paris(2, 16))),
            # L's: before the period
            "L": Callback(call_id="L", team="accueil", phone="0199000001", time_slot="matin",
                          created_at=utc(paris(29, 23, 59, month=4)), done_at=utc(paris(30, 9, month=4))),
        }
        s.add_all(callbacks.values())
        await s.flush()
        for cid, (_, _, _, _, _, turns, events) in CALLS.items():
            for i, (speaker, intent, total_ms) in enumerate(turns):
                s.add(Turn(call_id=cid, index=i, speaker=speaker, text="…", intent=intent, total_ms=total_ms))
            for j, (kind, data) in enumerate(events):
                if kind == "callback_booked":
                    data = {**data, "id": callbacks[cid].id}
                s.add(Event(call_id=cid, at_ms=1000 * (j + 1), kind=kind, data=data))
        for cid, state in (("C2", "abandoned"), ("P", "abandoned"), ("E", "accepted"), ("L", "abandoned")):
            s.add(QueueEntry(call_id=cid, channel="sip", team="accueil", reason="demande_conseiller", state=state,
                             enqueued_at=utc(CALLS[cid][0])))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def store(tmp_path_factory):
    store = Store(f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('indicators') / 'x.sqlite3'}")
    await store.create_schema()
    await seed(store)
    yield store
    await store.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ind(store):
    return await compute_indicators(store, START, END, hours=HOURS, settings=SupervisionSettings())


def test_hours_of_the_seed():
    # What the seed relies on: 1 May at 9:00 would be open, were it not a holiday.
    assert HOURS.is_open(paris(30, 9, month=4))
    assert not HOURS.is_open(paris(1, 9))
    assert not HOURS.is_open(paris(2, 10))


async def test_indicators_are_json(ind):
    import json

    assert json.loads(json.dumps(ind)) == ind


async def test_calls_and_answered(ind):
    # 16 calls in the period (L and M are outside); H never connected: 15 answered.
    assert ind["calls"] == 16
    assert ind["answered"] == 15
    assert ind["answered_rate"] == pytest.approx(15 / 16)
    # Open: Thursday 10, 11, 12, 14, 15, 16 h (A B C D E F). Closed: G (20 h), H (22 h), the
    # holiday (I, B2), the weekend (J, W, C2, P, N, K).
    assert ind["business_hours"] == {"calls": 6, "answered": 6, "rate": 1.0}
    assert ind["off_hours"] == {"calls": 10, "answered": 9, "rate": pytest.approx(9 / 10)}


async def test_by_hour_local_time(ind):
    by_hour = {h["hour"]: h for h in ind["by_hour"]}
    assert [h["hour"] for h in ind["by_hour"]] == list(range(24))
    assert {hour: h["calls"] for hour, h in by_hour.items() if h["calls"]} == {
        3: 1, 9: 1, 10: 2, 11: 2, 12: 1, 14: 2, 15: 2, 16: 1, 20: 2, 22: 1, 23: 1}
    assert by_hour[11]["business"]["calls"] == 1 and by_hour[11]["off_hours"]["calls"] == 1   # B, W
    assert by_hour[10]["business"] == {"calls": 1, "answered": 1, "rate": 1.0}       # A
    assert by_hour[10]["off_hours"] == {"calls": 1, "answered": 1, "rate": 1.0}      # J, Saturday
    assert by_hour[9]["business"] == {"calls": 0, "answered": 0, "rate": None}       # the holiday
    assert by_hour[9]["off_hours"] == {"calls": 1, "answered": 1, "rate": 1.0}
    assert by_hour[22] == {"hour": 22, "calls": 1, "answered": 0, "rate": 0.0,
                           "business": {"calls": 0, "answered": 0, "rate": None},
                           "off_hours": {"calls": 1, "answered": 0, "rate": 0.0}}
    assert by_hour[0]["rate"] is None


async def test_resolved_by_bot(ind):
    # Strict: A (no later call; L, same number, was before), C (called again after 50 h),
    # B2 (hung up after the bot's answer). Not: B (called again 22 h later), N (again 12 h
    # later, after the period), F and G (hung up unanswered), I (error), transfers.
    # D and J (no number) and W (withheld) cannot be checked.
    assert ind["resolved_by_bot"] == 3
    assert ind["resolved_unverifiable"] == 3
    # Naive: answered without a transfer: A B B2 C D F G I J W N (not E C2 P K, not H).
    assert ind["resolved_naive"] == 11
    assert ind["resolved_by_bot_rate"] == pytest.approx(3 / 15)
    assert ind["resolved_unverifiable_rate"] == pytest.approx(3 / 15)
    assert ind["resolved_naive_rate"] == pytest.approx(11 / 15)


async def test_reopen_window_setting(store):
    # With 60 h, C's call back (50 h later) reopens it: A and B2 remain.
    ind = await compute_indicators(store, START, END, hours=HOURS,
                                   settings=SupervisionSettings(reopen_window_h=60))
    assert ind["resolved_by_bot"] == 2
    # With 6 h, B (22 h) and N (12 h) count as resolved too.
    ind = await compute_indicators(store, START, END, hours=HOURS, settings=SupervisionSettings(reopen_window_h=6))
    assert ind["resolved_by_bot"] == 5


async def test_transfers(ind):
    # E (twice the same reason: once), C2, P: demande_conseiller; K: hors_horaires.
    assert ind["transfers_by_reason"] == {"demande_conseiller": 3, "hors_horaires": 1}
    assert list(ind["transfers_by_reason"]) == ["demande_conseiller", "hors_horaires"]
    assert ind["transfers_by_team"] == {"accueil": 3, "recouvrement": 1}


async def test_abandons(ind):
    # Queued: C2 (event and entry: once), P (entry only; its queue_left says callback).
    # Bot: F (the caller spoke last), G (never spoke). Not H (never connected).
    assert ind["abandons"] == {"queued": 2, "bot": 2}


async def test_callbacks(ind):
    # K's (event in the period, row written after it, done), C2's (row, not done), P's (row
    # and event: once, done). Not L's (before the period).
    assert ind["callbacks"] == {"booked": 3, "made": 2}


async def test_top_question_types(ind):
    # Caller turns only (A's bot turn carries "attestation" too); ties by name; the 11th and
    # 12th ("taux", "zfu") left out.
    assert ind["top_question_types"] == [
        {"intent": "attestation", "count": 4},      # A B C F
        {"intent": "conseiller", "count": 3},       # C2 P K
        {"intent": "paiement", "count": 2},         # I B2
        {"intent": "radiation", "count": 2},        # D N
        {"intent": "adhesion", "count": 1},
        {"intent": "autre", "count": 1},
        {"intent": "changement_adresse", "count": 1},
        {"intent": "contentieux", "count": 1},
        {"intent": "delai_paiement", "count": 1},
        {"intent": "exoneration", "count": 1},
    ]
    trend = ind["trend"]
    assert trend["days"] == ["2026-04-30", "2026-05-01", "2026-05-02", "2026-05-03"]
    assert trend["counts"]["attestation"] == [4, 0, 0, 0]
    assert trend["counts"]["conseiller"] == [0, 0, 2, 1]
    assert trend["counts"]["paiement"] == [0, 2, 0, 0]
    assert trend["counts"]["radiation"] == [1, 0, 0, 1]
    assert trend["counts"]["adhesion"] == [0, 0, 1, 0]
    assert "taux" not in trend["counts"]


async def test_by_office(ind, store):
    # Region when set (C: Bretagne; K: Martinique, though its number is 01), else the number.
    assert ind["by_office"] == {
        "inconnu": 5,                     # C2 (mobile), D, H, J (no number), W (withheld)
        "Urssaf Île-de-France": 2,        # A, P
        "zone Nord-Ouest (02)": 2,        # B, B2
        "zone Sud-Est (04)": 2,           # F, N
        "CGSS La Réunion": 1,             # I
        "CGSS Martinique": 1,             # K
        "Urssaf Bretagne": 1,             # C
        "zone Nord-Est (03)": 1,          # E
        "zone Sud-Ouest (05)": 1,         # G
    }
    by_number = await compute_indicators(store, START, END, hours=HOURS,
                                         settings=SupervisionSettings(office_rule="number"))
    assert by_number["by_office"]["Urssaf Île-de-France"] == 3      # A, P, K
    assert by_number["by_office"]["inconnu"] == 6                   # C too (a mobile)
    assert "Urssaf Bretagne" not in by_number["by_office"]
    by_account = await compute_indicators(store, START, END, hours=HOURS,
                                          settings=SupervisionSettings(office_rule="account"))
    assert by_account["by_office"] == {"inconnu": 14, "CGSS Martinique": 1, "Urssaf Bretagne": 1}


async def test_per_day(ind):
    assert ind["per_day"] == [
        # A 800, B 1200, C 700, D 1500, E 600 (the agent's 9999 is not the bot's):
        # p50 = 3rd of 5 = 800, p95 = 5th of 5. Cut turns: A, F.
        {"day": "2026-04-30", "calls": 8, "latency_p50_ms": 800, "latency_p95_ms": 1500, "cut_turns": 2,
         "fallback_answers": 0},
        # I 2000, B2 900: p50 = 1st of 2, p95 = 2nd.
        {"day": "2026-05-01", "calls": 2, "latency_p50_ms": 900, "latency_p95_ms": 2000, "cut_turns": 0,
         "fallback_answers": 0},
        # C2 1000, W 1100, P 1300 (J is text: no latency): p50 = 2nd of 3, p95 = 3rd; J's two
        # fallback answers.
        {"day": "2026-05-02", "calls": 4, "latency_p50_ms": 1100, "latency_p95_ms": 1300, "cut_turns": 0,
         "fallback_answers": 2},
        {"day": "2026-05-03", "calls": 2, "latency_p50_ms": None, "latency_p95_ms": None, "cut_turns": 0,
         "fallback_answers": 0},
    ]


async def test_empty_period(store):
    # Days are Paris days: [00:00 UTC, 24:00 UTC) of 1 January spans two of them.
    ind = await compute_indicators(store, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC),
                                   hours=HOURS, settings=SupervisionSettings())
    assert ind["calls"] == 0 and ind["answered_rate"] is None and ind["resolved_by_bot_rate"] is None
    assert ind["per_day"] == [{"day": day, "calls": 0, "latency_p50_ms": None, "latency_p95_ms": None,
                               "cut_turns": 0, "fallback_answers": 0} for day in ("2025-01-01", "2025-01-02")]
    assert ind["top_question_types"] == [] and ind["by_office"] == {}
    html = indicators_html(ind, start=date(2025, 1, 1), end=date(2025, 1, 1))
    assert html.count("Aucune donnée sur la période.") == 4     # tables: reasons, teams, questions, offices
    with pytest.raises(ValueError, match="aware"):
        await compute_indicators(store, datetime(2025, 1, 1), datetime(2025, 1, 2, tzinfo=UTC),
                                 hours=HOURS, settings=SupervisionSettings())


def test_percentile():
    assert percentile([], 50) is None
    assert percentile([5], 95) == 5
    assert percentile([40, 10, 30, 20], 50) == 20          # rank 2 of 4
    assert percentile(list(range(1, 21)), 95) == 19        # rank 19 of 20
    assert percentile(list(range(1, 101)), 95) == 95


# --- charts --------------------------------------------------------------------------------

def test_fr_number():
    assert fr_number(12.5, "%") == f"12,5{NBSP}%"
    assert fr_number(50.0, "%") == f"50{NBSP}%"
    assert fr_number(1250, "ms") == f"1{NNBSP}250{NBSP}ms"
    assert fr_number(1234567.891) == f"1{NNBSP}234{NNBSP}567,9"
    assert fr_number(2.25) == "2,3"          # half rounded up, not to even
    assert fr_number(2 / 3 * 100, "%") == f"66,7{NBSP}%"
    assert fr_number(-0.01) == "0"
    assert fr_number(None) == "n.d."
    assert fr_number(7.04, decimals=0) == "7"


def test_bar_chart_is_valid_escaped_and_has_one_bar_per_value():
    svg = bar_chart("Motifs <de> transfert", ["<script>&", "b", "c"], [3, 1.5, 0], unit="%")
    root = ET.fromstring(svg)
    assert root.tag == "svg" and root.get("role") == "img"
    assert root.get("aria-label") == "Motifs <de> transfert"
    assert root.find("title").text == "Motifs <de> transfert"
    bars = root.findall("./g[@class='bars']/rect")
    assert len(bars) == 3
    assert [b.find("title").text for b in bars] == [f"<script>& : 3{NBSP}%", f"b : 1,5{NBSP}%", f"c : 0{NBSP}%"]
    assert "<script>" not in svg and "&lt;script&gt;&amp;" in svg
    assert "http" not in svg and "<script" not in svg
    # Highest bar the tallest; a zero a mere line on the axis (a missing value draws nothing).
    heights = [float(b.get("height")) for b in bars]
    assert heights[0] == pytest.approx(2 * heights[1])
    assert heights[1] > heights[2] == 1.0
    # Values written beside the bars too.
    texts = [t.text for t in root.iter("text")]
    assert f"1,5{NBSP}%" in texts
    assert bar_chart("Motifs <de> transfert", ["<script>&", "b", "c"], [3, 1.5, 0], unit="%") == svg


def test_horizontal_bar_chart():
    labels = ["demande_conseiller", "un motif au nom vraiment très très long qui ne tient pas", "x"]
    svg = bar_chart("Transferts", labels, [4, 2, 1], horizontal=True)
    root = ET.fromstring(svg)
    bars = root.findall("./g[@class='bars']/rect")
    assert len(bars) == 3
    assert bars[1].find("title").text == f"{labels[1]} : 2"          # the whole name, though cut on screen
    widths = [float(b.get("width")) for b in bars]
    assert widths[0] > widths[1] > widths[2] > 0
    with pytest.raises(ValueError):
        bar_chart("x", ["a", "b"], [1])


def test_grouped_and_line_charts():
    svg = grouped_bar_chart("Taux", ["8 h", "9 h", "<10 h>"],
                            {"Ouvert": [50.0, None, 100.0], "Fermé & nuit": [25.0, 10.0, None]}, unit="%")
    root = ET.fromstring(svg)
    bars = root.findall("./g[@class='bars']/rect")
    assert len(bars) == 4                                             # None: no bar
    assert bars[-1].find("title").text == f"9 h, Fermé & nuit : 10{NBSP}%"
    assert "Fermé &amp; nuit" in svg and "&lt;10 h&gt;" in svg

    svg = line_chart("Latence", ["01/05", "02/05", "03/05", "04/05"],
                     {"p50": [800, None, 900, 1000], "p95": [1500, 1600, None, None]}, "ms")
    root = ET.fromstring(svg)
    assert root.get("aria-label") == "Latence"
    series = root.findall("./g[@class='series']")
    assert len(series) == 2
    assert len(series[0].findall("circle")) == 3 and len(series[0].findall("polyline")) == 1   # the gap breaks it
    assert len(series[1].findall("circle")) == 2 and len(series[1].findall("polyline")) == 1
    assert series[0].find("circle/title").text == f"01/05, p50 : 800{NBSP}ms"
    assert "n.d." in root.find("desc").text


def test_empty_chart():
    root = ET.fromstring(bar_chart("Rien", [], []))
    assert "Aucune donnée" in "".join(root.itertext())
    assert not root.findall(".//rect")


# --- the page ------------------------------------------------------------------------------

async def test_indicators_page(ind):
    html = indicators_html(ind, start=date(2026, 4, 30), end=date(2026, 5, 3))
    assert html.startswith("<!DOCTYPE html>")
    assert '<html lang="fr">' in html
    assert '<link rel="stylesheet" href="/static/supervisor.css">' in html
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert '<form class="period" method="get"' in html
    # The route's parameters (bot/supervision/routes.py): from, to.
    assert 'name="from" value="2026-04-30"' in html
    assert 'name="to" value="2026-05-03"' in html
    assert "du 30 avril 2026 au 3 mai 2026" in html
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.DOTALL)
    assert len(svgs) == 11
    for svg in svgs:
        ET.fromstring(svg)
    assert html.count("<table") == 11                       # one per section (the questions' has the trend)
    assert f"<td>15 (93,8{NBSP}%)</td>" in html             # answered: 15 of 16 (93,75 rounded up)
    assert f"<td>3 (20{NBSP}%)</td>" in html                 # strict: 3 of 15 answered
    assert f"<td>73,3{NBSP}%</td>" in html                   # naive: 11 of 15
    assert "<td>n.d.</td>" in html                          # Sunday's latency
    assert "zone Nord-Ouest (02)" in html and "CGSS Martinique" in html


async def test_indicators_page_escapes(ind):
    hostile = {**ind,
               "top_question_types": [{"intent": "<script>alert(1)</script>", "count": 2}],
               "trend": {"days": ind["trend"]["days"], "counts": {"<script>alert(1)</script>": [1, 0, 1, 0]}},
               "by_office": {'"><img src=x onerror=alert(1)>': 3},
               "transfers_by_reason": {"a&b": 1}}
    html = indicators_html(hostile, start=date(2026, 4, 30), end=date(2026, 5, 3))
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a&amp;b" in html and "a&b" not in html
    for svg in re.findall(r"<svg.*?</svg>", html, flags=re.DOTALL):
        ET.fromstring(svg)
