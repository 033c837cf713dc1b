"""The supervisor console on one `callbot serve`: the calls list with its filters and
search, a call's page and record (masked), the recording and exports (audited), unmasking
(admins, with a reason, audited), the indicators, /metrics; and in headless Chromium: a
supervisor finds a call, clicks a turn and the player moves to it; an agent cannot open it.

The calls are written into the server's store by the test (seeded, with a generated
stereo recording), so that every figure checked is known. That a real call's turns lie
where its recording has them (what makes seeking to a turn right) is tested on a real
call in tests/test_recording.py."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.parse
import urllib.request
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from bot.agent_sim import AgentClient, ApiError, add_user, server_database
from bot.caller_sim import CHROMIUM, CHROMIUM_FLAGS, bot_server
from bot.store import Call, Event, Store, Turn
from tests.provisioned import provisioned_var

pytestmark = pytest.mark.slow
PASSWORD = "mot-de-passe-de-test"
METRICS_TOKEN = "metrics-token-for-tests-0123456789"
RATE = 16_000
SIRET = "732 829 320 00074"
USERS = {"sam": "supervisor", "ada": "admin", "claire": "agent"}


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def recording(path: Path, caller_starts_ms: list[int], length_s: float) -> None:
    """Stereo 16 kHz: a 440 Hz tone on the caller side for 0.8 s where each caller turn starts."""
    left = np.zeros(int(length_s * RATE), dtype=np.int16)
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(int(0.8 * RATE)) / RATE)).astype(np.int16)
    for start in caller_starts_ms:
        at = start * RATE // 1000
        left[at:at + len(tone)] = tone[: len(left) - at]
    frames = np.stack([left, np.zeros_like(left)], axis=1).tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(frames)


async def seed(database_url: str, recordings: Path) -> dict[str, str]:
    """Four calls: one with a recording and a SIRET read back, transferred, in slow speech;
    an attestation question answered by the bot; a long call; one from last week."""
    store = Store(database_url)
    await store.create_schema()
    t0 = now() - timedelta(hours=2)
    ids = {}
    async with store.session() as s, s.begin():
        main = Call(channel="sip", caller="+33612345678", started_at=t0, ended_at=t0 + timedelta(seconds=40),
                    outcome="transferred", team="paiement", region="Urssaf Bretagne")
        vigilance = Call(channel="webrtc", started_at=t0 + timedelta(minutes=5),
                         ended_at=t0 + timedelta(minutes=5, seconds=20), outcome="completed", team="attestations")
        long_call = Call(channel="sip", caller="0299001122", started_at=t0 + timedelta(minutes=9),
                         ended_at=t0 + timedelta(minutes=19), outcome="caller_hung_up", team="declaration")
        old = Call(channel="text", started_at=t0 - timedelta(days=8), ended_at=t0 - timedelta(days=8, seconds=-30),
                   outcome="completed", team="seuils")
        s.add_all([main, vigilance, long_call, old])
        await s.flush()
        ids = {"main": main.id, "vigilance": vigilance.id, "long": long_call.id, "old": old.id}
        path = recordings / f"{main.id}.wav"
        recording(path, [4000, 15000], 40.0)
        main.recording = str(path)
        s.add_all([
            Turn(call_id=main.id, index=0, speaker="bot", text="Bonjour, je suis l'assistant vocal de l'Urssaf.",
                 start_ms=300, end_ms=3500),
            Turn(call_id=main.id, index=1, speaker="caller", text="Je veux savoir combien je dois sur mon compte.",
                 start_ms=4000, end_ms=7000, asr_confidence=0.82, intent="solde_compte", intent_score=0.91),
            Turn(call_id=main.id, index=2, speaker="bot", text="Quel est votre numéro SIRET ?", start_ms=8000,
                 end_ms=10000, stt_ms=900, dialogue_ms=40, tts_ms=120, total_ms=1060),
            Turn(call_id=main.id, index=3, speaker="caller", text=f"C'est le {SIRET}.", start_ms=15000,
                 end_ms=19000, asr_confidence=0.7),
            Turn(call_id=main.id, index=4, speaker="bot", text=f"J'ai noté : {SIRET}. Est-ce exact ?",
                 start_ms=20000, end_ms=24000, total_ms=1400),
            Turn(call_id=vigilance.id, index=0, speaker="caller",
                 text="Pour l'attestation de vigilance, elle dure combien de temps ?", start_ms=2000, end_ms=5000,
                 intent="attestation_vigilance"),
            Turn(call_id=vigilance.id, index=1, speaker="bot", text="Elle est valable six mois.", start_ms=6000,
                 end_ms=8000, total_ms=900),
            Turn(call_id=long_call.id, index=0, speaker="caller", text="J'ai une question sur ma déclaration.",
                 start_ms=1000, end_ms=3000, intent="declaration_trimestrielle"),
            Turn(call_id=old.id, index=0, speaker="caller", text="Quel est le plafond de la micro-entreprise ?",
                 start_ms=0, end_ms=0, intent="plafond_micro"),
            Event(call_id=main.id, at_ms=7100, kind="end_of_turn", data={
                "turn": 1, "probability": 0.91, "words_probability": 0.84, "turn_probability": 0.86,
                "wait_ms": 200, "decided_ms": 760, "reason": "complete"}),
            Event(call_id=main.id, at_ms=11000, kind="slow_speech", data={"on": True, "reason": "asked"}),
            Event(call_id=main.id, at_ms=21000, kind="action", data={"name": "action_identify", "ok": True,
                                                                      "identified": False}),
            Event(call_id=main.id, at_ms=25000, kind="handoff", data={"team": "paiement", "reason": "asked_human"}),
            Event(call_id=main.id, at_ms=26000, kind="turns_merged", data={"merged": True}),
            Event(call_id=vigilance.id, at_ms=5500, kind="slow_speech", data={"on": False, "reason": "asked"}),
        ])
    await store.close()
    return ids


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("supervision")
    var = provisioned_var(tmp / "var")
    (var / "recordings").mkdir()
    with bot_server(tmp, CALLBOT_VAR_DIR=str(var), CALLBOT_SUPERVISION_METRICS_TOKEN=METRICS_TOKEN) as server:
        database = server_database(server.log_path)
        for name, role in USERS.items():
            add_user(database, name, PASSWORD, role=role, teams="accueil" if role == "agent" else "")
        server.ids = asyncio.run(seed(database, var / "recordings"))
        server.database = database
        yield server


def client(console, name: str) -> AgentClient:
    c = AgentClient(console.url)
    c.login(name, PASSWORD)
    return c


def audit(console, call_id: str) -> list[dict]:
    return client(console, "ada").request("GET", f"/api/supervisor/audit?call_id={call_id}")["entries"]


def listed(console, query: str) -> list[str]:
    return [c["id"] for c in client(console, "sam").request("GET", "/api/supervisor/calls?" + query)["calls"]]


def test_the_list_filters_searches_sorts_and_pages(console):
    ids = console.ids
    assert listed(console, "") == [ids["long"], ids["vigilance"], ids["main"], ids["old"]]   # newest first
    assert listed(console, "q=vigilance") == [ids["vigilance"]]
    assert listed(console, "q=DECLARATION") == [ids["long"]]        # case and accents ignored
    assert listed(console, "team=paiement") == [ids["main"]]
    assert listed(console, "transferred=1") == [ids["main"]]
    assert set(listed(console, "transferred=0")) == {ids["vigilance"], ids["long"], ids["old"]}
    assert listed(console, "slow=1") == [ids["main"]]               # the one turned off does not count
    assert listed(console, "question_type=attestation_vigilance") == [ids["vigilance"]]
    assert listed(console, "office=Urssaf%20Bretagne") == [ids["main"]]
    assert listed(console, "channel=text") == [ids["old"]]
    assert listed(console, "outcome=completed&sort=duration&order=asc") == [ids["vigilance"], ids["old"]]
    assert listed(console, "sort=duration")[0] == ids["long"]
    # The day the old call began where the console counts days (Paris), whatever the hour now.
    started = client(console, "sam").request("GET", "/api/supervisor/calls?channel=text")["calls"][0]["started_at"]
    day = datetime.fromisoformat(started).astimezone(ZoneInfo("Europe/Paris")).date().isoformat()
    assert listed(console, f"from={day}&to={day}") == [ids["old"]]
    page = client(console, "sam").request("GET", "/api/supervisor/calls?page_size=3&page=2")
    assert page["total"] == 4 and [c["id"] for c in page["calls"]] == [ids["old"]]
    line = client(console, "sam").request("GET", "/api/supervisor/calls?team=paiement")["calls"][0]
    assert line["caller"].endswith("78") and "612345" not in line["caller"]
    assert line["transferred"] and line["slow"] and line["duration_s"] == 40.0
    for bad in ("page=0", "sort=name", "from=hier", "transferred=peut-etre", "page_size=1000"):
        with pytest.raises(ApiError) as refused:
            client(console, "sam").request("GET", "/api/supervisor/calls?" + bad)
        assert refused.value.status == 400, bad


def test_an_identifier_cannot_be_searched_for(console):
    assert listed(console, "q=" + SIRET.replace(" ", "%20")) == []
    assert listed(console, "q=00074") == []
    assert listed(console, "q=SIRET") == [console.ids["main"]]      # the word is not personal


def test_a_call_is_masked_its_opening_audited_and_its_timeline_readable(console):
    call_id = console.ids["main"]
    call = client(console, "sam").request("GET", f"/api/supervisor/calls/{call_id}")
    texts = " ".join(t["text"] for t in call["turns"])
    assert call["masked"] and "732" not in texts and "829" not in texts
    assert "612345" not in call["caller"]
    assert call["recording_url"] == f"/api/supervisor/calls/{call_id}/recording"
    assert [e["kind"] for e in call["timeline"]] == ["slow_speech", "action", "handoff", "turns_merged"]
    assert call["turns"][2]["total_ms"] == 1060 and call["turns"][1]["asr_confidence"] == 0.82
    # How the end of a caller turn was decided is on that turn, not in the timeline.
    assert call["turns"][1]["end_of_turn"] == {"probability": 0.91, "words_probability": 0.84,
                                               "turn_probability": 0.86, "wait_ms": 200, "decided_ms": 760,
                                               "reason": "complete"}
    assert call["turns"][3]["end_of_turn"] is None and call["turns"][2]["end_of_turn"] is None
    entries = audit(console, call_id)
    assert entries[0]["username"] == "sam" and entries[0]["action"] == "view"
    # The older record route is masked for a signed-in supervisor too.
    record = client(console, "sam").request("GET", f"/api/calls/{call_id}")
    assert "732" not in " ".join(t["text"] for t in record["turns"])


def fetch(console, who: AgentClient, path: str) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(console.url + path)
    try:
        with who._opener.open(request, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_exports_are_masked_and_audited_and_listening_is_audited_once(console):
    call_id, sam = console.ids["main"], client(console, "sam")
    status, body, headers = fetch(console, sam, f"/api/supervisor/calls/{call_id}/transcript.vtt")
    assert status == 200 and headers["Content-Type"].startswith("text/vtt")
    vtt = body.decode()
    assert vtt.startswith("WEBVTT") and "00:00:15.000 --> 00:00:19.000" in vtt and "732" not in vtt
    status, body, _ = fetch(console, sam, f"/api/supervisor/calls/{call_id}/export")
    assert status == 200 and "732 829" not in body.decode() and "•" in body.decode()
    for _ in range(3):   # a player asks in ranges: one listening, one entry
        status, body, _ = fetch(console, sam, f"/api/supervisor/calls/{call_id}/recording")
        assert status == 200 and body[:4] == b"RIFF"
    actions = [(e["username"], e["action"], e["detail"]) for e in audit(console, call_id)]
    assert ("sam", "export", "vtt") in actions and ("sam", "export", "json") in actions
    assert [a for a in actions if a[1] == "listen"] == [("sam", "listen", None)]
    assert fetch(console, sam, f"/api/supervisor/calls/{console.ids['vigilance']}/recording")[0] == 404


def test_only_an_admin_unmasks_with_a_reason_and_it_is_audited(console):
    call_id = console.ids["main"]
    with pytest.raises(ApiError) as refused:
        client(console, "sam").request("POST", f"/api/supervisor/calls/{call_id}/unmask", {"reason": "contrôle"})
    assert refused.value.status == 403
    ada = client(console, "ada")
    for body in ({}, {"reason": "  "}, {"reason": "x" * 501}):
        with pytest.raises(ApiError) as refused:
            ada.request("POST", f"/api/supervisor/calls/{call_id}/unmask", body)
        assert refused.value.status == 400
    call = ada.request("POST", f"/api/supervisor/calls/{call_id}/unmask", {"reason": "réclamation n° 42 de l'appelant"})
    assert not call["masked"] and SIRET in " ".join(t["text"] for t in call["turns"])
    entry = next(e for e in audit(console, call_id) if e["action"] == "unmask")
    assert entry["username"] == "ada" and entry["reason"] == "réclamation n° 42 de l'appelant"


def test_indicators_and_metrics(console):
    sam = client(console, "sam")
    today = datetime.now().date()
    indicators = sam.request("GET", f"/api/supervisor/indicators?from={(today - timedelta(days=1)).isoformat()}"
                                    f"&to={(today + timedelta(days=1)).isoformat()}")
    assert indicators["calls"] == 3 and indicators["transfers_by_reason"] == {"asked_human": 1}
    status, body, _ = fetch(console, sam, "/supervisor/indicators")
    assert status == 200 and b"<svg" in body and b"http://" not in body.replace(b"http://www.w3.org", b"")
    anonymous = AgentClient(console.url)
    assert fetch(console, anonymous, "/metrics")[0] == 403
    request = urllib.request.Request(console.url + "/metrics", headers={"Authorization": "Bearer wrong"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    request = urllib.request.Request(console.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as r:
        text = r.read().decode()
    assert 'callbot_calls_total{channel="sip",outcome="transferred"} 1' in text
    assert "callbot_turn_merges_total 1" in text and "612345" not in text


@pytest.mark.browser
def test_a_supervisor_finds_a_call_and_clicks_a_turn_to_hear_it(console):
    from playwright.sync_api import sync_playwright

    call_id = console.ids["main"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            response = page.goto(f"{console.url}/supervisor")
            assert response is not None and response.status == 401 and "Connexion requise" in page.content()
            page.click("text=Se connecter")
            page.wait_for_url("**/login?next=%2Fsupervisor")
            page.fill("#username", "sam")
            page.fill("#password", PASSWORD)
            page.click("#login-submit")
            page.wait_for_url("**/supervisor", timeout=15_000)
            page.wait_for_function("window.supervisorList && window.supervisorList.loaded")
            assert page.locator("#calls tbody tr").count() == 4
            page.fill("#q", "combien je dois")
            page.click("#search")
            page.wait_for_function("document.querySelectorAll('#calls tbody tr').length === 1")
            assert "q=combien" in page.url   # the search is in the address
            row = page.locator(f"#calls tbody tr[data-call-id='{call_id}']")
            assert "transfert" in row.inner_text() and "lent" in row.inner_text()
            row.locator("a").click()
            page.wait_for_url(f"**/supervisor/calls/{call_id}")
            page.wait_for_function("window.supervisorCall && window.supervisorCall.ready")
            page.wait_for_function("document.getElementById('player').readyState >= 1")
            transcript = page.inner_text("#turns")
            assert "•" in transcript and "732 829" not in transcript and "00074" not in transcript
            page.locator("#turns li[data-index='3'] .turn-seek").click()
            page.wait_for_function("Math.abs(document.getElementById('player').currentTime - 15) < 0.05")
            assert page.locator("#turns li[data-index='3']").get_attribute("aria-current") == "true"
            assert page.locator("#turns li.playing").count() == 1
            page.locator("#turns li[data-index='1'] .turn-seek").click()
            page.wait_for_function("Math.abs(document.getElementById('player').currentTime - 4) < 0.05")
            assert page.locator("#turns li[data-index='1']").get_attribute("aria-current") == "true"
            assert "fin de tour après 760 ms : phrase complète, attente 200 ms (voix 91 %, mots 84 %, ensemble 86 %)" \
                in page.locator("#turns li[data-index='1']").inner_text()
            timeline = page.inner_text("#timeline")
            assert "Orientation vers un conseiller" in timeline and "identification refusée" in timeline
            assert page.locator("#unmask").is_hidden()          # a supervisor cannot unmask
            assert page.evaluate("window.supervisorCall.current") == 1

            agent = browser.new_page()
            agent.goto(f"{console.url}/login?next=/supervisor")
            agent.fill("#username", "claire")
            agent.fill("#password", PASSWORD)
            agent.click("#login-submit")
            agent.wait_for_url(lambda url: "/login" not in url)   # signed in, sent on to the page asked: refused
            assert "Accès refusé" in agent.content()
            response = agent.goto(f"{console.url}/supervisor/calls/{call_id}")
            assert response is not None and response.status == 403
            assert "Accès refusé" in agent.content()

            home = browser.new_page()   # signed in without a page asked for: their own console
            home.goto(f"{console.url}/login")
            home.fill("#username", "sam")
            home.fill("#password", PASSWORD)
            home.click("#login-submit")
            home.wait_for_url(lambda url: urllib.parse.urlsplit(url).path == "/supervisor")

            admin = browser.new_page()
            admin.goto(f"{console.url}/login?next=/supervisor/calls/{call_id}")
            admin.fill("#username", "ada")
            admin.fill("#password", PASSWORD)
            admin.click("#login-submit")
            admin.wait_for_function("window.supervisorCall && window.supervisorCall.ready")
            assert "732 829" not in admin.inner_text("#turns")
            admin.fill("#unmask-reason", "vérification demandée par l'appelant")
            admin.click("#unmask button")
            admin.wait_for_function("document.getElementById('turns').innerText.includes('732 829 320 00074')")
            assert admin.locator("#masked-note").is_hidden()
            assert not errors, errors
        finally:
            browser.close()
