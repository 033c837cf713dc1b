"""Where assembled or fetched model files live (git-ignored)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from models.errors import ModelError

DEFAULT_CACHE = Path(__file__).resolve().parent / "cache"


def cache_dir() -> Path:
    path = Path(os.environ.get("CALLBOT_MODELS_DIR", DEFAULT_CACHE))
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_file(package: str, relative: str) -> Path:
    """Path of a data file shipped inside an installed package."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"package '{package}' is not installed: run 'make setup' (pip install -e .)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelError(f"{path} is missing: reinstall the package '{package}'")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def assemble(parts: Iterable[Path], out: Path, expected_sha256: str) -> Path:
    """Concatenate part files into `out`, checked by sha256; reuse a valid earlier result.

    The check of an existing file is by size and a stamp holding the digest, so that
    a normal start does not rehash 150 MB; `verify` rehashes on demand.
    """
    parts = list(parts)
    stamp = out.with_name(out.name + ".sha256")
    size = sum(p.stat().st_size for p in parts)
    if (
        out.is_file()
        and out.stat().st_size == size
        and stamp.is_file()
        and stamp.read_text().strip() == expected_sha256
    ):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    digest = hashlib.sha256()
    with tmp.open("wb") as f:
        for part in parts:
            with part.open("rb") as src:
                for block in iter(lambda: src.read(1 << 20), b""):
                    digest.update(block)
                    f.write(block)
    if digest.hexdigest() != expected_sha256:
        tmp.unlink(missing_ok=True)
        raise ModelError(
            f"{out.name}: the parts {', '.join(str(p) for p in parts)} do not match the expected "
            f"sha256 {expected_sha256}: reinstall them (make setup)"
        )
    tmp.replace(out)
    stamp.write_text(expected_sha256 + "\n")
    return out


def verify(path: Path, expected_sha256: str) -> None:
    if not path.is_file():
        raise ModelError(f"{path} is missing: run 'callbot models provision'")
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise ModelError(
            f"{path} is corrupt (sha256 {actual}, expected {expected_sha256}): "
            "delete it and run 'callbot models provision'"
        )
