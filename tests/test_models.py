"""models/: assembling Whisper base from its PyPI parts, checking it, detecting corruption.

Everything that writes goes to a temporary CALLBOT_MODELS_DIR: the real cache
(models/cache) is only read, by `callbot models check`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from models.cache import DEFAULT_CACHE, assemble, cache_dir, package_file, sha256_of, verify
from models.errors import ModelError
from models.whisper import (
    MODEL_SHA256,
    PART_PACKAGES,
    SIDE_FILES,
    resolve_whisper_model,
    verify_whisper_base,
    whisper_base_dir,
)

ROOT = Path(__file__).resolve().parent.parent
CALLBOT = ROOT / ".venv" / "bin" / "callbot"


@pytest.fixture(scope="module")
def assembled(tmp_path_factory) -> Path:
    """A models dir where whisper_base_dir() assembled model.bin from the parts."""
    models_dir = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CALLBOT_MODELS_DIR", str(models_dir))
        assert cache_dir() == models_dir
        out = whisper_base_dir()
    assert out == models_dir / "whisper-base"
    return models_dir


def test_whisper_base_dir_assembles_a_checked_model(assembled):
    folder = assembled / "whisper-base"
    model = folder / "model.bin"
    parts = [
        package_file(PART_PACKAGES[0], "data/model.bin.part1"),
        package_file(PART_PACKAGES[1], "data/model.bin.part2"),
    ]
    assert model.stat().st_size == sum(p.stat().st_size for p in parts)
    verify(model, MODEL_SHA256)  # rehashes the whole file
    assert sha256_of(model) == MODEL_SHA256
    assert (folder / "model.bin.sha256").read_text().strip() == MODEL_SHA256
    for name in SIDE_FILES:
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0
    assert not list(folder.glob("*.tmp"))


def test_whisper_base_dir_reuses_a_valid_assembly(assembled, monkeypatch):
    monkeypatch.setenv("CALLBOT_MODELS_DIR", str(assembled))
    model = assembled / "whisper-base" / "model.bin"
    before = model.stat().st_mtime_ns
    assert whisper_base_dir() == assembled / "whisper-base"
    assert model.stat().st_mtime_ns == before  # not rewritten


def _copy(assembled: Path, tmp_path: Path) -> Path:
    models_dir = tmp_path / "models"
    shutil.copytree(assembled, models_dir)
    return models_dir


def test_corrupt_model_is_detected_by_verify(assembled, tmp_path, monkeypatch):
    models_dir = _copy(assembled, tmp_path)
    monkeypatch.setenv("CALLBOT_MODELS_DIR", str(models_dir))
    model = models_dir / "whisper-base" / "model.bin"
    with model.open("r+b") as f:  # one flipped byte in the middle, same size
        f.seek(model.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))

    with pytest.raises(ModelError) as excinfo:
        verify(model, MODEL_SHA256)
    message = str(excinfo.value)
    assert str(model) in message and "corrupt" in message and MODEL_SHA256 in message
    assert "callbot models provision" in message  # says how to fix it

    with pytest.raises(ModelError, match="model.bin is corrupt"):
        verify_whisper_base()


def test_truncated_model_is_reassembled(assembled, tmp_path, monkeypatch):
    models_dir = _copy(assembled, tmp_path)
    monkeypatch.setenv("CALLBOT_MODELS_DIR", str(models_dir))
    model = models_dir / "whisper-base" / "model.bin"
    with model.open("r+b") as f:
        f.truncate(model.stat().st_size - 4096)
    whisper_base_dir()  # size no longer matches: assembled again from the parts
    verify(model, MODEL_SHA256)


def test_missing_model_is_named(tmp_path):
    missing = tmp_path / "whisper-base" / "model.bin"
    with pytest.raises(ModelError, match=f"{missing} is missing"):
        verify(missing, MODEL_SHA256)


def test_assemble_rejects_parts_with_the_wrong_digest(tmp_path):
    parts = []
    for i, content in enumerate((b"abc" * 1000, b"def" * 1000)):
        parts.append(tmp_path / f"part{i}")
        parts[-1].write_bytes(content)
    out = tmp_path / "out" / "model.bin"
    with pytest.raises(ModelError) as excinfo:
        assemble(parts, out, "0" * 64)
    assert "model.bin" in str(excinfo.value) and str(parts[0]) in str(excinfo.value)
    assert not out.exists() and not list(out.parent.glob("*.tmp"))

    good = hashlib.sha256(b"abc" * 1000 + b"def" * 1000).hexdigest()
    assert assemble(parts, out, good) == out
    assert out.read_bytes() == b"abc" * 1000 + b"def" * 1000


def test_resolve_whisper_model(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        resolve_whisper_model(str(tmp_path / "large-v3"))
    (tmp_path / "custom").mkdir()
    (tmp_path / "custom" / "model.bin").write_bytes(b"x")
    assert resolve_whisper_model(str(tmp_path / "custom")) == str(tmp_path / "custom")


def test_package_file_names_the_package():
    with pytest.raises(ModelError, match="'no_such_model_package' is not installed"):
        package_file("no_such_model_package", "data/x.bin")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CALLBOT), "models", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env=env,
    )


def test_cli_models_check():
    assert (DEFAULT_CACHE / "whisper-base" / "model.bin").is_file()
    env = {k: v for k, v in os.environ.items() if k != "CALLBOT_MODELS_DIR"}
    done = _cli("check", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for name in ("whisper-base", "kokoro-82m", "silero-vad", "smart-turn-v3", "e5-small", "piper-test-voice"):
        assert any(line.split()[:2] == ["ok", name] for line in lines), (name, done.stdout)
    assert "FAILED" not in done.stdout
    assert "Traceback" not in done.stderr


def test_cli_models_verify_reports_a_corrupt_model(assembled, tmp_path):
    models_dir = _copy(assembled, tmp_path)
    model = models_dir / "whisper-base" / "model.bin"
    with model.open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00" * 16)
    # Kokoro is taken from the real cache (a copy: verify only reads it).
    shutil.copy(DEFAULT_CACHE / "kokoro-v1.0.int8.onnx", models_dir)
    shutil.copy(DEFAULT_CACHE / "kokoro-v1.0.int8.onnx.sha256", models_dir)
    done = _cli("verify", env={**os.environ, "CALLBOT_MODELS_DIR": str(models_dir)})
    assert done.returncode == 1
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "whisper-base" in failed[0] and str(model) in failed[0], done.stdout
    assert any(line.split()[:2] == ["ok", "kokoro-82m"] for line in done.stdout.splitlines())
    assert "Traceback" not in done.stderr
