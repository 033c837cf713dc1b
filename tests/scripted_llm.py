"""An OpenAI-compatible chat-completions server that streams what a test scripts: the
faults a real server shows now and then (a late first token, a 500, a stream cut short,
a made-up figure), on demand. It runs in its own thread, so that a bot server in another
process can use it as well as an in-process test."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Script:
    pieces: list[str] = field(default_factory=list)
    first_delay_s: float = 0.0
    piece_delay_s: float = 0.0
    status: int = 200
    drop_after: int | None = None     # close the stream after this many pieces, without [DONE]


@dataclass
class ScriptedLLM:
    script: Script = field(default_factory=Script)
    requests: list[dict] = field(default_factory=list)
    finished_at: list[float] = field(default_factory=list)   # time.monotonic() at each answer's end
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        s = self.script
        if s.status != 200:
            return web.json_response({"error": {"message": "scripted failure"}}, status=s.status)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await asyncio.sleep(s.first_delay_s)
        for i, piece in enumerate(s.pieces):
            if s.drop_after is not None and i >= s.drop_after:
                self.finished_at.append(time.monotonic())
                return response
            if i:
                await asyncio.sleep(s.piece_delay_s)
            event = {"choices": [{"index": 0, "delta": {"content": piece}}]}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        self.finished_at.append(time.monotonic())
        return response

    def start(self) -> ScriptedLLM:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            self._runner = web.AppRunner(app)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}/v1"
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
