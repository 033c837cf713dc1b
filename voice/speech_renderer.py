"""Text to 16 kHz PCM, clause by clause, through an on-disk cache of rendered clauses.

Kokoro on one thread of this CPU renders about as fast as it speaks, so every text said
without a value and the leading clauses of each knowledge-base answer are pre-rendered
once (`callbot models provision`, Knowledge.spoken_texts). During a call the rest is
rendered clause by clause, each while the one before it plays.

The cache keeps only the clauses its owner says are `cacheable` (the server: the clauses
of texts that hold nothing about a caller). A clause with a caller's value (a SIRET read
back, an amount due) is rendered for the call and never written to disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from voice.codecs import resample
from voice.speech_engines import SpeechEngine, SpeechStyle
from voice.text_for_speech import before_figures, clauses, comma_pieces, speakable

PIPELINE_RATE = 16_000
log = logging.getLogger("callbot.voice.tts")


class SpeechRenderer:
    def __init__(self, engine: SpeechEngine, cache_dir: Path, *,
                 cacheable: Callable[[str], bool] | None = None) -> None:
        """`cacheable`: which clauses may be kept on disk; None: all (tools rendering
        texts they know hold nothing personal)."""
        self.engine = engine
        self._root = cache_dir / engine.name
        self._dir = self._root / "fixed"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._cacheable = cacheable or (lambda _clause: True)

    def cache_path(self, clause: str, style: SpeechStyle) -> Path:
        key = f"{clause}|{style.speed:.3f}|{PIPELINE_RATE}"
        if style.sentence_pause_s != SpeechStyle.sentence_pause_s or style.figure_pause_s:
            key += f"|{style.sentence_pause_s:.2f}|{style.figure_pause_s:.2f}"
        return self._dir / (hashlib.sha256(key.encode("utf-8")).hexdigest()[:32] + ".pcm")

    def render_clause(self, clause: str, style: SpeechStyle) -> bytes:
        """Blocking: cached PCM, or synthesise and cache it (with the pause after it, and
        one before each figure when the style asks for it)."""
        path = self.cache_path(clause, style)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        pieces = before_figures(clause) if style.figure_pause_s else [clause]
        gap = np.zeros(int(style.figure_pause_s * PIPELINE_RATE), dtype=np.int16)
        parts: list[np.ndarray] = []
        for i, piece in enumerate(pieces):
            audio = self.engine.synthesize(speakable(piece), style)
            parts += ([gap] if i else []) + [resample(audio, self.engine.sample_rate, PIPELINE_RATE)]
        parts.append(np.zeros(int(style.sentence_pause_s * PIPELINE_RATE), dtype=np.int16))
        pcm = np.concatenate(parts).astype(np.int16).tobytes()
        if not self._cacheable(clause):
            return pcm
        # Two calls may render the same new clause at once: each writes its own file.
        tmp = path.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")   # servers share the cache
        tmp.write_bytes(pcm)
        tmp.replace(path)
        return pcm

    def is_cached(self, text: str, style: SpeechStyle) -> bool:
        return all(self.cache_path(c, style).is_file() for c in clauses(text))

    def render(self, text: str, style: SpeechStyle) -> bytes:
        return b"".join(self.render_clause(c, style) for c in clauses(text))

    def pieces(self, text: str, style: SpeechStyle) -> list[str]:
        """What `stream` renders one after the other: the clauses, the first one cut at its
        commas when it is not in the cache (rendering takes about as long as speaking on
        this CPU: a first sentence to render, a value or a generated answer, is heard after
        its first words are rendered, not the whole sentence)."""
        parts = clauses(text)
        if parts and not self.cache_path(parts[0], style).is_file():
            parts = [*comma_pieces(parts[0]), *parts[1:]]
        return parts

    async def stream(self, text: str, style: SpeechStyle) -> AsyncIterator[bytes]:
        """One PCM block per clause, the first as soon as it is ready.

        The clauses are rendered one after the other in the background, each starting as
        soon as the one before is handed over, not when the consumer asks for it: while
        clause N plays, clause N+1 is being rendered. Closing the stream (an interruption)
        stops the rendering after the clause under way, which is cached all the same.
        """
        parts = self.pieces(text, style)
        ready: asyncio.Queue[bytes | Exception] = asyncio.Queue()

        async def render_all() -> None:
            try:
                for clause in parts:
                    ready.put_nowait(await asyncio.to_thread(self.render_clause, clause, style))
            except Exception as e:  # noqa: BLE001 (raised again where the stream is read)
                ready.put_nowait(e)

        renderer = asyncio.create_task(render_all(), name="speech-render-ahead")
        try:
            for _ in parts:
                block = await ready.get()
                if isinstance(block, Exception):
                    raise block
                yield block
        finally:
            renderer.cancel()
            await asyncio.wait({renderer})

    def prerender(self, texts: Iterable[str], style: SpeechStyle, *, workers: int = 1) -> int:
        """Render the clauses of `texts` missing from the cache, `workers` at a time (each
        synthesis on its own thread of the engine); returns how many were synthesised."""
        missing = [c for c in dict.fromkeys(c for t in texts for c in clauses(t))
                   if self._cacheable(c) and not self.cache_path(c, style).is_file()]
        if workers <= 1:
            for clause in missing:
                self.render_clause(clause, style)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="prerender") as pool:
                list(pool.map(lambda c: self.render_clause(c, style), missing))
        return len(missing)

    def drop_legacy(self, texts: Iterable[str], styles: Iterable[SpeechStyle]) -> int:
        """Caches written before the `cacheable` rule kept every clause said, values
        included, flat in the engine's folder: the clauses of `texts` in `styles` move into
        the cache, everything else there is deleted. Returns how many files were deleted."""
        keep = {self.cache_path(c, style).name for style in styles for t in texts for c in clauses(t)}
        deleted = 0
        for path in [*self._root.glob("*.pcm"), *self._root.glob("*.tmp")]:
            try:
                if path.name in keep:
                    path.replace(self._dir / path.name)
                else:
                    path.unlink()
                    deleted += 1
            except FileNotFoundError:  # another process (a second server) got there first
                continue
        if deleted:
            log.info("audio cache: %d clauses of an older cache deleted (they may have held callers' values)",
                     deleted)
        return deleted
