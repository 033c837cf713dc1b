"""`callbot serve --sip` starts the action server, the demo information system, the SIP
gateway and Kamailio: stopping the server the way a service manager does (SIGTERM), or
losing it (SIGKILL), leaves none of them running."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bot.caller_sim import free_port, sip_options
from bot.config import ROOT
from bot.processes import stop_process

pytestmark = pytest.mark.slow


def descendants(pid: int) -> dict[int, str]:
    """Every process below `pid`, with its command name, from /proc."""
    parents: dict[int, tuple[int, str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        parents[int(stat.parent.name)] = (int(fields[1]), name)
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, name) in parents.items():
            if ppid == parent and child not in found:
                found[child] = name
                frontier.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def start_server(tmp: Path) -> tuple[subprocess.Popen, dict[int, str], Path]:
    if not (shutil.which("kamailio") or Path("/usr/sbin/kamailio").exists()):
        pytest.skip("kamailio is not installed (make setup installs it)")
    for port in (5055, 5056):   # fixed ports of `callbot serve`
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            pytest.fail(f"port {port} is already taken: another callbot serve is running")
        except OSError:
            pass
    port = free_port()
    log = tmp / "serve.log"
    env = {**os.environ, "CALLBOT_PORT": str(port),
           "CALLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'calls.sqlite3'}",
           "CALLBOT_KAMAILIO_RUN_DIR": str(tmp / "kamailio")}
    for name in ("CALLBOT_ACTIONS_SECRET", "CALLBOT_GATEWAY_TOKEN"):
        env.pop(name, None)     # made up by `serve` for its own children
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--sip"], cwd=ROOT, env=env,
                                  stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            if all(sip_options(sip, timeout=1.0).startswith("SIP/2.0") for sip in (5060, 5080)):
                break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            stop_process(server)
            pytest.fail(f"serve --sip did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    children = descendants(server.pid)
    names = " ".join(children.values())
    assert "kamailio" in names, (children, log.read_text()[-2000:])
    return server, children, log


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_stopping_the_server_stops_what_it_started(tmp_path, sig):
    server, children, log = start_server(tmp_path)
    assert len(children) >= 4, children   # action server, demo SI, gateway, Kamailio (and workers)
    server.send_signal(sig)
    server.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(pid) for pid in children):
        time.sleep(0.2)
    left = {pid: name for pid, name in children.items() if alive(pid)}
    for pid in left:   # not to disturb the tests after this one
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not left, f"still running after {sig.name}: {left}\n{log.read_text()[-2000:]}"
