"""An agent for tests and benchmarks: signs in to a running bot server over HTTP (session
cookie, CSRF header) and uses the agent console's API as the page does."""

from __future__ import annotations

import http.cookiejar
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

from bot.config import ROOT


def add_user(database_url: str, username: str, password: str, *, role: str = "agent", teams: str = "",
             sip_uri: str | None = None) -> None:
    """`callbot users add`, as an administrator would run it, on the server's database."""
    args = [sys.executable, "-m", "bot.cli", "users", "add", username, "--role", role]
    args += ["--teams", teams] if teams else []
    args += ["--sip", sip_uri] if sip_uri else []
    env = {**os.environ, "CALLBOT_DATABASE_URL": database_url, "CALLBOT_NEW_PASSWORD": password}
    done = subprocess.run(args, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"callbot users add failed: {done.stderr[-2000:]}")


class ApiError(Exception):
    def __init__(self, status: int, body: dict) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


class AgentClient:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.csrf = ""

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 30.0) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if method != "GET" and self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=timeout) as r:
                raw = r.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = {"error": raw.decode(errors="replace")[:500]}
            raise ApiError(e.code, payload) from None

    def login(self, username: str, password: str) -> dict:
        me = self.request("POST", "/api/login", {"username": username, "password": password})
        self.csrf = me["csrf_token"]
        return me

    def available(self, teams: list[str], device: str = "browser") -> dict:
        return self.request("POST", "/api/agent/presence", {"status": "available", "teams": teams, "device": device})

    def queue(self) -> list[dict]:
        return self.request("GET", "/api/agent/queue")

    def wait_for_caller(self, timeout: float = 60.0, poll_s: float = 0.1) -> dict:
        """The first waiting caller, as soon as one shows in the agent's queue."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entries = self.queue()
            if entries:
                return entries[0]
            time.sleep(poll_s)
        raise AssertionError(f"no caller reached the queue within {timeout} s")

    def accept(self, call_id: str, device: str = "phone", offer: dict | None = None) -> dict:
        return self.request("POST", f"/api/agent/calls/{call_id}/accept", {"device": device, **(offer or {})})

    def call(self, call_id: str) -> dict:
        return self.request("GET", f"/api/agent/calls/{call_id}")

    def hang_up(self, call_id: str) -> dict:
        return self.request("POST", f"/api/agent/calls/{call_id}/hangup", {})

    def wrap_up(self, call_id: str, outcome: str, note: str = "") -> dict:
        return self.request("POST", f"/api/agent/calls/{call_id}/wrapup", {"outcome": outcome, "note": note})

    def callbacks(self) -> list[dict]:
        return self.request("GET", "/api/agent/callbacks")


def server_database(server_log: Path) -> str:
    """The database URL of a caller_sim.bot_server (its store sits beside its log)."""
    return f"sqlite+aiosqlite:///{server_log.parent / 'calls.sqlite3'}"


class StreamCaller:
    """A caller on the media stream (as our SIP gateway connects), run in its own thread:
    silence goes out in real time unless keys or speech are queued; everything the bot
    sends is kept with its arrival time (`received`, 8 kHz int16) and every other message
    in `events`."""

    def __init__(self, ws_url: str, *, sid: str, caller: str = "+33100000000", token: str | None = None) -> None:
        import queue
        import threading

        self._url, self._sid, self._caller, self._token = ws_url, sid, caller, token
        self._todo: queue.Queue = queue.Queue()
        self.received: list[tuple[float, Any]] = []
        self.sent: list[tuple[float, Any]] = []      # the caller's speech, with the time it left
        self.events: list[dict] = []
        self.closed = False
        self._stop = False
        self._thread = threading.Thread(target=self._main, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hang_up()

    def keys(self, digits: str) -> None:
        self._todo.put(("keys", digits))

    def say(self, audio_16k: Any) -> None:
        self._todo.put(("say", audio_16k))

    def hang_up(self) -> None:
        self._stop = True
        self._thread.join(timeout=15)

    def heard_since(self, t: float) -> Any:
        import numpy as np

        chunks = [pcm for at, pcm in self.received if at >= t]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    def wait_quiet(self, *, since: float, quiet_s: float = 2.0, timeout: float = 60.0) -> None:
        """Until the bot has spoken after `since` and stopped for `quiet_s`."""
        import numpy as np

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            loud = [at for at, pcm in self.received if at >= since and len(pcm)
                    and np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 500]
            if loud and time.monotonic() - loud[-1] > quiet_s:
                return
            time.sleep(0.1)
        raise AssertionError("the bot did not speak then stop in time")

    def _main(self) -> None:
        import asyncio

        asyncio.run(self._run())

    async def _run(self) -> None:
        import asyncio
        import base64

        import aiohttp
        import numpy as np

        from bot.caller_sim import _open_stream, gateway_headers
        from voice.codecs import pcm16_to_ulaw, resample, ulaw_to_pcm16

        frame = 160
        silence = pcm16_to_ulaw(np.zeros(frame, dtype=np.int16).tobytes())
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(self._url, headers=gateway_headers(self._token)) as ws:
            await _open_stream(ws, self._sid, self._caller)

            async def reader() -> None:
                async for msg in ws:
                    message = json.loads(msg.data)
                    if message.get("event") == "media":
                        pcm = ulaw_to_pcm16(base64.b64decode(message["media"]["payload"]))
                        self.received.append((time.monotonic(), np.frombuffer(pcm, dtype=np.int16)))
                    else:
                        self.events.append(message)

            task = asyncio.create_task(reader())
            loop = asyncio.get_running_loop()
            started, sent = loop.time(), 0
            pending = b""
            while not self._stop and not ws.closed:
                if not pending and not self._todo.empty():
                    kind, what = self._todo.get()
                    if kind == "keys":
                        for digit in what:
                            await ws.send_str(json.dumps({"event": "dtmf", "streamSid": self._sid,
                                                          "dtmf": {"digit": digit}}))
                    else:
                        self.sent.append((time.monotonic(), what))
                        pending = pcm16_to_ulaw(resample(what.astype(np.int16), 16000, 8000).tobytes())
                payload, pending = (pending[:frame].ljust(frame, b"\xff"), pending[frame:]) if pending \
                    else (silence, b"")
                await ws.send_str(json.dumps({"event": "media", "streamSid": self._sid,
                                              "media": {"payload": base64.b64encode(payload).decode()}}))
                sent += 1
                await asyncio.sleep(max(0.0, started + sent * 0.02 - loop.time()))
            if not ws.closed:
                await ws.send_str(json.dumps({"event": "stop", "streamSid": self._sid}))
            self.closed = True
            await asyncio.wait_for(task, 10)
