"""Slow-speech mode on the voice side: the frame that switches it on the call's processors,
and the caller's own pace (syllables per second of voiced speech), one of its triggers.

What the mode changes is decided where each thing lives: the speech style (rate, pauses
between clauses and before figures) in the speech renderer, the end-of-turn patience in
the turn transcriber, the no-input time in the silence watch, the wording in the dialogue.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import webrtcvad
from pipecat.frames.frames import SystemFrame

from voice.text_for_speech import speakable

RATE = 16_000
FRAME_BYTES = RATE // 50 * 2  # 20 ms of 16-bit mono


@dataclass
class SlowSpeechFrame(SystemFrame):
    """Sent by the dialogue both ways: slow-speech mode on or off, and why."""

    on: bool
    reason: str = ""


_VOWELS = re.compile(r"[aeiouyàâäéèêëîïôöùûüÿœæ]+")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")


def syllables(text: str) -> int:
    """Spoken syllables of French text, numbers read out: vowel groups, less the final
    mute "e", "es", "ent" of words of two groups or more ("elle" 1, "parlent" 1,
    "entreprise" 3). An estimate (about one in ten off on running text), enough for a pace."""
    count = 0
    for word in _WORD.findall(unicodedata.normalize("NFC", speakable(text).lower())):
        groups = len(_VOWELS.findall(word))
        if groups > 1 and re.search(r"[^aeiouy](e|es|ent)$", word) and not word.endswith(("ée", "ées")):
            groups -= 1
        count += max(groups, 1 if re.search(r"[^\W\d_]", word) else 0)
    return count


def voiced_seconds(pcm16: bytes, aggressiveness: int = 2) -> float:
    """Seconds of speech in 16 kHz int16 audio (20 ms frames that webrtcvad finds voiced):
    pauses do not count in a pace."""
    vad = webrtcvad.Vad(aggressiveness)
    voiced = 0
    for start in range(0, len(pcm16) - FRAME_BYTES + 1, FRAME_BYTES):
        voiced += vad.is_speech(pcm16[start:start + FRAME_BYTES], RATE)
    return voiced * 0.02


def speech_rate(text: str, voiced_s: float) -> float | None:
    """Syllables per second of voiced speech; None when too little was said to tell."""
    count = syllables(text)
    if voiced_s < 1.0 or count < 4:
        return None
    return count / voiced_s
