"""The rasa-sdk actions through their webhook, with the demo information system behind
them: real processes on loopback (demo SI built by `callbot demo-si init`, served by
`demo-si serve`, action server (flows/actions/server.py) in its own virtualenv), no mocks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import date
from pathlib import Path

import pytest

from bot.caller_sim import free_port, stop_process
from bot.cli import ACTIONS_PYTHON, actions_command
from flows.action_client import ActionClient, ActionResult, ActionUnavailable
from flows.actions.ceilings import ceilings_for
from flows.actions.deadlines import deadlines_text
from flows.actions.demo_si import DemoAccount, demo_accounts
from flows.actions.demo_si.periods import deadline, next_period
from flows.actions.spoken import euros, of_period, spoken_date
from flows.identifiers import luhn_check_digit

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "test-" + uuid.uuid4().hex
SECRET = os.environ["CALLBOT_ACTIONS_SECRET"]   # tests/conftest.py: one per test session


def wait_listening(proc: subprocess.Popen, port: int, log: Path, what: str, timeout: float = 60) -> None:
    deadline_at = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited ({proc.returncode}): {log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline_at:
                pytest.fail(f"{what} not listening after {timeout} s: {log.read_text(errors='replace')}")
            time.sleep(0.2)


def start(cmd: list[str], port: int, log: Path, what: str, env: dict[str, str]) -> subprocess.Popen:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_listening(proc, port, log, what)
    return proc


@pytest.fixture(scope="module")
def si_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("demo-si") / "demo-si.sqlite"
    done = subprocess.run([sys.executable, "-m", "bot.cli", "demo-si", "init", "--db", str(db)],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert db.is_file()
    return db


@pytest.fixture(scope="module")
def accounts(si_db) -> dict[str, list[DemoAccount]]:
    return demo_accounts(si_db)


@pytest.fixture(scope="module")
def si_url(si_db, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("si-log") / "demo-si.log"
    proc = start([sys.executable, "-m", "flows.actions.demo_si", "serve", "--db", str(si_db), "--port", str(port)],
                 port, log, "demo SI", {"CALLBOT_SI_TOKEN": TOKEN})
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def _action_server(tmp_path_factory, si_url: str, name: str):
    if not ACTIONS_PYTHON.exists():
        pytest.fail(f"{ACTIONS_PYTHON} is missing: run 'make setup'")
    port = free_port()
    log = tmp_path_factory.mktemp(name) / "action-server.log"
    proc = start(actions_command(port), port, log, "action server",
                 {"CALLBOT_SI_URL": si_url, "CALLBOT_SI_TOKEN": TOKEN})
    return proc, f"http://127.0.0.1:{port}", log


@pytest.fixture(scope="module")
def actions(tmp_path_factory, si_url):
    proc, url, log = _action_server(tmp_path_factory, si_url, "actions")
    try:
        yield url
    finally:
        stop_process(proc)
        # Personal data never in the logs: no SIRET of the demo accounts appears there.
        text = log.read_text(errors="replace")
        assert not re.search(r"\b\d{14}\b", text), "a 14-digit number was logged by the action server"
        assert "acc_" not in text, "an account reference was logged by the action server"
        assert SECRET not in text


@pytest.fixture(scope="module")
def actions_si_down(tmp_path_factory):
    proc, url, _ = _action_server(tmp_path_factory, f"http://127.0.0.1:{free_port()}", "actions-si-down")
    try:
        yield url
    finally:
        stop_process(proc)


async def call(url: str, action: str, slots: dict, sender: str | None = None, secret: str = SECRET) -> ActionResult:
    client = ActionClient(url, secret=secret, timeout_s=10)
    try:
        return await client.run(action, sender_id=sender or uuid.uuid4().hex, slots=slots,
                                latest_text="", intent=None)
    finally:
        await client.close()


def slot_events(result: ActionResult) -> dict:
    return {e["name"]: e["value"] for e in result.events if e.get("event") == "slot"}


async def identify(url: str, siret: str, postcode: str, failures: int | None = None,
                   sender: str | None = None) -> ActionResult:
    return await call(url, "action_identify",
                      {"siret": siret, "code_postal": postcode, "identification_failures": failures}, sender)


async def identified_slots(url: str, account: DemoAccount) -> tuple[str, dict]:
    """(the call's sender_id, the slots after a verified identification in that call)."""
    sender = uuid.uuid4().hex
    result = await identify(url, account.siret, account.postcode, sender=sender)
    slots = slot_events(result)
    assert slots["identified"] is True, (account.case, slots)
    return sender, slots


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_token(sender: str, ref: str, expiry: int, secret: str = SECRET) -> str:
    """An identification token built here, independently, from the format documented in
    flows/actions/actions.py."""
    key = hmac.new(secret.encode(), b"callbot identification token key v1", hashlib.sha256).digest()
    payload = f"{_b64(ref.encode())}.{expiry}"
    message = json.dumps(["callbot-identification-v1", sender, payload], separators=(",", ":")).encode()
    return f"{payload}.{_b64(hmac.new(key, message, hashlib.sha256).digest())}"


async def summary_figures(url: str, sender: str, token: object) -> str | None:
    """What action_account_summary says with `token` in the call `sender`; None when it
    asks for identification instead (and then it must have said no figure)."""
    result = await call(url, "action_account_summary", {"identified": True, "account_id": token}, sender)
    said = " ".join(result.texts)
    if "identité" in said:
        assert not re.search(r"\d", said), said
        assert slot_events(result) == {"identified": False, "account_id": None}
        return None
    assert "euros" in said or "aucune somme" in said, said
    return said


def unknown_siret(accounts: dict[str, list[DemoAccount]], salt: str) -> str:
    """A checksum-valid SIRET that is no demo account's."""
    known = {a.siret for group in accounts.values() for a in group}
    n = int(uuid.uuid5(uuid.NAMESPACE_OID, salt).int % 10**7)
    while True:
        siren8 = f"1{n:07d}"
        siren = siren8 + luhn_check_digit(siren8)
        siret = siren + "0001" + luhn_check_digit(siren + "0001")
        if siret not in known:
            return siret
        n += 1


def db_rows(db: Path, sql: str, *params) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# ------------------------------------------------------------------ identification


async def test_identification_success(actions, accounts):
    account = accounts["up_to_date"][0]
    # Said or keyed with spaces: "123 456 789 00012".
    spaced = f"{account.siret[:3]} {account.siret[3:6]} {account.siret[6:9]} {account.siret[9:]}"
    result = await identify(actions, spaced, account.postcode)
    slots = slot_events(result)
    assert result.texts == []
    assert slots["identified"] is True
    assert slots["identification_locked"] is False
    assert slots["identification_failures"] == 0
    assert isinstance(slots["account_id"], str) and slots["account_id"]
    assert account.siret not in slots["account_id"] and account.siret[:9] not in slots["account_id"]
    assert slots["account_id"] != account.ref   # a signed token, not the bare reference


async def test_wrong_postcode_and_unknown_siret_get_the_same_answer(actions, accounts):
    account = accounts["up_to_date"][1]
    wrong = await identify(actions, account.siret, account.wrong_postcode, failures=1)
    unknown = await identify(actions, unknown_siret(accounts, "same-answer"), account.postcode, failures=1)
    assert wrong.texts == unknown.texts == []
    assert slot_events(wrong) == slot_events(unknown) == {
        "identified": False, "account_id": None, "identification_failures": 2,
        "identification_locked": False, "si_unavailable": False,
    }


def test_si_answers_identically_to_wrong_postcode_and_unknown_siret(si_url, accounts):
    account = accounts["up_to_date"][2]

    def ask(siret: str, postcode: str) -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"{si_url}/v1/identifications", method="POST",
            data=json.dumps({"siret": siret, "postcode": postcode}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()

    assert ask(account.siret, account.wrong_postcode) == ask(unknown_siret(accounts, "si-level"), account.postcode)


async def test_lockout_after_three_failures(actions, accounts):
    account = accounts["up_to_date"][3]
    failures = None
    for expected in (1, 2, 3):
        slots = slot_events(await identify(actions, account.siret, account.wrong_postcode, failures))
        assert slots["identified"] is False and slots["account_id"] is None
        assert slots["identification_failures"] == expected
        assert slots["identification_locked"] is (expected == 3)
        failures = slots["identification_failures"]
    # A new call, the right postcode: the account stays locked in the SI for 24 h.
    slots = slot_events(await identify(actions, account.siret, account.postcode))
    assert slots["identified"] is False and slots["account_id"] is None
    assert slots["identification_locked"] is True


async def test_unknown_siret_locks_like_a_known_one(actions, accounts):
    siret = unknown_siret(accounts, "lock")
    # Each try in a new call: only the SI's per-SIRET counter can lock.
    for attempt in (1, 2, 3, 4):
        slots = slot_events(await identify(actions, siret, "75011"))
        assert slots["identified"] is False and slots["identification_failures"] == 1
        assert slots["identification_locked"] is (attempt >= 3), attempt


async def test_three_tries_per_call_then_no_more(actions, accounts):
    account = accounts["up_to_date"][4]
    # Three failures already in this call: even the right postcode is not tried.
    slots = slot_events(await identify(actions, account.siret, account.postcode, failures=3))
    assert slots == {"identified": False, "account_id": None, "identification_failures": 3,
                     "identification_locked": True}
    # The SI counted nothing for that: a fresh call succeeds.
    assert slot_events(await identify(actions, account.siret, account.postcode))["identified"] is True


async def test_malformed_siret_is_a_failed_try(actions, accounts):
    account = accounts["up_to_date"][5]
    bad = account.siret[:-1] + str((int(account.siret[-1]) + 1) % 10)   # checksum broken
    slots = slot_events(await identify(actions, bad, account.postcode, failures=0))
    assert slots["identified"] is False and slots["identification_failures"] == 1
    slots = slot_events(await identify(actions, account.siret, "750", failures=2))
    assert slots["identification_failures"] == 3 and slots["identification_locked"] is True


async def test_staff_locked_account_is_refused_with_the_right_postcode(actions, accounts):
    account = accounts["locked"][0]
    slots = slot_events(await identify(actions, account.siret, account.postcode))
    assert slots["identified"] is False and slots["account_id"] is None
    assert slots["identification_locked"] is True


async def test_success_resets_the_account_counter(actions, accounts):
    account = accounts["up_to_date"][6]
    for _ in range(2):
        await identify(actions, account.siret, account.wrong_postcode)
    assert slot_events(await identify(actions, account.siret, account.postcode))["identified"] is True
    # Two more failures do not lock: the earlier two were forgotten on success.
    for _ in range(2):
        slots = slot_events(await identify(actions, account.siret, account.wrong_postcode))
    assert slots["identification_locked"] is False
    assert slot_events(await identify(actions, account.siret, account.postcode))["identified"] is True


# ------------------------------------------------------------------ account summary

PERSONAL_ACTIONS = ("action_account_summary", "action_online_failure", "action_threshold",
                    "action_attestation_request")


@pytest.mark.parametrize("action", PERSONAL_ACTIONS)
async def test_nothing_personal_without_identification(actions, accounts, si_db, action):
    account = accounts["debt_due"][0]
    forged = [
        {},
        {"identified": False, "account_id": account.ref},
        {"identified": True, "account_id": None},
        {"identified": "false", "account_id": account.ref},
        # What anyone who reaches the webhook could claim: the slots alone prove nothing.
        {"identified": True, "account_id": account.ref},
        {"identified": "true", "account_id": f"{_b64(account.ref.encode())}.9999999999.{_b64(b'x' * 32)}"},
        {"identified": True, "account_id": {"ref": account.ref}},
    ]
    for slots in forged:
        result = await call(actions, action, slots)
        said = " ".join(result.texts)
        assert "identité" in said and "SIRET" in said, (slots, said)
        assert not re.search(r"\d", said), (slots, said)
        assert slot_events(result).get("identified") is False
    if action == "action_attestation_request":
        assert not db_rows(si_db, "SELECT 1 FROM attestation_requests r JOIN accounts a ON a.id = r.account_id"
                                  " WHERE a.ref = ?", account.ref)


async def test_summary_after_identification(actions, accounts, si_db):
    account = accounts["debt_due"][1]
    sender, slots = await identified_slots(actions, account)
    result = await call(actions, "action_account_summary", slots, sender)
    said = " ".join(result.texts)

    (acc,) = db_rows(si_db, "SELECT id, frequency FROM accounts WHERE ref = ?", account.ref)
    (debt,) = db_rows(si_db, "SELECT SUM(amount_cents) AS total, MIN(due_on) AS due FROM debts"
                             " WHERE account_id = ? AND settled_on IS NULL", acc["id"])
    decl = db_rows(si_db, "SELECT * FROM declarations WHERE account_id = ? ORDER BY period_end DESC", acc["id"])[0]
    pay = db_rows(si_db, "SELECT * FROM payments WHERE account_id = ? AND outcome = 'received'"
                         " ORDER BY paid_on DESC, id DESC", acc["id"])[0]
    assert debt["total"] > 0
    assert f"{euros(debt['total'])} à payer, au plus tard le {spoken_date(date.fromisoformat(debt['due']))}" in said
    last = (date.fromisoformat(decl["period_start"]), date.fromisoformat(decl["period_end"]))
    assert f"celle {of_period(*last)}, a été faite le {spoken_date(date.fromisoformat(decl['declared_on']))}" in said
    assert f"{euros(pay['amount_cents'])}, le {spoken_date(date.fromisoformat(pay['paid_on']))}" in said
    following = next_period(acc["frequency"], last)
    assert (f"prochaine déclaration, celle {of_period(*following)}, est à faire au plus tard le "
            f"{spoken_date(deadline(following))}") in said
    # Written for the TTS: "1 234,50 euros", never "1234.50" or a raw ISO date.
    assert not re.search(r"\d{4}-\d{2}-\d{2}|\d\.\d", said)


async def test_summary_of_an_up_to_date_account(actions, accounts):
    sender, slots = await identified_slots(actions, accounts["up_to_date"][7])
    said = " ".join((await call(actions, "action_account_summary", slots, sender)).texts)
    assert "aucune somme à payer" in said
    assert "dernière déclaration" in said and "dernier paiement reçu" in said


# ------------------------------------------------------------------ online failures

FAILURE_REASONS = {
    "declaration_missing": ("déclaration manque", "déclarez zéro"),
    "payment_rejected": ("rejeté votre dernier prélèvement", "coordonnées bancaires"),
    "debt_due": ("est à payer", "délai"),
    "suspended": ("suspendu", "conseiller"),
    "address_unknown": ("nous est revenu", "guichet unique"),
    "closed": ("clos", "cessation"),
    "up_to_date": ("aucun blocage", "réessayez"),
}


@pytest.mark.parametrize("case", list(FAILURE_REASONS))
async def test_online_failure_reason(actions, accounts, case):
    account = accounts[case][0]
    sender, slots = await identified_slots(actions, account)
    result = await call(actions, "action_online_failure", slots, sender)
    said = " ".join(result.texts)
    assert slot_events(result) == {"account_status": account.status}
    for words in FAILURE_REASONS[case]:
        assert words in said, (case, said)


async def test_rejected_payment_says_amount_and_date(actions, accounts, si_db):
    account = accounts["payment_rejected"][1]
    sender, slots = await identified_slots(actions, account)
    said = " ".join((await call(actions, "action_online_failure", slots, sender)).texts)
    (rejected,) = db_rows(si_db, "SELECT p.amount_cents, p.paid_on FROM payments p JOIN accounts a"
                                 " ON a.id = p.account_id WHERE a.ref = ? AND p.outcome = 'rejected'", account.ref)
    assert (f"de {euros(rejected['amount_cents'])}, le {spoken_date(date.fromisoformat(rejected['paid_on']))}"
            in said)


# ------------------------------------------------------------------ threshold


def expected_percent(db: Path, ref: str) -> tuple[int, str]:
    """Percent of the ceiling from the declarations, computed here independently."""
    today = date.today()
    (acc,) = db_rows(db, "SELECT id, activity FROM accounts WHERE ref = ?", ref)
    for year in (today.year, today.year - 1):
        (row,) = db_rows(db, "SELECT COUNT(*) AS n, COALESCE(SUM(sales_cents), 0) AS s,"
                             " COALESCE(SUM(services_cents), 0) AS v FROM declarations"
                             " WHERE account_id = ? AND substr(period_start, 1, 4) = ?", acc["id"], str(year))
        if row["n"]:
            break
    sales_limit, services_limit = ceilings_for(year)
    total = row["s"] + row["v"]
    if acc["activity"] == "sales":
        return 100 * total // sales_limit, "total"
    if acc["activity"] in ("services", "liberal"):
        return 100 * total // services_limit, "total"
    by_total, by_services = 100 * total // sales_limit, 100 * row["v"] // services_limit
    return (by_services, "services") if by_services > by_total else (by_total, "total")


def test_2026_ceilings():
    assert ceilings_for(2026) == (203_100_00, 83_600_00)
    assert ceilings_for(2025) == (188_700_00, 77_700_00)


@pytest.mark.parametrize(("case", "alert", "words"), [
    ("micro_near_ceiling", True, "approchez du plafond"),
    ("micro_above_ceiling", True, "dépassé le plafond"),
    ("micro_below_ceiling", False, "en dessous du seuil"),
    ("mixed_near_services_ceiling", True, "prestations de services atteignent"),
])
async def test_threshold(actions, accounts, si_db, case, alert, words):
    for account in accounts[case]:
        sender, slots = await identified_slots(actions, account)
        result = await call(actions, "action_threshold", slots, sender)
        said = " ".join(result.texts)
        assert slot_events(result) == {"threshold_alert": alert}, (account.activity, said)
        assert words in said, said
        percent, _ = expected_percent(si_db, account.ref)
        assert f"{percent} %" in said, (percent, said)
        assert (percent >= 80) is alert
        assert "plafond" in said and re.search(r"\b20\d\d\b", said)   # the year the ceiling applies to


async def test_threshold_does_not_apply_outside_micro(actions, accounts):
    sender, slots = await identified_slots(actions, accounts["not_micro"][0])
    result = await call(actions, "action_threshold", slots, sender)
    assert slot_events(result) == {"threshold_alert": False}
    assert "ne s'appliquent pas" in " ".join(result.texts)


# ------------------------------------------------------------------ attestations


def requests_of(db: Path, ref: str) -> list[sqlite3.Row]:
    return db_rows(db, "SELECT r.* FROM attestation_requests r JOIN accounts a ON a.id = r.account_id"
                       " WHERE a.ref = ?", ref)


async def test_attestation_request_is_recorded(actions, accounts, si_db):
    account = accounts["up_to_date"][8]
    sender, slots = await identified_slots(actions, account)
    assert requests_of(si_db, account.ref) == []
    result = await call(actions, "action_attestation_request", slots, sender)
    said = " ".join(result.texts)
    assert slot_events(result) == {"attestation_requested": True}
    assert "attestation de vigilance" in said and "espace en ligne" in said and "48 heures" in said
    (row,) = requests_of(si_db, account.ref)
    assert row["kind"] == "vigilance" and row["delivery"] == "online" and row["channel"] == "callbot"


async def test_attestation_by_post_without_online_space(actions, accounts, si_db):
    account = accounts["no_online_space"][0]
    sender, slots = await identified_slots(actions, account)
    result = await call(actions, "action_attestation_request", {**slots, "attestation_kind": "chiffre d'affaires"},
                        sender)
    said = " ".join(result.texts)
    assert slot_events(result) == {"attestation_requested": True}
    assert "courrier" in said and "chiffre d'affaires" in said
    (row,) = requests_of(si_db, account.ref)
    assert row["kind"] == "chiffre_affaires" and row["delivery"] == "post"


async def test_attestation_refused_while_the_address_is_unknown(actions, accounts, si_db):
    account = accounts["address_unknown"][0]
    sender, slots = await identified_slots(actions, account)
    result = await call(actions, "action_attestation_request", slots, sender)
    said = " ".join(result.texts)
    assert slot_events(result) == {"attestation_requested": False}
    assert "adresse à jour" in said
    assert requests_of(si_db, account.ref) == []


async def test_vigilance_refused_with_a_missing_declaration(actions, accounts, si_db):
    account = accounts["declaration_missing"][1]
    sender, slots = await identified_slots(actions, account)
    result = await call(actions, "action_attestation_request", {**slots, "attestation_kind": "vigilance"}, sender)
    assert slot_events(result) == {"attestation_requested": False}
    assert "déclaration" in " ".join(result.texts)
    assert requests_of(si_db, account.ref) == []


# ------------------------------------------------------------------ SI down, deadline action


async def test_si_down_is_said_politely(actions_si_down, accounts):
    account = accounts["up_to_date"][9]
    result = await identify(actions_si_down, account.siret, account.postcode)
    slots = slot_events(result)
    assert slots["si_unavailable"] is True and slots["identified"] is False and slots["account_id"] is None
    assert "identification_failures" not in slots   # the caller did nothing wrong
    assert result.texts and "pour le moment" in " ".join(result.texts)
    for action in PERSONAL_ACTIONS:
        # A valid token (as if identified before the SI went down): the SI is then asked.
        sender = uuid.uuid4().hex
        token = signed_token(sender, account.ref, int(time.time()) + 600)
        result = await call(actions_si_down, action, {"identified": True, "account_id": token}, sender)
        said = " ".join(result.texts)
        assert "pour le moment" in said and not re.search(r"\d", said), (action, said)
        assert slot_events(result) == {"si_unavailable": True}
    # The action server is still there.
    assert (await call(actions_si_down, "action_declaration_deadline", {})).texts


def test_si_refuses_calls_without_its_token(si_url, accounts):
    request = urllib.request.Request(f"{si_url}/v1/accounts/{accounts['up_to_date'][0].ref}/summary")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 401


async def test_declaration_deadline_still_works(actions):
    result = await call(actions, "action_declaration_deadline", {})
    assert result.texts == deadlines_text(date.today())
    assert result.events == []


# ------------------------------------------------------------------ who may call, what proves identity


def webhook_request(url: str, action: str, slots: dict, *, sender: str = "forged-call",
                    headers: dict | None = None, query: str = "") -> tuple[int, str]:
    """A raw POST /webhook, as anyone who reaches the port could send it."""
    body = {"next_action": action, "sender_id": sender, "version": "3.21.0",
            "tracker": {"sender_id": sender, "slots": slots, "latest_message": {}, "events": []},
            "domain": {"slots": {}, "responses": {}, "actions": [action]}}
    request = urllib.request.Request(f"{url}/webhook{query}", method="POST", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def get(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


async def test_webhook_refuses_requests_without_the_secret(actions, accounts):
    account = accounts["debt_due"][2]
    forged = {"identified": True, "account_id": account.ref}
    for headers, query in [({}, ""), ({"Authorization": f"Bearer {SECRET}x"}, ""), ({"Authorization": SECRET}, ""),
                           ({}, "?token=wrong"), ({"Authorization": "Bearer "}, "?token=")]:
        status, body = webhook_request(actions, "action_account_summary", forged, headers=headers, query=query)
        assert status == 401, (headers, query, body)
        assert json.loads(body) == {"error": "unauthorized"}
    assert get(f"{actions}/actions") == 401
    assert get(f"{actions}/health") == 200   # says nothing but "ok"
    # Both ways of presenting it are accepted: our client's header, Rasa's endpoint token.
    assert get(f"{actions}/actions", {"Authorization": f"Bearer {SECRET}"}) == 200
    status, body = webhook_request(actions, "action_declaration_deadline", {}, query=f"?token={SECRET}")
    assert status == 200 and json.loads(body)["responses"]
    # Our client says what is wrong: the two sides do not share the secret.
    with pytest.raises(ActionUnavailable, match="CALLBOT_ACTIONS_SECRET"):
        await call(actions, "action_declaration_deadline", {}, secret="not-" + SECRET)
    with pytest.raises(ActionUnavailable, match="CALLBOT_ACTIONS_SECRET"):
        await call(actions, "action_declaration_deadline", {}, secret="")


async def test_a_token_proves_identity_for_its_own_call_only(actions, accounts):
    account = accounts["debt_due"][3]
    sender, slots = await identified_slots(actions, account)
    token = slots["account_id"]
    assert await summary_figures(actions, sender, token)
    assert await summary_figures(actions, uuid.uuid4().hex, token) is None
    # The `identified` slot still has to say so: the dialogue may have dropped the identification.
    result = await call(actions, "action_account_summary", {"identified": False, "account_id": token}, sender)
    assert not re.search(r"\d", " ".join(result.texts))


async def test_expired_or_altered_tokens_prove_nothing(actions, accounts):
    account, other = accounts["up_to_date"][11], accounts["debt_due"][0]
    sender, slots = await identified_slots(actions, account)
    token = slots["account_id"]
    now = int(time.time())
    # The format is the documented one: a token built here is accepted while it is valid...
    assert await summary_figures(actions, sender, signed_token(sender, account.ref, now + 60))
    # ...and refused once expired, or signed with another key.
    assert await summary_figures(actions, sender, signed_token(sender, account.ref, now - 1)) is None
    assert await summary_figures(actions, sender, signed_token(sender, account.ref, now + 60, "x" + SECRET)) is None
    ref_part, expiry, mac = token.split(".")
    altered = [
        f"{_b64(other.ref.encode())}.{expiry}.{mac}",                     # another account
        f"{ref_part}.{int(expiry) + 10 * 3600}.{mac}",                    # a longer life
        f"{ref_part}.{expiry}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",  # its MAC re-spelled
        f"{ref_part}.{expiry}.", f"{ref_part}.{expiry}", token + ".x", token + "=", " " + token,
    ]
    for forged in altered:
        assert await summary_figures(actions, sender, forged) is None, forged
    assert await summary_figures(actions, sender, token)   # the real one still works


async def test_the_server_counts_failures_whatever_the_request_claims(actions, accounts):
    account = accounts["up_to_date"][10]
    sender = uuid.uuid4().hex
    # Malformed postcodes: failures counted here without asking the SI, so the SI does not
    # lock the account and what locks below is this server's count for the call.
    for expected in (1, 2, 3):
        slots = slot_events(await identify(actions, account.siret, "750", failures=0, sender=sender))
        assert slots["identification_failures"] == expected
    slots = slot_events(await identify(actions, account.siret, account.postcode, failures=0, sender=sender))
    assert slots == {"identified": False, "account_id": None, "identification_failures": 3,
                     "identification_locked": True}
    # Another call is not locked.
    assert slot_events(await identify(actions, account.siret, account.postcode))["identified"] is True


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine other than loopback, if it has one."""
    candidates = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))   # no packet sent: only picks the outgoing interface
            candidates.append(probe.getsockname()[0])
    except OSError:
        pass
    try:
        candidates += subprocess.run(["hostname", "-I"], check=False, capture_output=True, text=True,
                                     timeout=5).stdout.split()
    except (OSError, subprocess.SubprocessError):
        pass
    for candidate in candidates:
        address = ipaddress.ip_address(candidate)
        if address.version == 4 and not (address.is_loopback or address.is_unspecified):
            return candidate
    return None


def test_listens_on_loopback_only(actions):
    port = int(actions.rsplit(":", 1)[1])
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try the action server on")
    # The address works here: something listening on it is reached...
    with socket.create_server((address, 0)) as listener:
        socket.create_connection((address, listener.getsockname()[1]), timeout=2).close()
    # ...but not the action server, which answers on 127.0.0.1.
    with pytest.raises(OSError):
        socket.create_connection((address, port), timeout=2).close()
    socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_refuses_to_start_without_the_secret():
    env = {k: v for k, v in os.environ.items() if k != "CALLBOT_ACTIONS_SECRET"}
    done = subprocess.run(actions_command(free_port()), check=False, cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "CALLBOT_ACTIONS_SECRET is not set" in done.stderr
