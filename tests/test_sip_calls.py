"""Real SIP calls: baresip callers -> (Kamailio) -> pjsua2 gateway -> media stream -> bot."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bot.caller_sim import CallerVoice, bot_server, kamailio_proxy, sip_gateway, timeline, write_wav
from telephony.sip_caller import place_call, place_calls, read_wav
from tests.callers import spectral_match
from voice.codecs import pcm16_to_ulaw, resample, ulaw_to_pcm16

pytestmark = pytest.mark.slow
QUESTION = "Quel est le plafond de chiffre d'affaires ?"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sip")
    with bot_server(tmp, CALLBOT_MAX_CALLS="6") as server:
        media = server.url.replace("http", "ws") + "/ws/media"
        # Two gateways (a pjsua2 process answers 4 calls at most) behind Kamailio.
        with sip_gateway(tmp, media) as gateway, sip_gateway(tmp, media) as second, \
                kamailio_proxy(tmp, [gateway.port, second.port]) as proxy:
            yield server, gateway, proxy


@pytest.fixture(scope="module")
def greeting_s() -> float:
    from bot.config import load_settings
    from bot.services import make_speech_engine, speech_style
    from flows.knowledge import load_knowledge
    from voice.speech_renderer import SpeechRenderer

    settings = load_settings()
    renderer = SpeechRenderer(make_speech_engine(settings), settings.audio_cache_dir)
    text = " ".join(load_knowledge().greeting())
    return len(renderer.render(text, speech_style(settings))) / 2 / 16000


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory, greeting_s):
    voice = CallerVoice()
    audio = timeline([(greeting_s + 1.5, voice.say(QUESTION)), (12.0, None)])
    return write_wav(tmp_path_factory.mktemp("wav") / "question.wav", audio, 16000)


def sip_calls(server) -> list[dict]:
    return [c for c in server.recent_calls() if c["channel"] == "sip"]


def telephone(pcm16k: np.ndarray) -> np.ndarray:
    """16 kHz audio through the G.711 round trip the call makes, back at 16 kHz."""
    narrow = np.frombuffer(ulaw_to_pcm16(pcm16_to_ulaw(resample(pcm16k, 16000, 8000).tobytes())), np.int16)
    return resample(narrow.astype(np.float32), 8000, 16000)


def test_question_by_phone_directly_and_through_kamailio(stack, question_wav, greeting_s, tmp_path):
    from bot.config import load_settings
    from bot.services import make_speech_engine, speech_style
    from voice.speech_renderer import SpeechRenderer

    server, gateway, proxy = stack
    before = len(sip_calls(server))
    results = place_calls([
        {"uri": gateway.uri, "wav": question_wav, "workdir": tmp_path / "direct", "duration_s": greeting_s + 14},
        {"uri": proxy.uri, "wav": question_wav, "workdir": tmp_path / "proxied", "duration_s": greeting_s + 14},
    ])
    assert all(r.established for r in results), [r.log[-2000:] for r in results]
    calls = [server.wait_for(c["id"], lambda r: r["ended_at"] is not None, timeout=15)
             for c in sip_calls(server)[before:]]
    assert len(calls) == 2
    settings = load_settings()
    renderer = SpeechRenderer(make_speech_engine(settings), settings.audio_cache_dir)
    for result, record in zip(results, sorted(calls, key=lambda c: c["started_at"])):
        assert record["team"] == "seuils", record
        assert any(t["speaker"] == "caller" and t["intent"] == "plafond_micro" for t in record["turns"])
        answer = next(t for t in record["turns"] if t["speaker"] == "bot" and t["intent"] == "plafond_micro")
        assert answer["total_ms"] is not None
        heard, rate = read_wav(result.recording)
        # What the caller heard from the answer on (the greeting before it would weigh in
        # the spectrum as much as the answer); the call's offsets are the caller's, give or
        # take the call set-up.
        heard = heard[max(0, int((answer["start_ms"] / 1000 - 1.0) * rate)):]
        heard_16k = resample(heard.astype(np.float32), rate, 16000)
        rendered = np.frombuffer(renderer.render(answer["text"], speech_style(settings)), np.int16)[:32000]
        assert spectral_match(heard_16k, telephone(rendered)) > 0.9, spectral_match(heard_16k, telephone(rendered))
        other = np.frombuffer(renderer.render("Merci de votre appel. Au revoir, et bonne journée.",
                                              speech_style(settings)), np.int16)[:32000]
        assert spectral_match(heard_16k, telephone(other)) < 0.85


def test_key_zero_asks_for_a_human(stack, tmp_path, greeting_s):
    server, gateway, _ = stack
    silence = write_wav(tmp_path / "silence.wav", timeline([(30.0, None)]), 16000)
    before = len(sip_calls(server))
    result = place_call(gateway.uri, silence, workdir=tmp_path / "dtmf", duration_s=8.0, dtmf=[(3.0, "0")])
    assert result.established and result.dtmf_sent == ["0"], result.log[-2000:]
    record = sip_calls(server)[before]
    assert [e["data"] for e in record["events"] if e["kind"] == "dtmf"] == [{"keys": "0"}]
    handoff = next(e for e in record["events"] if e["kind"] == "handoff")
    assert handoff["data"] == {"team": "accueil", "reason": "demande_conseiller"}


def test_caller_hanging_up_while_the_bot_speaks_closes_the_record(stack, tmp_path):
    server, gateway, _ = stack
    silence = write_wav(tmp_path / "silence.wav", timeline([(30.0, None)]), 16000)
    before = len(sip_calls(server))
    result = place_call(gateway.uri, silence, workdir=tmp_path / "hangup", duration_s=4.0)
    assert result.established and not result.closed_by_remote
    record = server.wait_for(sip_calls(server)[before]["id"], lambda r: r["ended_at"] is not None, timeout=15)
    assert record["outcome"] == "caller_hung_up"
    greeting = record["turns"][0]
    assert greeting["speaker"] == "bot" and greeting["text"].startswith("Bonjour")


def test_question_after_hold_and_resume_is_answered(stack, greeting_s, tmp_path):
    """The caller's phone puts the bot on hold then resumes (two re-INVITEs): the media
    is reconnected and the conversation goes on."""
    server, gateway, _ = stack
    voice = CallerVoice()
    wav = write_wav(tmp_path / "later.wav",
                    timeline([(greeting_s + 8.0, voice.say(QUESTION)), (12.0, None)]), 16000)
    before = len(sip_calls(server))
    result = place_call(gateway.uri, wav, workdir=tmp_path / "hold", duration_s=greeting_s + 20,
                        commands=[(greeting_s + 1.0, "/hold"), (greeting_s + 5.0, "/resume")])
    assert result.established, result.log[-2000:]
    assert "call: hold" in result.log and "call: resume" in result.log, result.log[-2000:]
    record = server.wait_for(sip_calls(server)[before]["id"], lambda r: r["ended_at"] is not None, timeout=15)
    # the question said after the resume reached the bot, which answered it (baresip 1.0's
    # sndfile filter stops dumping received audio at a hold: the caller's side is not checked)
    assert answered_about_the_ceiling(record), record
    assert "media reconnected after a re-INVITE" in gateway.log_path.read_text()


def answered_about_the_ceiling(record: dict) -> bool:
    """The caller's question reached the bot, which replied about the ceiling: the answer or,
    when Whisper on a G.711 line mishears "Quel est le plafond" ("que l'éloplafon du chiffre
    d'affaires", seen under load), the clarifying question between the ceilings and another
    type. The understanding itself is tested on whole sentences elsewhere; here, the line."""
    turns = record["turns"]
    heard = next((i for i, t in enumerate(turns) if t["speaker"] == "caller" and t["text"].strip()), None)
    return heard is not None and any(t["speaker"] == "bot" and "plafond" in t["text"].lower()
                                     for t in turns[heard + 1:])


def test_five_simultaneous_calls(stack, greeting_s, tmp_path):
    server, _, proxy = stack
    before = len(sip_calls(server))
    # Five calls (one more than the default capacity of this 2-core node) share one Whisper:
    # the last caller's turn may be transcribed several seconds after they stop, so the
    # callers stay on the line longer (baresip hangs up when its WAV ends).
    wav = write_wav(tmp_path / "question-long.wav",
                    timeline([(greeting_s + 1.5, CallerVoice().say(QUESTION)), (22.0, None)]), 16000)
    results = place_calls([
        {"uri": proxy.uri, "wav": wav, "workdir": tmp_path / f"c{i}", "duration_s": greeting_s + 28}
        for i in range(5)
    ])
    assert all(r.established for r in results), [r.log[-1500:] for r in results if not r.established]
    calls = sip_calls(server)[before:]
    assert len(calls) == 5
    for record in calls:
        assert answered_about_the_ceiling(record), [(t["speaker"], t["intent"], t["text"]) for t in record["turns"]]


class RawSipCall:
    """A minimal UAC on a UDP socket, for what baresip 1.0 cannot send (SIP INFO DTMF) or
    show (each response to an INVITE, a CANCEL while it rings)."""

    def __init__(self, port: int) -> None:
        import socket
        import uuid

        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(1.0)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.local = self.sock.getsockname()[1]
        self.call_id, self.tag, self.cseq = uuid.uuid4().hex, uuid.uuid4().hex[:8], 0
        self.to = f"<sip:bot@127.0.0.1:{port}>"
        self.invite_branch, self.invite_cseq = "", 0
        self.provisional: list[str] = []  # status lines of the 1xx answers to the INVITE

    def _send(self, method: str, body: str = "", content_type: str = "", cseq: int | None = None,
              branch: str | None = None) -> str:
        import uuid

        if cseq is None:
            self.cseq += 1
        branch = branch or f"z9hG4bK{uuid.uuid4().hex[:12]}"
        headers = [
            f"{method} sip:bot@127.0.0.1:{self.port} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.local};branch={branch};rport",
            "Max-Forwards: 70", f"From: <sip:caller@127.0.0.1>;tag={self.tag}", f"To: {self.to}",
            f"Call-ID: {self.call_id}", f"CSeq: {cseq or self.cseq} {method}",
            f"Contact: <sip:caller@127.0.0.1:{self.local}>",
        ] + ([f"Content-Type: {content_type}"] if content_type else []) + [f"Content-Length: {len(body)}"]
        self.sock.sendto(("\r\n".join(headers) + "\r\n\r\n" + body).encode(), ("127.0.0.1", self.port))
        return branch

    def _response(self, method: str, timeout: float = 10.0, *, final: bool = True) -> str:
        """The first final response to `method` (with `final=False`, the first ringing
        or final one); requests from the far end get a 200."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65535).decode(errors="replace")
            except TimeoutError:
                continue
            head = data.split("\r\n\r\n", 1)[0]
            lines = head.split("\r\n")
            if not lines[0].startswith("SIP/2.0"):
                keep = ("Via:", "From:", "To:", "Call-ID:", "CSeq:")
                answer = ["SIP/2.0 200 OK"] + [h for h in lines[1:] if h.startswith(keep)] + ["Content-Length: 0"]
                self.sock.sendto(("\r\n".join(answer) + "\r\n\r\n").encode(), ("127.0.0.1", self.port))
                continue
            code = int(lines[0].split()[1])
            if not any(h.startswith("CSeq:") and h.endswith(method) for h in lines):
                continue
            if code < 200:
                if method == "INVITE":
                    self.provisional.append(lines[0])
                if final or code < 180:
                    continue
                return lines[0]
            if method == "INVITE":
                self.to = next(h for h in lines if h.startswith("To:")).split(":", 1)[1].strip()
            return lines[0]
        return ""

    def _final(self, method: str, timeout: float = 10.0) -> str:
        return self._response(method, timeout)

    def send_invite(self) -> None:
        rtp = self.rtp.getsockname()[1]
        sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               f"m=audio {rtp} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
               "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n")
        self.invite_branch = self._send("INVITE", sdp, "application/sdp")
        self.invite_cseq = self.cseq

    def ringing(self, timeout: float = 5.0) -> str:
        """After `send_invite`: the first 18x (or final) answer."""
        return self._response("INVITE", timeout, final=False)

    def answer(self, timeout: float = 10.0) -> str:
        """After `send_invite`: the final answer, acknowledged."""
        status = self._final("INVITE", timeout)
        if status.startswith("SIP/2.0 2"):
            self._send("ACK", cseq=self.cseq)
        elif status:  # a refusal's ACK belongs to the INVITE's transaction: its branch
            self._send("ACK", cseq=self.invite_cseq, branch=self.invite_branch)
        return status

    def invite(self, timeout: float = 10.0) -> str:
        self.send_invite()
        return self.answer(timeout)

    def cancel(self) -> str:
        """While the INVITE rings: the CANCEL's own answer (the INVITE's is `answer()`)."""
        self._send("CANCEL", cseq=self.invite_cseq, branch=self.invite_branch)
        return self._final("CANCEL")

    def info_dtmf(self, digit: str) -> str:
        self._send("INFO", f"Signal={digit}\r\nDuration=160\r\n", "application/dtmf-relay")
        return self._final("INFO")

    def bye(self) -> str:
        self._send("BYE")
        status = self._final("BYE")
        self.close()
        return status

    def close(self) -> None:
        self.sock.close()
        self.rtp.close()


def test_key_zero_by_sip_info_asks_for_a_human(stack):
    # Phones and trunks without RFC 4733 send keys as SIP INFO (application/dtmf-relay);
    # this one at once, as the call is answered: the key waits for the media stream.
    server, gateway, _ = stack
    before = len(sip_calls(server))
    call = RawSipCall(gateway.port)
    assert call.invite().startswith("SIP/2.0 200")
    try:
        assert call.info_dtmf("0").startswith("SIP/2.0 200")
        deadline = time.monotonic() + 10
        while len(sip_calls(server)) == before and time.monotonic() < deadline:
            time.sleep(0.2)
        call_id = sip_calls(server)[before]["id"]
        record = server.wait_for(call_id, lambda r: any(e["kind"] == "handoff" for e in r["events"]), timeout=15)
    finally:
        call.bye()
    assert [e["data"] for e in record["events"] if e["kind"] == "dtmf"] == [{"keys": "0"}]
    handoff = next(e for e in record["events"] if e["kind"] == "handoff")
    assert handoff["data"] == {"team": "accueil", "reason": "demande_conseiller"}


def test_question_with_pauses_by_phone_is_one_turn(stack, greeting_s, tmp_path):
    """A caller who stops twice mid-question (0.8 and 0.6 s) is heard to the end."""
    server, gateway, _ = stack
    voice = CallerVoice("jf_nezumi")
    question = voice.say_with_pauses(
        ["Bonjour, je vous appelle parce que", "je voudrais connaître le plafond de",
         "chiffre d'affaires d'un auto-entrepreneur."], [0.8, 0.6])
    wav = write_wav(tmp_path / "paused.wav", timeline([(greeting_s + 1.5, question), (12.0, None)]), 16000)
    before = len(sip_calls(server))
    result = place_call(gateway.uri, wav, workdir=tmp_path / "call", duration_s=greeting_s + 1.5 + 20)
    assert result.established, result.log[-2000:]
    record = server.wait_for(sip_calls(server)[before]["id"], lambda r: r["ended_at"] is not None, timeout=15)
    caller = [t for t in record["turns"] if t["speaker"] == "caller"]
    assert len(caller) == 1, caller
    assert caller[0]["intent"] == "plafond_micro", caller
    assert record["team"] == "seuils"
