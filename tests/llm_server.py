"""A real llama.cpp OpenAI-compatible server (`callbot llm serve`) for tests.

    with llm_server() as base_url:          # "http://127.0.0.1:PORT/v1"
        POST f"{base_url}/chat/completions"  # model name: "qwen-0.5b" (any name works)

The server runs the packaged Qwen2.5-Coder-0.5B (weight repacking off) on a free
loopback port in its own process group; the context manager returns once `/v1/models`
answers and stops the server on exit (SIGTERM, then SIGKILL). The server also gets
SIGKILL if the process that started it dies (Linux: PR_SET_PDEATHSIG): no orphan even
when pytest is killed. Start it from the main thread, or from a thread that outlives it:
the kernel sends that signal when the thread that started it ends.

Without llama-cpp-python or the model's part packages the test is skipped, which
tests/conftest.py turns into a failure under CI=true.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL = "qwen-0.5b"
START_TIMEOUT = 120.0  # model load is 1-3 s; the rest is slack for a loaded CI machine


def require_llm(model: str = MODEL) -> Path:
    """The model's GGUF (assembled now if needed), or skip (a failure under CI)."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python not installed: pip install -e '.[llm]' (make setup)")
    from models.errors import ModelError
    from models.llm import resolve_llm_model

    try:
        return resolve_llm_model(model)
    except ModelError as e:
        pytest.skip(f"LLM '{model}' unavailable: {e}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Runs `python -m bot.cli ARGS` after asking the kernel to SIGKILL it when its parent dies
# (PR_SET_PDEATHSIG; done in the child itself: no preexec_fn in a threaded test process).
_BOOT = (
    "import ctypes, os, runpy, signal, sys\n"
    "try:\n"
    "    ctypes.CDLL(None).prctl(1, signal.SIGKILL)\n"
    "except (OSError, AttributeError):\n"
    "    pass\n"
    "if os.getppid() != int(os.environ['CALLBOT_TEST_PARENT']):\n"
    "    sys.exit(1)\n"
    "sys.argv = ['callbot', *sys.argv[1:]]\n"
    "runpy.run_module('bot.cli', run_name='__main__', alter_sys=True)\n"
)


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text("utf-8", "replace")[-chars:]
    except OSError:
        return ""


@contextmanager
def llm_server(
    model: str = MODEL,
    *,
    timeout: float = START_TIMEOUT,
    log: Path | None = None,
    context: int = 4096,
    threads: int = 0,
) -> Iterator[str]:
    """Start `callbot -v llm serve` for `model`, yield its base URL (ending in /v1), stop it.

    `threads` 0: the launcher's default (one per core).

    `log` receives the server's output (llama.cpp's load log included); by default a
    temporary file, shown in the error if the server does not come up.
    """
    require_llm(model)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    own_log = log is None
    log_path = Path(tempfile.mkstemp(prefix="llm-server-", suffix=".log")[1]) if own_log else log
    command = [sys.executable, "-c", _BOOT, "-v", "llm", "serve", "--model", model,
               "--port", str(port), "--context", str(context), "--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CALLBOT_TEST_PARENT": str(os.getpid())}
    with log_path.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llm server exited with {proc.returncode}:\n{_tail(log_path)}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                    if response.status == 200 and json.load(response).get("data"):
                        break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llm server not answering after {timeout:.0f} s:\n{_tail(log_path)}")
            time.sleep(0.2)
        yield base_url
    finally:
        _stop(proc)
        if own_log:
            log_path.unlink(missing_ok=True)
