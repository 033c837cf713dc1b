"""The demo information system's database and rules, on real SQLite files, plus the
pieces the actions share with it (identifiers, ceilings, spoken amounts and dates).
The HTTP path and the actions are in tests/test_actions.py."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from flows.actions.ceilings import score
from flows.actions.demo_si import CASES, build_database, demo_accounts, service
from flows.actions.demo_si.db import connect
from flows.actions.spoken import euros, of_period, percent_floor, spoken_period
from flows.identifiers import luhn_check_digit, luhn_ok, normalize_digits, siret_is_valid

ROOT = Path(__file__).resolve().parent.parent
# Dates that move periods, deadlines and the calendar year around: the first days of a
# year (nothing declared yet), deadline days, a leap day, the last day of a year.
DAYS = [date(2027, 1, 2), date(2027, 1, 31), date(2027, 2, 1), date(2027, 4, 30), date(2027, 7, 15),
        date(2027, 12, 31), date(2028, 2, 29), date(2026, 11, 24)]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[date, Path]:
    root = tmp_path_factory.mktemp("demo-si-days")
    paths = {}
    for day in DAYS:
        paths[day] = root / f"{day.isoformat()}.sqlite"
        build_database(paths[day], today=day)
    return paths


def test_init_is_idempotent_and_covers_every_case(tmp_path):
    db = tmp_path / "var" / "demo-si.sqlite"
    assert build_database(db) >= 50
    first = demo_accounts(db)
    again = subprocess.run([sys.executable, "-m", "flows.actions.demo_si", "init", "--db", str(db)],
                           check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    second = demo_accounts(db)
    assert first == second
    everyone = [a for group in second.values() for a in group]
    assert len(everyone) >= 50
    assert set(second) == set(CASES) and all(second[case] for case in CASES)
    assert len({a.siret for a in everyone}) == len(everyone)
    assert len({a.ref for a in everyone}) == len(everyone)
    # No half-built files left next to the database.
    assert sorted(p.name for p in db.parent.iterdir()) == ["demo-si.sqlite"]


def test_sirets_are_checksum_valid(built):
    for a in (a for group in demo_accounts(built[DAYS[0]]).values() for a in group):
        assert len(a.siret) == 14 and luhn_ok(a.siret[:9]) and luhn_ok(a.siret), a.siret
        assert siret_is_valid(a.siret)
        assert len(a.postcode) == 5 and a.postcode.isdigit()


def test_identities_do_not_depend_on_the_day(built):
    def identities(path: Path) -> set[tuple]:
        return {(a.case, a.siret, a.postcode, a.ref) for g in demo_accounts(path).values() for a in g}

    assert identities(built[DAYS[0]]) == identities(built[DAYS[-1]])


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_every_case_holds_on_any_day(built, day):
    conn = connect(built[day])
    try:
        for group in demo_accounts(built[day]).values():
            for a in group:
                t = service.turnover(conn, a.ref, day)
                year = t["current_year"] if t["current_year"]["periods_declared"] else t["previous_year"]
                s = score(t["activity"], year["year"], year["sales_cents"], year["services_cents"])
                if a.case in ("micro_near_ceiling", "mixed_near_services_ceiling"):
                    assert s.alert and not s.exceeded, (a.case, s)
                elif a.case == "micro_above_ceiling":
                    assert s.exceeded, (a.case, s)
                elif a.regime == "micro" and a.case != "closed":
                    assert not s.alert, (a.case, s)
                if a.case == "mixed_near_services_ceiling":
                    assert s.basis == "services"
                st = service.status(conn, a.ref, day)
                summary = service.summary(conn, a.ref, day)
                assert st["status"] == a.status
                if a.case == "declaration_missing":
                    assert st["missing_period"]["overdue"] is True
                elif a.case == "closed":
                    assert summary["next_deadline"] is None and st["closed_on"]
                else:
                    assert summary["next_deadline"]["overdue"] is False, (a.case, summary)
                    assert date.fromisoformat(summary["next_deadline"]["date"]) >= day
                if a.case == "payment_rejected":
                    assert st["rejected_payment"]["amount_cents"] == summary["amount_due_cents"] > 0
                elif a.case == "debt_due":
                    assert date.fromisoformat(summary["due_date"]) > day and summary["amount_due_cents"] > 0
                else:
                    assert summary["amount_due_cents"] == 0 and summary["due_date"] is None
                assert summary["last_declaration"] is not None
        # Nothing dated after the day the database describes.
        assert conn.execute("SELECT COUNT(*) FROM declarations WHERE declared_on > ? OR period_end >= declared_on",
                            (day.isoformat(),)).fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM payments WHERE paid_on > ?", (day.isoformat(),)).fetchone()[0] == 0
    finally:
        conn.close()


def test_lockout_window_and_reset(tmp_path):
    """The 24 h rules, on the real database with an explicit clock (a day cannot pass in a test)."""
    db = tmp_path / "si.sqlite"
    build_database(db, today=date(2026, 11, 24))
    account = demo_accounts(db)["up_to_date"][0]
    conn = connect(db)
    t0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    try:
        guarded = conn.execute("SELECT COUNT(*) FROM identification_guard").fetchone()[0]   # staff locks

        def try_(postcode: str, at: datetime) -> str:
            return service.identify(conn, account.siret, postcode, at)["outcome"]

        # Two failures, then a day later the window has passed: two more do not lock.
        assert try_(account.wrong_postcode, t0) == "refused"
        assert try_(account.wrong_postcode, t0 + timedelta(hours=1)) == "refused"
        later = t0 + timedelta(hours=25)
        assert try_(account.wrong_postcode, later) == "refused"
        assert try_(account.wrong_postcode, later + timedelta(minutes=1)) == "refused"
        # The third within 24 h locks, the right postcode included, for 24 h.
        assert try_(account.wrong_postcode, later + timedelta(minutes=2)) == "locked"
        assert try_(account.postcode, later + timedelta(hours=23)) == "locked"
        unlocked = later + timedelta(hours=24, minutes=3)
        assert try_(account.postcode, unlocked) == "verified"
        assert conn.execute("SELECT COUNT(*) FROM identification_guard").fetchone()[0] == guarded
        with pytest.raises(service.BadRequest):
            service.identify(conn, account.siret[:-1], account.postcode, unlocked)
    finally:
        conn.close()


def made_up_siret(siren8: str, nic4: str = "0001") -> str:
    siren = siren8 + luhn_check_digit(siren8)
    return siren + nic4 + luhn_check_digit(siren + nic4)


def test_typed_sirets_are_not_stored_in_clear(tmp_path):
    db = tmp_path / "si.sqlite"
    build_database(db, today=date(2026, 11, 24))
    conn = connect(db)
    stranger = made_up_siret("10203040")
    assert siret_is_valid(stranger)
    try:
        assert service.identify(conn, stranger, "75011", datetime.now(UTC))["outcome"] == "refused"
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    assert stranger not in dump


def test_attestation_requests_are_rows(tmp_path):
    db = tmp_path / "si.sqlite"
    build_database(db, today=date(2026, 11, 24))
    accounts = demo_accounts(db)
    conn = connect(db)
    now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    try:
        first = service.request_attestation(conn, accounts["up_to_date"][0].ref, "vigilance", now)
        second = service.request_attestation(conn, accounts["suspended"][0].ref, "formation", now)
        assert first["recorded"] and first["delivery"] == "online" and first["delay_hours"] == 48
        assert second["recorded"] and second["delivery"] == "post"   # online access suspended
        assert first["request_id"] != second["request_id"]
        refused = service.request_attestation(conn, accounts["closed"][0].ref, "vigilance", now)
        assert refused == {"recorded": False, "kind": "vigilance", "refusal": "closed"}
        rows = conn.execute("SELECT request_id, kind, delivery FROM attestation_requests ORDER BY id").fetchall()
        assert [tuple(r) for r in rows] == [(first["request_id"], "vigilance", "online"),
                                            (second["request_id"], "formation", "post")]
        with pytest.raises(service.BadRequest):
            service.request_attestation(conn, accounts["up_to_date"][0].ref, "passeport", now)
        with pytest.raises(service.NotFound):
            service.request_attestation(conn, "acc_0000000000000000", "vigilance", now)
    finally:
        conn.close()


def test_database_is_plain_sqlite(built):
    conn = sqlite3.connect(built[DAYS[0]])
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    assert {"accounts", "declarations", "payments", "debts", "identification_guard",
            "attestation_requests", "meta"} <= tables


# ------------------------------------------------------------------ shared pieces


def test_siret_checks():
    siret = made_up_siret("12345678")
    assert siret_is_valid(siret) and luhn_ok(siret[:9])
    assert not siret_is_valid(siret[:-1] + str((int(siret[-1]) + 1) % 10))
    assert not siret_is_valid(siret[:-1])
    # SIRET checksum right but SIREN checksum wrong.
    bad_siren = "123456780"                          # the right check digit is 2
    assert not luhn_ok(bad_siren)
    assert not siret_is_valid(bad_siren + "0001" + luhn_check_digit(bad_siren + "0001"))
    assert siret_is_valid("35600000000010")          # La Poste: digit sum multiple of 5
    assert siret_is_valid("35600000000048")          # La Poste head office: Luhn
    assert not siret_is_valid("35600000000011")
    assert normalize_digits(f"{siret[:3]} {siret[3:6]} {siret[6:9]} {siret[9:]}") == siret
    assert normalize_digits("siret 732") == ""        # words are not digits


@pytest.mark.parametrize(("cents", "said"), [
    (123_450, "1 234,50 euros"), (100_000, "1 000 euros"), (20_310_000, "203 100 euros"),
    (150, "1,50 euro"), (0, "0 euro"), (5, "0,05 euro"), (200, "2 euros"),
])
def test_euros(cents, said):
    assert euros(cents) == said


def test_periods_are_said_naturally():
    assert spoken_period(date(2026, 3, 1), date(2026, 3, 31)) == "mars 2026"
    assert of_period(date(2026, 4, 1), date(2026, 4, 30)) == "d'avril 2026"
    assert of_period(date(2026, 7, 1), date(2026, 9, 30)) == "du troisième trimestre 2026"
    assert of_period(date(2026, 2, 1), date(2026, 2, 28)) == "de février 2026"


@pytest.mark.parametrize(("activity", "sales", "services", "basis", "percent", "alert"), [
    ("sales", 162_480_00, 0, "total", 80, True),           # 80 % of 203 100 exactly
    ("sales", 162_479_00, 0, "total", 79, False),
    ("services", 0, 83_600_00, "services", 100, True),
    ("liberal", 0, 70_000_00, "services", 83, True),
    ("mixed", 60_000_00, 70_000_00, "services", 83, True),   # total at 64 %: services decide
    ("mixed", 170_000_00, 10_000_00, "total", 88, True),
    ("mixed", 50_000_00, 20_000_00, "total", 34, False),
])
def test_ceiling_score_2026(activity, sales, services, basis, percent, alert):
    s = score(activity, 2026, sales, services)
    assert (s.basis, s.percent, s.alert) == (basis, percent, alert)
    assert s.exceeded is (s.measured_cents > s.limit_cents)
    assert percent_floor(s.measured_cents, s.limit_cents) == percent
