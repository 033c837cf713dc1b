"""Text to 16 kHz PCM, clause by clause, through an on-disk cache of rendered clauses.

Kokoro is slower than real time on this CPU for long texts, so fixed prompts and
knowledge-base answers are pre-rendered once (`callbot models provision`) and
only what changes is synthesised during a call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import numpy as np

from voice.codecs import resample
from voice.speech_engines import SpeechEngine, SpeechStyle
from voice.text_for_speech import clauses, speakable

PIPELINE_RATE = 16_000
log = logging.getLogger("callbot.voice.tts")


class SpeechRenderer:
    def __init__(self, engine: SpeechEngine, cache_dir: Path) -> None:
        self.engine = engine
        self._dir = cache_dir / engine.name
        self._dir.mkdir(parents=True, exist_ok=True)

    def _path(self, clause: str, style: SpeechStyle) -> Path:
        key = f"{clause}|{style.speed:.3f}|{PIPELINE_RATE}"
        return self._dir / (hashlib.sha256(key.encode("utf-8")).hexdigest()[:32] + ".pcm")

    def render_clause(self, clause: str, style: SpeechStyle) -> bytes:
        """Blocking: cached PCM, or synthesise and cache it (with the pause after it)."""
        path = self._path(clause, style)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        audio = self.engine.synthesize(speakable(clause), style)
        audio = resample(audio, self.engine.sample_rate, PIPELINE_RATE)
        pause = np.zeros(int(style.sentence_pause_s * PIPELINE_RATE), dtype=np.int16)
        pcm = np.concatenate([audio, pause]).astype(np.int16).tobytes()
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pcm)
        tmp.replace(path)
        return pcm

    def is_cached(self, text: str, style: SpeechStyle) -> bool:
        return all(self._path(c, style).is_file() for c in clauses(text))

    def render(self, text: str, style: SpeechStyle) -> bytes:
        return b"".join(self.render_clause(c, style) for c in clauses(text))

    async def stream(self, text: str, style: SpeechStyle) -> AsyncIterator[bytes]:
        """One PCM block per clause, the first as soon as it is ready."""
        for clause in clauses(text):
            yield await asyncio.to_thread(self.render_clause, clause, style)

    def prerender(self, texts: Iterable[str], style: SpeechStyle) -> int:
        """Render what is missing from the cache; returns how many clauses were synthesised."""
        done = 0
        for text in texts:
            for clause in clauses(text):
                if not self._path(clause, style).is_file():
                    self.render_clause(clause, style)
                    done += 1
        return done
