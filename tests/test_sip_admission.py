"""Admission of SIP calls: the gateway answers only once the bot has taken the call's
media stream, so that a bot at capacity, down or refusing the gateway gives a SIP refusal
(486, 503) that Kamailio fails over on, never an answered, silent call."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pytest

from bot.caller_sim import (
    ROOT,
    bot_server,
    free_port,
    free_udp_port,
    gateway_headers,
    kamailio_proxy,
    sip_gateway,
    timeline,
    write_wav,
)
from telephony.sip_caller import place_call, read_wav
from tests.test_sip_calls import RawSipCall, sip_calls

pytestmark = pytest.mark.slow


class SilentBot:
    """A TCP listener that takes connections and never answers them: a bot that hangs.
    Records when each connection arrived and when the gateway closed it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.opened: list[float] = []
        self.closed: list[float] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/media"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.opened.append(time.monotonic())
            reader = threading.Thread(target=self._drain, args=(conn,), daemon=True)
            self._threads.append(reader)
            reader.start()

    def _drain(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        with conn:
            while not self._stop.is_set():
                try:
                    if not conn.recv(4096):
                        self.closed.append(time.monotonic())
                        return
                except TimeoutError:
                    continue
                except OSError:
                    self.closed.append(time.monotonic())
                    return

    def wait(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return condition()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self.sock.close()


def closed_port_url() -> str:
    return f"ws://127.0.0.1:{free_port()}/ws/media"  # nothing listens there


def test_gateway_refuses_to_start_without_its_token():
    env = {**os.environ, "CALLBOT_GATEWAY_TOKEN": ""}
    done = subprocess.run([sys.executable, "-m", "bot.cli", "sip", "--port", str(free_udp_port()),
                           "--bot-url", closed_port_url()],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "CALLBOT_GATEWAY_TOKEN is not set" in done.stderr, done.stderr[-2000:]


def test_bot_down_gives_503_not_an_answered_call(tmp_path):
    with sip_gateway(tmp_path, closed_port_url()) as gateway:
        call = RawSipCall(gateway.port)
        started = time.monotonic()
        status = call.invite()
        call.close()
        assert status.startswith("SIP/2.0 503"), status
        assert any(s.startswith("SIP/2.0 180") for s in call.provisional), call.provisional
        assert time.monotonic() - started < 3.0  # a refused connection is known at once
        log = gateway.log_path.read_text()
        assert "bot unreachable" in log and "refused with 503" in log, log[-2000:]
        assert gateway.process.poll() is None


def test_hung_bot_gives_503_after_the_timeout(tmp_path):
    bot = SilentBot()
    try:
        with sip_gateway(tmp_path, bot.url, CALLBOT_SIP_BOT_TIMEOUT_S="2") as gateway:
            call = RawSipCall(gateway.port)
            started = time.monotonic()
            status = call.invite()
            elapsed = time.monotonic() - started
            call.close()
            assert status.startswith("SIP/2.0 503"), status
            assert 1.8 < elapsed < 6.0, elapsed
            assert bot.wait(lambda: len(bot.closed) == 1, 3.0)  # the attempt was dropped
            assert "did not open the media stream within 2.0 s" in gateway.log_path.read_text()
    finally:
        bot.close()


def test_own_limit_and_cancel_while_connecting(tmp_path):
    """The gateway's own limit answers 486 without asking the bot; a caller who hangs up
    while the bot is being reached leaves no connection open."""
    bot = SilentBot()
    try:
        with sip_gateway(tmp_path, bot.url, CALLBOT_SIP_MAX_CALLS="1",
                         CALLBOT_SIP_BOT_TIMEOUT_S="10") as gateway:
            first = RawSipCall(gateway.port)
            first.send_invite()
            assert first.ringing().startswith("SIP/2.0 180")
            assert bot.wait(lambda: len(bot.opened) == 1, 5.0)
            second = RawSipCall(gateway.port)
            assert second.invite().startswith("SIP/2.0 486")
            second.close()
            time.sleep(0.3)
            assert len(bot.opened) == 1  # the refused call never reached the bot
            cancelled_at = time.monotonic()
            assert first.cancel().startswith("SIP/2.0 200")
            assert first.answer().startswith("SIP/2.0 487")
            first.close()
            # closed at the CANCEL, not at the 10 s timeout
            assert bot.wait(lambda: len(bot.closed) == 1, 3.0)
            assert bot.closed[0] - cancelled_at < 3.0
            assert "hung up before the bot took the call" in gateway.log_path.read_text()
            assert gateway.process.poll() is None
    finally:
        bot.close()


# ---------------------------------------------------------------- with a live bot


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("admission")
    with bot_server(tmp, CALLBOT_MAX_CALLS="2") as server:
        media = server.url.replace("http", "ws") + "/ws/media"
        with sip_gateway(tmp, media) as gateway:
            yield tmp, server, media, gateway


def test_wrong_gateway_token_gives_503_and_an_error(live):
    tmp, server, media, _ = live
    before = len(sip_calls(server))
    with sip_gateway(tmp, media, CALLBOT_GATEWAY_TOKEN="not-the-bot-token") as gateway:
        call = RawSipCall(gateway.port)
        status = call.invite()
        call.close()
        log = gateway.log_path.read_text()
    assert status.startswith("SIP/2.0 503"), status
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert any("credentials (HTTP 401" in line for line in errors), log[-2000:]
    assert "not-the-bot-token" not in log
    assert len(sip_calls(server)) == before  # the bot opened no call


def test_kamailio_fails_over_from_a_gateway_whose_bot_is_down(live):
    tmp, server, _, gateway = live
    silence = write_wav(tmp / "silence.wav", timeline([(10.0, None)]), 16000)
    before = len(sip_calls(server))
    with sip_gateway(tmp, closed_port_url()) as orphan, \
            kamailio_proxy(tmp, [orphan.port, gateway.port]) as proxy:
        # Round robin: of two calls in a row, one is first offered to the orphan gateway.
        results = [place_call(proxy.uri, silence, workdir=tmp / f"failover-{i}", duration_s=3.0)
                   for i in range(2)]
        orphan_log = orphan.log_path.read_text()
    for result in results:
        assert result.established, result.log[-2000:]
        heard, _ = read_wav(result.recording)
        assert np.abs(heard).max() > 1000  # the greeting, from its first words
    assert "refused with 503" in orphan_log, orphan_log[-2000:]
    assert ": answered" not in orphan_log
    calls = sip_calls(server)[before:]
    assert len(calls) == 2
    for record in calls:
        server.wait_for(record["id"], lambda r: r["ended_at"] is not None, timeout=15)


T = TypeVar("T")


async def _hold_lines(media: str, token: str, count: int, then: Callable[[], T]) -> T:
    """Opens `count` media streams as the gateway (each admitted once the greeting comes),
    runs the blocking `then()` while they are held, then hangs them up."""
    import aiohttp

    from bot.caller_sim import _open_stream

    async with aiohttp.ClientSession() as session:
        streams = []
        try:
            for i in range(count):
                deadline = time.monotonic() + 20
                while True:  # lines of the previous test's calls may still be closing
                    try:
                        ws = await session.ws_connect(media, headers=gateway_headers(token))
                        break
                    except aiohttp.WSServerHandshakeError as e:
                        if e.status != 503 or time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.5)
                streams.append(ws)
                await _open_stream(ws, f"MZhold{i}", "+33100000001")
                async with asyncio.timeout(40):
                    async for msg in ws:
                        if json.loads(msg.data).get("event") == "media":
                            break
            return await asyncio.to_thread(then)
        finally:
            for i, ws in enumerate(streams):
                await ws.send_str(json.dumps({"event": "stop", "streamSid": f"MZhold{i}"}))
                await ws.close()


def test_bot_with_every_line_busy_gives_486(live):
    _, server, media, gateway = live

    def call() -> tuple[str, list[str]]:
        sip = RawSipCall(gateway.port)
        status = sip.invite()
        sip.close()
        return status, sip.provisional

    status, provisional = asyncio.run(_hold_lines(media, server.gateway_token, 2, call))
    assert status.startswith("SIP/2.0 486"), status
    assert any(s.startswith("SIP/2.0 180") for s in provisional), provisional
    assert "the bot's lines are busy" in gateway.log_path.read_text()
    # once the bot has closed the held calls, the next caller is answered
    deadline = time.monotonic() + 15
    while True:
        again = RawSipCall(gateway.port)
        status = again.invite()
        if not status.startswith("SIP/2.0 486") or time.monotonic() > deadline:
            break
        again.close()
        time.sleep(0.5)
    if status.startswith("SIP/2.0 200"):
        again.bye()
    else:
        again.close()
    assert status.startswith("SIP/2.0 200"), status

