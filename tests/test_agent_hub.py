"""The agent hub end to end, on one `callbot serve`: callers on the media stream (as our
SIP gateway connects) and on the text channel, agents over the console's HTTP API and in
headless Chromium on the console page with a fake microphone."""

from __future__ import annotations

import base64
import threading
import time
import urllib.error
import urllib.request
import uuid

import numpy as np
import pytest

from bot.agent_sim import AgentClient, ApiError, StreamCaller, add_user, server_database
from bot.caller_sim import CHROMIUM, CHROMIUM_FLAGS, CallerVoice, bot_server
from tests.callers import spectral_match
from tests.test_sip_calls import telephone
from voice.codecs import resample

pytestmark = pytest.mark.slow
PASSWORD = "mot-de-passe-de-test"
AGENTS = {  # name: (role, teams, desk phone)
    "claire": ("agent", "accueil,seuils", "sip:claire@127.0.0.1:5999"),
    "marc": ("agent", "accueil", "sip:marc@127.0.0.1:5998"),
    "sophie": ("agent", "declaration", None),
    "sam": ("supervisor", "", None),
}


def _hub_server(tmp_path_factory, answer_timeout_s: str):
    with bot_server(tmp_path_factory.mktemp("hub"), CALLBOT_AGENTS_ANSWER_TIMEOUT_S=answer_timeout_s) as server:
        for name, (role, teams, phone) in AGENTS.items():
            add_user(server_database(server.log_path), name, PASSWORD, role=role, teams=teams, sip_uri=phone)
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # Time enough for a browser agent to accept on a loaded machine.
    yield from _hub_server(tmp_path_factory, "35")


@pytest.fixture(scope="module")
def impatient_server(tmp_path_factory):
    # "Nobody accepted in time" seen soon.
    yield from _hub_server(tmp_path_factory, "8")


def ws_url(server) -> str:
    return server.url.replace("http://", "ws://") + "/ws/media"


def signed_in(server, name: str, *, teams: list[str] | None = None, device: str = "browser") -> AgentClient:
    agent = AgentClient(server.url)
    agent.login(name, PASSWORD)
    if teams is not None:
        agent.available(teams, device=device)
    return agent


def queued_caller(server, *, keys: str = "0") -> tuple[StreamCaller, str]:
    """A caller who presses 0 (a human) as the greeting begins (a key takes the floor) and
    is in the queue."""
    caller = StreamCaller(ws_url(server), sid=f"MZ{uuid.uuid4().hex[:12]}").__enter__()
    deadline = time.monotonic() + 60
    while not caller.received and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    caller.keys(keys)
    watcher = signed_in(server, "sam")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        waiting = [e for e in watcher.queue() if e["channel"] == "sip"]
        if waiting:
            return caller, waiting[-1]["call_id"]
        time.sleep(0.1)
    caller.hang_up()
    raise AssertionError("the caller never reached the queue")


def events(server, call_id: str) -> list[str]:
    return [e["kind"] for e in server.call_record(call_id)["events"]]


def test_every_console_route_refuses_no_session_and_the_wrong_role(server):
    """Enumerated from the app itself: a new route is covered without editing this test."""
    from bot.config import load_settings
    from bot.server import create_app

    public = {"/", "/health", "/api/chat", "/api/chat/{session_id}/messages", "/api/offer", "/ws/media",
              "/api/openapi.json", "/api/login", "/login"}
    agent, supervisor = signed_in(server, "claire"), signed_in(server, "sam")
    checked = 0
    for route in create_app(load_settings(), voice=False).router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix", "")
        if path.startswith("/static") or route.method == "HEAD":
            continue
        role = getattr(route.handler, "required_role", None)
        if path == "/metrics":   # Prometheus: its bearer token only, no session (tests/test_supervisor_console.py)
            assert role is None
            with pytest.raises(ApiError) as refused:
                signed_in(server, "sam").request("GET", path)
            assert refused.value.status == 403
            continue
        if path in public:
            assert role is None, path
            continue
        assert role is not None, f"{route.method} {path} has no role check"
        url = path.replace("{call_id}", "unknown").replace("{callback_id}", "1").replace("{session_id}", "x")
        anonymous = AgentClient(server.url)
        with pytest.raises(ApiError) as refused:
            anonymous.request(route.method, url, {} if route.method == "POST" else None)
        assert refused.value.status == 401, (route.method, path)
        if role in ("supervisor", "admin"):
            with pytest.raises(ApiError) as refused:
                agent.request(route.method, url, {} if route.method == "POST" else None)
            assert refused.value.status == 403, (route.method, path)
        if route.method == "POST":   # signed in with the role, but no CSRF header: refused
            user = supervisor if role != "admin" else None
            if user is not None:
                csrf, user.csrf = user.csrf, ""
                with pytest.raises(ApiError) as refused:
                    user.request("POST", url, {})
                user.csrf = csrf
                assert refused.value.status == 403, (route.method, path)
        checked += 1
    assert checked >= 12
    # the console page itself: a sign-in page instead, then the page once signed in
    with pytest.raises(urllib.error.HTTPError) as page:
        urllib.request.urlopen(f"{server.url}/agent", timeout=5)
    assert page.value.code == 401 and "/login?next=" in page.value.read().decode()


def test_two_agents_accept_at_once_one_gets_the_caller_who_is_put_through(server):
    claire = signed_in(server, "claire", teams=["accueil"])
    marc = signed_in(server, "marc", teams=["accueil"])
    sophie = signed_in(server, "sophie", teams=["declaration"])
    caller, call_id = queued_caller(server)
    try:
        entry = next(e for e in claire.queue() if e["call_id"] == call_id)
        card = entry["card"]
        assert entry["team"] == "accueil" and entry["reason"] == "demande_conseiller"
        assert card["identified"] is False and card["summary"] and card["transcript"][0]["speaker"] == "bot"
        assert all(e["call_id"] != call_id for e in sophie.queue())   # another team's agent
        with pytest.raises(ApiError) as hidden:
            sophie.accept(call_id)
        assert hidden.value.status == 404
        marc.request("POST", f"/api/agent/calls/{call_id}/decline", {})
        results: dict[str, object] = {}

        def take(name: str, agent: AgentClient) -> None:
            try:
                results[name] = agent.accept(call_id, device="phone")
            except ApiError as e:
                results[name] = e.status

        threads = [threading.Thread(target=take, args=(n, a)) for n, a in (("claire", claire), ("marc", marc))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        winners = [n for n, r in results.items() if isinstance(r, dict)]
        assert len(winners) == 1 and list(results.values()).count(409) == 1, results
        winner = winners[0]
        # our gateway is asked to call the winner's desk phone, after the bot told the caller
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(m.get("event") == "transfer" for m in caller.events):
            time.sleep(0.2)
        transfer = next(m["transfer"] for m in caller.events if m.get("event") == "transfer")
        assert transfer["target"] == AGENTS[winner][2] and transfer["mode"] == "bridged"
        assert len(base64.b64decode(transfer["whisper"])) > 8000   # the briefing, rendered for the phone
        assert all(e["call_id"] != call_id for e in claire.queue())
        kinds = events(server, call_id)
        assert "agent_declined" in kinds and "agent_accepted" in kinds and "transfer_requested" in kinds
        said = [t["text"] for t in server.call_record(call_id)["turns"] if t["speaker"] == "bot"]
        assert any("Un conseiller prend votre appel" in t for t in said), said
    finally:
        caller.hang_up()


def test_waiting_caller_hears_the_place_and_hold_tones_then_hangs_up(server):
    from bot.agents.hold_tones import chime

    claire = signed_in(server, "claire", teams=["accueil"])
    caller, call_id = queued_caller(server)
    assert any(e["call_id"] == call_id for e in claire.queue())
    record = server.wait_for(call_id, lambda r: any("prochaine personne" in t["text"] for t in r["turns"]),
                             timeout=30)
    said = next(t["text"] for t in record["turns"] if "prochaine personne" in t["text"])
    assert "L'attente est estimée" in said and "rappel" in said
    caller.wait_quiet(since=time.monotonic() - 1, quiet_s=1.0, timeout=30)
    since = time.monotonic()
    time.sleep(8)   # after the bot's words, a chime every few seconds (only it is sent: no audio otherwise)
    heard = resample(caller.heard_since(since).astype(np.float32), 8000, 16000)
    assert spectral_match(heard, telephone(chime())[:11200]) > 0.9
    assert np.abs(heard).max() < 8000   # quiet
    caller.hang_up()
    server.wait_for(call_id, lambda r: r["ended_at"] is not None, timeout=20)
    assert all(e["call_id"] != call_id for e in claire.queue())
    assert "queue_left" in events(server, call_id)
    with pytest.raises(ApiError) as gone:
        claire.accept(call_id)
    assert gone.value.status == 410


def test_nobody_in_time_the_caller_books_a_callback_on_the_keypad(impatient_server):
    """No agent accepts within the answer time: the bot offers a callback; the caller
    gives their number and the time of day on the keypad; an agent sees it and marks it done."""
    server = impatient_server
    caller, call_id = queued_caller(server)
    try:
        server.wait_for(call_id, lambda r: "queue_timeout" in [e["kind"] for e in r["events"]], timeout=60)
        caller.wait_quiet(since=time.monotonic() - 1, timeout=30)
        for keys in ("1", "0612345678#", "1", "1"):   # yes; the number; "that's right"; the morning
            now = time.monotonic()
            caller.keys(keys)
            caller.wait_quiet(since=now, timeout=40)
        record = server.wait_for(call_id, lambda r: "callback_booked" in [e["kind"] for e in r["events"]],
                                 timeout=20)
    finally:
        caller.hang_up()
    said = " ".join(t["text"] for t in record["turns"] if t["speaker"] == "bot")
    assert "Voulez-vous qu'un conseiller vous rappelle" in said and "vous rappellera le matin" in said
    claire, sophie = signed_in(server, "claire"), signed_in(server, "sophie")
    callback = next(c for c in claire.callbacks() if c["call_id"] == call_id)
    assert callback["phone"] == "0612345678" and callback["time_slot"] == "matin" and callback["team"] == "accueil"
    assert all(c["call_id"] != call_id for c in sophie.callbacks())
    with pytest.raises(ApiError) as other_team:
        sophie.request("POST", f"/api/agent/callbacks/{callback['id']}/done", {})
    assert other_team.value.status == 404
    claire.request("POST", f"/api/agent/callbacks/{callback['id']}/done", {})
    assert all(c["id"] != callback["id"] for c in claire.callbacks())


def test_a_text_caller_asking_for_a_human_is_offered_a_callback(server):
    def chat(path: str, body: dict) -> dict:
        return AgentClient(server.url).request("POST", path, body)

    session = chat("/api/chat", {})
    sid = session["session_id"]
    offer = chat(f"/api/chat/{sid}/messages", {"text": "je voudrais parler à un conseiller"})
    assert offer["handoff"]["team"] == "accueil" and offer["awaiting"] == "confirmation"
    assert any("rappelle" in r for r in offer["replies"]), offer
    asked = chat(f"/api/chat/{sid}/messages", {"text": "oui s'il vous plaît"})
    assert asked["awaiting"] == "phone", asked
    read_back = chat(f"/api/chat/{sid}/messages", {"text": "zéro six, douze, trente-quatre, cinquante-six, "
                                                           "soixante-dix-huit"})
    assert "zéro six, douze" in " ".join(read_back["replies"])
    assert chat(f"/api/chat/{sid}/messages", {"text": "oui"})["awaiting"] == "time_slot"
    booked = chat(f"/api/chat/{sid}/messages", {"text": "plutôt l'après-midi"})
    assert any("vous rappellera l'après-midi" in r for r in booked["replies"]), booked
    callback = next(c for c in signed_in(server, "marc").callbacks() if c["call_id"] == session["call_id"])
    assert callback["phone"] == "0612345678" and callback["time_slot"] == "apres_midi"


AUDIO_CAPTURE = """
(() => {
  // The agent's microphone: silence until the test makes the agent speak (window.__speak),
  // so the words come after the briefing however long the briefing took on a loaded machine.
  const micCtx = new AudioContext();
  const mic = micCtx.createMediaStreamDestination();
  navigator.mediaDevices.getUserMedia = async () => mic.stream;
  window.__speak = (encoded, rate) => {
    const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
    const pcm = new Int16Array(bytes.buffer);
    const buffer = micCtx.createBuffer(1, pcm.length, rate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) channel[i] = pcm[i] / 32768;
    const source = micCtx.createBufferSource();
    source.buffer = buffer; source.connect(mic); source.start();
  };
  // Keeps what the console's peer connection receives (the caller, and first the briefing).
  window.__received = []; window.__receivedRate = 0;
  const Original = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) {
    const pc = new Original(...args);
    pc.addEventListener("track", (e) => {
      const ctx = new AudioContext(); window.__receivedRate = ctx.sampleRate;
      const source = ctx.createMediaStreamSource(new MediaStream([e.track]));
      const node = ctx.createScriptProcessor(4096, 1, 1);
      node.onaudioprocess = (ev) => { window.__received.push(Array.from(ev.inputBuffer.getChannelData(0))); };
      source.connect(node); node.connect(ctx.destination);
    });
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
})();
"""


def page_received(page) -> np.ndarray:
    encoded, rate = page.evaluate("""() => {
        const chunks = window.__received; let n = 0; for (const c of chunks) n += c.length;
        const pcm = new Int16Array(n); let i = 0;
        for (const c of chunks) for (const v of c) pcm[i++] = Math.max(-1, Math.min(1, v)) * 32767;
        const bytes = new Uint8Array(pcm.buffer); let s = "";
        for (let j = 0; j < bytes.length; j += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(j, j + 0x8000));
        return [btoa(s), window.__receivedRate];
    }""")
    audio = np.frombuffer(base64.b64decode(encoded), dtype=np.int16).astype(np.float32)
    return resample(audio, int(rate), 16000)


@pytest.mark.browser
def test_browser_agent_sees_the_card_accepts_and_talks_with_the_caller(server, tmp_path):
    """The agent signs in to the console in Chromium, sees the waiting caller's card,
    accepts: they hear the briefing alone, then each hears the other (on the audio each end
    receives), and the call's recording keeps both sides."""
    from playwright.sync_api import sync_playwright

    from bot.caller_sim import read_wav
    from bot.config import load_settings
    from bot.services import make_speech_engine, speech_style
    from voice.speech_renderer import SpeechRenderer

    voice = CallerVoice()
    caller_words = voice.say("Bonjour, j'ai reçu une lettre de relance pour ma déclaration.")
    agent_words = voice.say("Bonjour madame, je suis Claire, conseillère, je vois votre dossier.")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.add_init_script(AUDIO_CAPTURE)
            page.goto(f"{server.url}/login?next=/agent")
            page.fill("#username", "claire")
            page.fill("#password", PASSWORD)
            page.click("#login-submit")
            page.wait_for_url("**/agent", timeout=15_000)
            page.wait_for_selector("input[name=team][value=accueil]", timeout=15_000)
            for box in page.query_selector_all("input[name=team]"):
                box.uncheck()
            page.check("input[name=team][value=accueil]")
            page.select_option("#device", "browser")
            page.click("#go-available")
            caller, call_id = queued_caller(server)
            try:
                entry = page.wait_for_selector(f"#queue [data-call-id='{call_id}']", timeout=20_000)
                entry.click()
                page.wait_for_function("document.querySelector('#card [data-field=reason]')"
                                       " && document.querySelector('#card [data-field=reason]').textContent.length > 5")
                assert "conseiller" in page.inner_text("#card [data-field=reason]")
                assert "non" in page.inner_text("#card [data-field=identified]").lower()
                entry.query_selector(".accept").click()
                page.wait_for_function("window.agentConsole && window.agentConsole.state === 'in_call'",
                                       timeout=20_000)
                record = server.wait_for(call_id, lambda r: "agent_connected" in [e["kind"] for e in r["events"]],
                                         timeout=40)
                bridged_at = time.monotonic()
                caller.say(caller_words)   # the caller speaks, then the agent answers
                page.wait_for_timeout(int(len(caller_words) / 16 + 1500))
                page.evaluate("([pcm, rate]) => window.__speak(pcm, rate)",
                              [base64.b64encode(agent_words.astype(np.int16).tobytes()).decode(), 16000])
                page.wait_for_timeout(int(len(agent_words) / 16 + 4000))
                agent_heard = page_received(page)
                page.click("#hangup")
                record = server.wait_for(call_id, lambda r: r["ended_at"] is not None, timeout=30)
                page.wait_for_selector("#wrapup-form", state="visible", timeout=15_000)
                page.fill("#wrapup-note", "Relance expliquée, déclaration à refaire en ligne.")
                page.select_option("#wrapup-outcome", "information_donnee")
                page.click("#wrapup-submit")
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and "agent_wrapup" not in events(server, call_id):
                    time.sleep(0.3)
                caller_heard = caller.heard_since(bridged_at)
            finally:
                caller.hang_up()
        finally:
            browser.close()
    record = server.call_record(call_id)
    kinds = [e["kind"] for e in record["events"]]
    for kind in ("queued", "agent_accepted", "agent_connected", "transfer_bridged", "agent_left", "agent_wrapup"):
        assert kind in kinds, kinds
    assert record["outcome"] == "transferred"
    # the transcript went on through the human part, both speakers
    human = [t for t in record["turns"] if t["start_ms"] and t["start_ms"] > next(
        e["at_ms"] for e in record["events"] if e["kind"] == "agent_connected")]
    assert any(t["speaker"] == "agent" and "dossier" in t["text"] for t in human), record["turns"]
    assert any(t["speaker"] == "caller" and "relance" in t["text"] for t in human), record["turns"]
    wrapup = next(e["data"] for e in record["events"] if e["kind"] == "agent_wrapup")
    assert wrapup["agent"] == "claire" and wrapup["outcome"] == "information_donnee"

    settings = load_settings()
    renderer = SpeechRenderer(make_speech_engine(settings), settings.audio_cache_dir)
    briefing_text = next(e["data"]["briefing"] for e in record["events"] if e["kind"] == "agent_accepted")
    assert "Équipe accueil" in briefing_text
    briefing = np.frombuffer(renderer.render(briefing_text, speech_style(settings)), np.int16)[:32000]
    briefing = briefing.astype(np.float32)
    caller_16k = resample(caller_heard.astype(np.float32), 8000, 16000)
    caller_all = resample(np.concatenate([pcm for _, pcm in caller.received]).astype(np.float32), 8000, 16000)
    samples, _, channels = read_wav(server.fetch_recording(record, tmp_path / "recording.wav"))
    assert channels == 2
    stereo = samples.reshape(-1, 2).astype(np.float32)
    match = {
        # the agent heard the briefing, then the caller; the caller heard the agent, not the briefing
        "agent heard the briefing": spectral_match(agent_heard, briefing),
        "agent heard the caller": spectral_match(agent_heard, telephone(caller_words)),
        "caller heard the agent": spectral_match(caller_16k, telephone(agent_words)),
        "caller heard the briefing": spectral_match(caller_all, telephone(briefing.astype(np.int16))),
        # and the recording kept both: caller left, agent right
        "recording, caller": spectral_match(stereo[:, 0], telephone(caller_words)),
        "recording, agent": spectral_match(stereo[:, 1], agent_words.astype(np.float32)),
        # a check that can fail: the agent's words are not on the caller's side of the recording
        "recording, agent on the caller's side": spectral_match(stereo[:, 0], agent_words.astype(np.float32)),
    }
    print(match)
    low = ("caller heard the briefing", "recording, agent on the caller's side")
    assert all(v > 0.9 for k, v in match.items() if k not in low), match
    assert all(match[k] < 0.85 for k in low), match
