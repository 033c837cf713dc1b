"""Any OpenAI-compatible chat-completions server (vLLM, Ollama, llama.cpp's server, a
sovereign provider), streamed by server-sent events."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import aiohttp

from flows.fallback.base import BackendError

log = logging.getLogger("callbot.flows.fallback")

MAX_LINE = 1 << 16


class OpenAIChatBackend:
    def __init__(self, base_url: str, model: str, api_key: str = "", *, timeout_s: float = 30.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"fallback base_url must be an http(s) URL, got {base_url!r}")
        self.name = "openai"
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_read=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def stream(self, messages: list[dict[str, str]], *, max_tokens: int,
                     temperature: float) -> AsyncIterator[str]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, read_bufsize=MAX_LINE)
        body = {"model": self._model, "messages": messages, "stream": True,
                "max_tokens": max_tokens, "temperature": temperature}
        try:
            async with self._session.post(self._url, json=body, headers=self._headers) as response:
                if response.status != 200:
                    detail = (await response.text())[:200]
                    raise BackendError(f"HTTP {response.status}: {detail}")
                done = False
                async for raw in response.content:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        break
                    piece = _delta(data)
                    if piece:
                        yield piece
                if not done:
                    raise BackendError("the stream ended before [DONE]")
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise BackendError(f"{type(e).__name__}: {e}") from e

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _delta(data: str) -> str:
    try:
        event = json.loads(data)
        choice = event["choices"][0] if event.get("choices") else {}
        return str((choice.get("delta") or {}).get("content") or "")
    except (json.JSONDecodeError, AttributeError, KeyError, IndexError, TypeError) as e:
        raise BackendError(f"malformed event: {data[:120]!r}") from e
