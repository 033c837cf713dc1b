"""Processes of the telephony path for tests: the SIP gateway and Kamailio, on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.caller_sim import ROOT, free_port, stop_process


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sip_options(port: int, host: str = "127.0.0.1", timeout: float = 2.0, source: str = "127.0.0.1") -> str:
    """Sends OPTIONS, returns the status line of the answer ('' when none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(timeout)
        local = s.getsockname()[1]
        branch, tag, call_id = uuid.uuid4().hex[:10], uuid.uuid4().hex[:8], uuid.uuid4().hex
        msg = (
            f"OPTIONS sip:probe@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {source}:{local};branch=z9hG4bK{branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:probe@{source}>;tag={tag}\r\nTo: <sip:probe@{host}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        s.sendto(msg.encode(), (host, port))
        try:
            data, _ = s.recvfrom(65535)
        except TimeoutError:
            return ""
        return data.decode(errors="replace").split("\r\n", 1)[0]


def wait_for_sip(port: int, process: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not sip_options(port, timeout=0.5).startswith("SIP/2.0"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"SIP peer on {port} did not start:\n{log.read_text()[-3000:]}")


@dataclass
class SipService:
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def uri(self) -> str:
        return f"sip:bot@127.0.0.1:{self.port}"


@contextmanager
def sip_gateway(tmp: Path, bot_url: str, **env: str):
    port = free_udp_port()
    log_path = tmp / f"gateway-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "sip", "--port", str(port), "--bot-url", bot_url],
            cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_for_sip(port, process, log_path)
        yield SipService(port, process, log_path)
    finally:
        stop_process(process)


@contextmanager
def kamailio_proxy(tmp: Path, gateway_ports: list[int], *, allow: str = "127.0.0.0/8", flood: int = 30):
    from telephony.kamailio_runner import KamailioSettings, kamailio_command

    port = free_udp_port()
    settings = KamailioSettings(
        listen=f"udp:127.0.0.1:{port}",
        gateways=",".join(f"sip:127.0.0.1:{p}" for p in gateway_ports),
        allow=allow, flood_requests=flood, run_dir=tmp / f"kamailio-{port}",
    )
    log_path = tmp / f"kamailio-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(kamailio_command(settings), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_sip(port, process, log_path)
        yield SipService(port, process, log_path)
    finally:
        stop_process(process)


__all__ = ["free_port", "free_udp_port", "kamailio_proxy", "sip_gateway", "sip_options"]
