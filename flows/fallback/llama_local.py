"""A local GGUF model run in-process by llama-cpp-python (the `llm` extra): no server, no
network. One generation at a time: on a CPU a second one would only slow both."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from flows.fallback.base import BackendError

log = logging.getLogger("callbot.flows.fallback")
_END = object()


class LlamaCppBackend:
    def __init__(self, model_path: Path, *, threads: int | None = None, context: int = 4096) -> None:
        self.name = "llama_cpp"
        self._path = model_path
        self._threads = threads or max(1, os.cpu_count() or 1)
        self._context = context
        self._llama = None
        self._load_lock = threading.Lock()
        self._busy = asyncio.Lock()

    def _model(self):
        with self._load_lock:
            if self._llama is None:
                try:
                    from llama_cpp import Llama
                except ImportError as e:
                    raise BackendError("llama-cpp-python is not installed (pip install '.[llm]')") from e
                if not self._path.is_file():
                    raise BackendError(f"GGUF model not found: {self._path}")
                # Weight repacking must be off (first tokens took 5-8 s with it on a 2-core
                # CPU): Llama() has no option for it; bot/services.py patches its defaults.
                self._llama = Llama(model_path=str(self._path), n_ctx=self._context, n_threads=self._threads,
                                    logits_all=False, verbose=False)
            return self._llama

    async def load(self) -> None:
        """Loads the model now (about a second) rather than during the first answer."""
        await asyncio.to_thread(self._model)

    async def stream(self, messages: list[dict[str, str]], *, max_tokens: int,
                     temperature: float) -> AsyncIterator[str]:
        async with self._busy:
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue = asyncio.Queue()
            stop = threading.Event()

            def generate() -> None:
                try:
                    chunks = self._model().create_chat_completion(
                        messages=messages, stream=True, max_tokens=max_tokens, temperature=temperature)
                    for chunk in chunks:
                        if stop.is_set():
                            break
                        piece = (chunk["choices"][0].get("delta") or {}).get("content") or ""
                        if piece:
                            loop.call_soon_threadsafe(queue.put_nowait, piece)
                except Exception as e:  # noqa: BLE001 (the thread hands every failure to the caller's loop)
                    loop.call_soon_threadsafe(queue.put_nowait, e if isinstance(e, BackendError) else
                                              BackendError(f"{type(e).__name__}: {e}"))
                finally:
                    loop.call_soon_threadsafe(queue.put_nowait, _END)

            worker = loop.run_in_executor(None, generate)
            try:
                while (item := await queue.get()) is not _END:
                    if isinstance(item, BackendError):
                        raise item
                    yield item
            finally:
                stop.set()  # an interrupted answer stops generating at the next token
                await asyncio.shield(worker)

    async def close(self) -> None:
        self._llama = None
