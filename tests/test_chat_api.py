"""The text channel (/api/chat) through a real aiohttp server, the call store behind it,
and the rasa-sdk action server run for real in its own virtualenv."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import time
from datetime import date
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.caller_sim import free_port, stop_process
from bot.cli import ACTIONS_PYTHON, actions_command
from bot.config import load_settings
from bot.server import create_app
from flows.actions.deadlines import deadlines_text
from flows.knowledge import load_knowledge
from flows.slots import PARSERS
from tests.domain import DOMAIN_TEAMS
from tests.provisioned import provisioned_var

ROOT = Path(__file__).resolve().parent.parent


MESSAGE_KEYS = {"replies", "intent", "team", "handoff", "awaiting", "ended", "sources", "slow"}
DEADLINE_QUESTION = "c'est quand la prochaine échéance pour déclarer mon chiffre d'affaires"
SHORT_DEADLINE_QUESTION = "c'est quand la prochaine échéance pour déclarer"
PASSWORD_QUESTION = "j'ai oublié mon mot de passe et je n'arrive plus à me connecter"
CLOSING_QUESTION = "je voudrais fermer ma micro-entreprise, quelles sont les démarches"


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory) -> Path:
    return provisioned_var(tmp_path_factory.mktemp("chat-var"))


@pytest.fixture(scope="module")
def action_server(tmp_path_factory):
    """The action server (flows/actions/server.py) on a free port, as `callbot serve` runs it."""
    if not ACTIONS_PYTHON.exists():
        pytest.fail(f"{ACTIONS_PYTHON} is missing: run 'make setup'")
    port = free_port()
    log = tmp_path_factory.mktemp("actions") / "action-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            actions_command(port),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers are stopped with it
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"action server exited ({proc.returncode}): {log.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"action server not listening after 60 s: {log.read_text(errors='replace')}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {os.environ['CALLBOT_ADMIN_TOKEN']}"}


async def start_client(var_dir: Path, **overrides) -> TestClient:
    overrides = {"admin_token": os.environ["CALLBOT_ADMIN_TOKEN"], **overrides}
    # env={} keeps this machine's settings out; the action server's secret is the session's
    # (tests/conftest.py), which the action server reads from the environment too.
    settings = load_settings(env={}, var_dir=var_dir, actions_secret=os.environ["CALLBOT_ACTIONS_SECRET"],
                             **overrides)
    client = TestClient(TestServer(create_app(settings, voice=False)))
    await client.start_server()
    return client


@pytest.fixture(scope="module")
async def client(var_dir, action_server):
    client = await start_client(var_dir, actions_url=action_server)
    yield client
    await client.close()


@pytest.fixture(scope="module")
async def client_actions_down(var_dir, client):
    # `client` first: it computes the router cache this server then reuses.
    client = await start_client(var_dir, actions_url=f"http://127.0.0.1:{free_port()}")
    yield client
    await client.close()


@pytest.fixture(scope="module")
async def client_short_ttl(var_dir, client):
    client = await start_client(
        var_dir, actions_url=f"http://127.0.0.1:{free_port()}", chat_session_ttl_s=0.3
    )
    yield client
    await client.close()


async def open_session(client: TestClient) -> dict:
    resp = await client.post("/api/chat")
    assert resp.status == 201
    body = await resp.json()
    assert isinstance(body["session_id"], str) and body["session_id"]
    assert isinstance(body["call_id"], str) and body["call_id"]
    assert body["replies"] and all(isinstance(r, str) for r in body["replies"])
    return body


async def send(client: TestClient, session_id: str, **message) -> dict:
    resp = await client.post(f"/api/chat/{session_id}/messages", json=message)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert set(body) == MESSAGE_KEYS, body
    assert isinstance(body["replies"], list) and all(isinstance(r, str) for r in body["replies"])
    assert body["team"] is None or body["team"] in DOMAIN_TEAMS, body
    if body["handoff"] is not None:
        assert set(body["handoff"]) == {"team", "reason"} and body["handoff"]["team"] in DOMAIN_TEAMS
    assert body["awaiting"] in (None, "confirmation", "choice", *PARSERS)
    assert isinstance(body["ended"], bool)
    return body


async def expect_error(resp: aiohttp.ClientResponse, status: int, *words: str) -> str:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"} and isinstance(body["error"], str)
    for word in words:
        assert word in body["error"], body["error"]
    return body["error"]


# ------------------------------------------------------------------ contract


async def test_open_session(client):
    body = await open_session(client)
    said = " ".join(body["replies"])
    assert "assistant automatique" in said and "conseiller" in said and "enregistré" in said


async def test_text_message(client):
    session = await open_session(client)
    body = await send(client, session["session_id"], text=PASSWORD_QUESTION)
    assert body["intent"] == "mot_de_passe_perdu"
    assert body["team"] == "compte"
    assert body["handoff"] is None and body["awaiting"] == "confirmation" and body["ended"] is False
    assert len(body["replies"]) == 2


async def test_dtmf_zero_hands_off(client):
    session = await open_session(client)
    body = await send(client, session["session_id"], dtmf="0")
    assert body["handoff"] == {"team": "accueil", "reason": "demande_conseiller"}
    assert body["team"] == "accueil"


async def test_teams_are_routing_labels(client):
    asked = {
        "je n'arrive plus à payer mes cotisations, je n'ai plus d'argent": "difficultes",
        "mon client me demande une attestation de vigilance": "attestations",
        "la caf a diminué mon aide au logement": "hors_perimetre",
    }
    for text, team in asked.items():
        session = await open_session(client)
        body = await send(client, session["session_id"], text=text)
        assert body["team"] == team, (text, body)


async def test_unknown_session(client):
    resp = await client.post("/api/chat/0123456789abcdef/messages", json={"text": "bonjour"})
    await expect_error(resp, 404, "session")


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        pytest.param(b'{"text": "bonjour"', ["not valid JSON"], id="malformed-json"),
        pytest.param(b'{"text": "caf\xe9"}', ["UTF-8"], id="latin-1-bytes"),
        pytest.param(b"\xff\xfe\x00\x00", ["UTF-8"], id="binary"),
        pytest.param(b'["bonjour"]', ["JSON object"], id="json-array"),
        pytest.param(b'"bonjour"', ["JSON object"], id="json-string"),
        pytest.param(b"", ["not valid JSON"], id="empty-body"),
        pytest.param(
            b'{"text": "bonjour", "dtmf": "1"}', ["exactly one", "text", "dtmf"], id="text-and-dtmf"
        ),
        pytest.param(b"{}", ["exactly one"], id="neither"),
        pytest.param(b'{"dtmf": "12A"}', ["dtmf", "0-9"], id="dtmf-letter"),
        pytest.param(b'{"dtmf": ""}', ["dtmf"], id="dtmf-empty"),
        pytest.param(b'{"dtmf": 5}', ["dtmf"], id="dtmf-number"),
        pytest.param(('{"dtmf": "%s"}' % ("1" * 33)).encode(), ["dtmf", "32"], id="dtmf-too-long"),
        pytest.param(b'{"text": 42}', ["'text' must be a string"], id="text-number"),
    ],
)
async def test_bad_requests(client, raw, words):
    session = await open_session(client)
    url = f"/api/chat/{session['session_id']}/messages"
    resp = await client.post(url, data=raw, headers={"Content-Type": "application/json"})
    await expect_error(resp, 400, *words)
    # The session is still usable.
    body = await send(client, session["session_id"], dtmf="0")
    assert body["handoff"] is not None


@pytest.mark.parametrize(
    "message",
    [{"text": None, "dtmf": "0"}, {"text": "au revoir", "dtmf": None}],
    ids=["null-text", "null-dtmf"],
)
async def test_null_fields_are_not_server_errors(client, message):
    session = await open_session(client)
    resp = await client.post(f"/api/chat/{session['session_id']}/messages", json=message)
    assert resp.status in (200, 400), await resp.text()  # absent or refused, never a 500
    assert resp.content_type == "application/json"


async def test_oversized_body(client):
    session = await open_session(client)
    url = f"/api/chat/{session['session_id']}/messages"
    big = json.dumps({"text": "a" * 20_000}).encode()
    await expect_error(
        await client.post(url, data=big, headers={"Content-Type": "application/json"}), 413, "too large"
    )

    async def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(40):
            yield b" " * 1024

    await expect_error(
        await client.post(url, data=chunks(), headers={"Content-Type": "application/json"}), 413, "too large"
    )
    # Under the byte limit but a text no caller says in one turn.
    await expect_error(await client.post(url, json={"text": "mot " * 600}), 413, "2000")
    assert (await send(client, session["session_id"], dtmf="0"))["handoff"] is not None


# --------------------------------------------------------------------- store


async def test_call_and_turns_are_stored(client):
    session = await open_session(client)
    sid, call_id = session["session_id"], session["call_id"]
    first = await send(client, sid, text=CLOSING_QUESTION)
    assert first["intent"] == "cesser_activite"
    await send(client, sid, dtmf="0")
    await send(client, sid, text="au revoir")  # still in handoff: the caller waits

    resp = await client.get(f"/api/calls/{call_id}", headers=admin_headers())
    assert resp.status == 200
    call = await resp.json()
    assert call["id"] == call_id and call["channel"] == "text"
    assert call["team"] == "cessation"
    turns = call["turns"]
    assert [t["index"] for t in turns] == list(range(len(turns)))
    assert turns[0]["speaker"] == "bot" and turns[0]["text"] == " ".join(session["replies"])
    caller = [t for t in turns if t["speaker"] == "caller"]
    assert caller[0]["text"] == CLOSING_QUESTION
    assert caller[0]["intent"] == "cesser_activite" and caller[0]["intent_score"] > 0.5  # calibrated probability
    assert caller[1]["text"] == "[touches 0]"
    bot = [t for t in turns if t["speaker"] == "bot"]
    assert bot[1]["intent"] == "cesser_activite" and bot[1]["text"] == " ".join(first["replies"])
    kinds = [e["kind"] for e in call["events"]]
    assert "dtmf" in kinds and "handoff" in kinds
    handoff = next(e for e in call["events"] if e["kind"] == "handoff")
    assert handoff["data"] == {"team": "cessation", "reason": "demande_conseiller"}


async def test_slow_speech_on_the_text_channel(client):
    """Slow-speech mode is a way of speaking, and of wording: short sentences and figures
    said twice reach the text channel too, and each change is in the call record."""
    session = await open_session(client)
    sid = session["session_id"]
    first = await send(client, sid, text="je voudrais fermer ma micro-entreprise, quelles sont les démarches")
    assert not first["slow"]
    slow = await send(client, sid, text="parlez plus lentement")
    assert slow["slow"] and "Je répète : 30 jours." in slow["replies"]
    back = await send(client, sid, text="vous pouvez parler normalement")
    assert not back["slow"]
    call = await (await client.get(f"/api/calls/{session['call_id']}", headers=admin_headers())).json()
    changes = [e["data"] for e in call["events"] if e["kind"] == "slow_speech"]
    assert changes == [{"on": True, "reason": "asked"}, {"on": False, "reason": "asked"}]


async def test_goodbye_closes_the_call(client):
    session = await open_session(client)
    body = await send(client, session["session_id"], text="merci, au revoir")
    assert body["ended"] is True
    call = await (await client.get(f"/api/calls/{session['call_id']}", headers=admin_headers())).json()
    assert call["outcome"] == "completed" and call["ended_at"] is not None


async def test_unknown_call(client):
    await expect_error(await client.get("/api/calls/nope", headers=admin_headers()), 404, "unknown call")


async def test_call_records_need_the_admin_token(client):
    session = await open_session(client)
    for path in (f"/api/calls/{session['call_id']}", f"/api/calls/{session['call_id']}/recording"):
        await expect_error(await client.get(path), 401, "connexion requise")
        await expect_error(await client.get(path, headers={"Authorization": "Basic YWRtaW46YWRtaW4="}), 401)
        await expect_error(await client.get(path, headers={"Authorization": "Bearer not-the-token"}), 403)
    call = await (await client.get(f"/api/calls/{session['call_id']}", headers=admin_headers())).json()
    # The record names its recording by route, never by a path on the server's disk.
    assert "recording" not in call and call["recording_url"] is None  # the text channel records no audio
    resp = await client.get(f"/api/calls/{session['call_id']}/recording", headers=admin_headers())
    await expect_error(resp, 404, "no recording")


async def test_call_records_are_closed_without_an_admin_token(var_dir, client):
    closed = await start_client(var_dir, admin_token="", actions_url=f"http://127.0.0.1:{free_port()}")
    try:
        session = await open_session(closed)
        resp = await closed.get(f"/api/calls/{session['call_id']}", headers=admin_headers())
        await expect_error(resp, 403, "aucun jeton configuré")
    finally:
        await closed.close()


async def test_session_expires(client_short_ttl):
    client = client_short_ttl
    session = await open_session(client)
    await send(client, session["session_id"], dtmf="5")  # in time
    await asyncio.sleep(0.6)
    resp = await client.post(f"/api/chat/{session['session_id']}/messages", json={"text": "bonjour"})
    await expect_error(resp, 404, "expired")
    call = await (await client.get(f"/api/calls/{session['call_id']}", headers=admin_headers())).json()
    assert call["outcome"] == "expired" and call["ended_at"] is not None


# ------------------------------------------------------------------- actions


def assert_computed_deadlines(replies: list[str]) -> None:
    said = " ".join(replies)
    assert "trimestre" in said and re.search(r"\b20\d\d\b", said), said
    static = load_knowledge().question_types["echeances_declaration"].answer.text
    assert static not in replies
    assert replies[:3] == deadlines_text(date.today())  # what the action computed today


async def test_next_deadline_is_computed_by_the_action_server(client):
    session = await open_session(client)
    body = await send(client, session["session_id"], text=DEADLINE_QUESTION)
    assert body["intent"] == "echeances_declaration", body
    assert body["team"] == "declaration"
    assert_computed_deadlines(body["replies"])
    assert body["awaiting"] == "confirmation"


async def test_deadline_question_without_chiffre_d_affaires_uses_the_action(client):
    session = await open_session(client)
    body = await send(client, session["session_id"], text=SHORT_DEADLINE_QUESTION)
    assert body["intent"] == "echeances_declaration", body
    assert_computed_deadlines(body["replies"])


async def test_static_answer_when_the_action_server_is_down(client_actions_down):
    client = client_actions_down
    session = await open_session(client)
    body = await send(client, session["session_id"], text=SHORT_DEADLINE_QUESTION)
    assert body["intent"] == "echeances_declaration"
    static = load_knowledge().question_types["echeances_declaration"].answer.text
    assert body["replies"][0] == static
    assert body["handoff"] is None and body["ended"] is False


# ------------------------------------------------------ a dialogue that recovers


async def test_no_but_a_question_is_answered_not_taken_for_a_goodbye(client):
    session = await open_session(client)
    sid = session["session_id"]
    await send(client, sid, text=PASSWORD_QUESTION)
    body = await send(client, sid, text="non mais attendez, pour l'attestation de vigilance, elle est valable "
                                        "combien de temps")
    assert body["intent"] == "attestation_vigilance" and body["team"] == "attestations", body
    assert body["ended"] is False and body["awaiting"] == "confirmation"
    call = await (await client.get(f"/api/calls/{session['call_id']}", headers=admin_headers())).json()
    assert [t for t in call["turns"] if t["speaker"] == "caller"][-1]["intent"] == "attestation_vigilance"
    assert (await send(client, sid, text="non merci"))["ended"] is True


async def test_clarifying_question_is_short_reports_the_team_and_takes_keys(client):
    session = await open_session(client)
    sid = session["session_id"]
    body = await send(client, sid, text="mon prélèvement")
    assert body["awaiting"] == "choice" and body["team"] == "paiement", body
    assert all(len(r.split()) <= 12 for r in body["replies"]), body
    options = load_knowledge().prompts["clarify_options"]
    first = "prelevements_independant" if body["replies"][1] == options["prelevements_independant"] \
        else "prelevement_rejete"
    body = await send(client, sid, dtmf="1")
    assert body["intent"] == first and body["team"] == "paiement", body
