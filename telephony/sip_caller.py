"""Scripted SIP caller (and auto-answering SIP peer) on loopback, driving Debian's baresip.

For tests and benchmarks of the SIP gateway: `place_call` dials a URI from 127.0.0.1,
plays a WAV as the microphone, records what it hears, sends RFC 4733 DTMF at given
times and hangs up; `place_calls` runs several at once (one baresip process per call);
`SipCallee` is an auto-answering baresip peer (plays a WAV, records, logs DTMF).

What Debian bookworm's baresip 1.0.0 does (checked on this machine):

- `aufile` is an audio *source* only (there is no aufile player in 1.0.0). What a side
  hears is recorded by the `sndfile` audio filter: `snd_path DIR` gives
  `DIR/dump-<Y-m-d-H-M-S>-dec.wav` (heard) and `...-enc.wav` (sent), at the codec's
  rate. The `aubridge` player (device "nil") stands in for a sound card.
- `aufile` needs a mono S16LE WAV at exactly `ausrc_srate` Hz, loads it whole, and
  when it runs out it ends the call ("menu: audio error (0,end of file)"): sources are
  therefore resampled and padded with silence well past the call's end.
- It starts when media starts: on the 200 OK (or on a 183 with SDP: early media).
- Log lines (stdout is line-buffered enough to be read live through a pipe):
  "<aor>: Call established: <peer>" on answer; "<peer>: session closed: <why>" when the
  other side ends the dialog (a BYE reads "Connection reset by peer") or rejects the
  INVITE ("486 Busy Here"...); "Call with <peer> terminated" at every end;
  "audio: send DTMF digit end: 'X'" for each digit sent; "received event: 'X' (end=0)"
  for each telephone-event digit received.
- DTMF: the menu command "/sndcode X" (one digit per command), sent as one UDP
  datagram to the `cons` module (`cons_listen`); it goes out as RTP telephone-event.
- SIGTERM sends BYE for open calls, closes the WAV dumps cleanly and exits at once.
- The `stdio` UI fails without a terminal and `-n 127.0.0.1` is needed, else the SDP
  advertises another interface.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import wave
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from voice.codecs import resample

BARESIP = "baresip"
MODULE_PATH = Path("/usr/lib/baresip/modules")
HOST = "127.0.0.1"

# codec name as baresip spells it -> (module, the rate baresip runs it at)
CODECS: dict[str, tuple[str, int]] = {
    "PCMU": ("g711", 8000),
    "PCMA": ("g711", 8000),
    "G722": ("g722", 16000),
    "GSM": ("gsm", 8000),
    "opus": ("opus", 48000),
}
DTMF_DIGITS = frozenset("0123456789*#ABCD")

_ESTABLISHED = re.compile(r": Call established: ")
_SESSION_CLOSED = re.compile(r": session closed")
_TERMINATED = re.compile(r": Call with \S+ terminated")
_READY = "baresip is ready."
_DTMF_SENT = re.compile(r"audio: send DTMF digit end: '(.)'")
_DTMF_RECEIVED = re.compile(r"received event: '(.)' \(end=0\)")


@dataclass
class SipCallResult:
    """What one side of a call (a `place_call` caller or a `SipCallee`) saw."""

    recording: Path          # WAV (mono S16) of what this side heard; 0 frames when no media
    sample_rate: int         # of `recording`: the codec's rate (8000 for G.711)
    log: str                 # baresip's output, for diagnostics (also in workdir/baresip.log)
    established: bool        # the call was answered ("Call established")
    closed_by_remote: bool   # the other side ended it (BYE received) before this side did
    answered_after_s: float | None = None   # dial (or process start) to answer
    dtmf_sent: list[str] = field(default_factory=list)      # digits baresip says it sent
    dtmf_received: list[str] = field(default_factory=list)  # telephone-event digits heard


# ---------------------------------------------------------------- ports and audio files

_port_lock = threading.Lock()
_ports_given: set[int] = set()


def free_port() -> int:
    """A port of 127.0.0.1 free for both UDP and TCP (baresip listens on both for SIP),
    never handed out twice by this process. Another process may still take it before
    baresip binds it: `place_call` retries then."""
    with _port_lock:
        for _ in range(500):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind((HOST, 0))
                port = int(udp.getsockname()[1])
                if port in _ports_given:
                    continue
                try:
                    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                        tcp.bind((HOST, port))
                except OSError:
                    continue
            _ports_given.add(port)
            return port
    raise RuntimeError("no free port on 127.0.0.1")


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV -> (mono int16 samples, rate); channels are averaged."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: 16-bit PCM WAV expected, got {8 * w.getsampwidth()}-bit")
        rate, channels = w.getframerate(), w.getnchannels()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).astype(np.float64).mean(axis=1).round().astype(np.int16)
    return samples.astype(np.int16), rate


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """Mono int16 samples -> 16-bit PCM WAV."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())


def _write_source(wav: Path, dst: Path, rate: int, min_duration_s: float) -> None:
    """`wav` resampled to `rate` and padded with silence to `min_duration_s`, since
    baresip's aufile ends the call when its file runs out."""
    samples, src_rate = read_wav(wav)
    samples = resample(samples, src_rate, rate)  # soxr, as everywhere else
    pad = int(rate * min_duration_s) - len(samples)
    if pad > 0:
        samples = np.concatenate([samples, np.zeros(pad, dtype=np.int16)])
    write_wav(dst, samples, rate)


# ---------------------------------------------------------------- one baresip process


def _check_codecs(codecs: Sequence[str]) -> list[str]:
    if not codecs:
        raise ValueError("at least one codec is needed")
    names = {name.lower(): name for name in CODECS}
    unknown = [c for c in codecs if c.lower() not in names]
    if unknown:
        raise ValueError(f"unsupported codecs {unknown}; known: {sorted(CODECS)}")
    return [names[c.lower()] for c in codecs]


def _config(*, sip_port: int, source: Path, rate: int, rec_dir: Path, codecs: Sequence[str],
            cons_port: int | None) -> str:
    modules = list(dict.fromkeys(CODECS[c][0] for c in codecs)) + ["aufile", "aubridge", "sndfile"]
    if cons_port is not None:
        modules.append("cons")
    lines = [
        "poll_method epoll",
        f"sip_listen {HOST}:{sip_port}",
        "call_local_timeout 120",
        "call_max_calls 8",
        f"audio_source aufile,{source}",
        "audio_player aubridge,nil",
        "audio_alert aubridge,nil",
        f"ausrc_srate {rate}",
        f"auplay_srate {rate}",
        "ausrc_channels 1",
        "auplay_channels 1",
        "rtp_ports 10000-29999",
        f"module_path {MODULE_PATH}",
        *(f"module {m}.so" for m in modules),
        "module_tmp account.so",
        "module_app menu.so",
        "statmode_default off",
        "ringback_disabled yes",
        "menu_bell no",
        f"snd_path {rec_dir}",
    ]
    if cons_port is not None:
        lines.append(f"cons_listen {HOST}:{cons_port}")
    return "\n".join(lines) + "\n"


class _Baresip:
    """One baresip process with a generated config folder, its output read live."""

    def __init__(self, workdir: Path, *, user: str, wav: Path, source_s: float, sip_port: int | None,
                 codecs: Sequence[str], auto_answer: bool, with_cons: bool, lifetime_s: float,
                 dial: str | None = None) -> None:
        self.workdir = workdir
        self.home = workdir / "baresip"
        self.rec_dir = self.home / "rec"
        self.codecs = _check_codecs(codecs)
        self.rate = CODECS[self.codecs[0]][1]
        self._fixed_port = sip_port
        self.sip_port = sip_port if sip_port is not None else free_port()
        self.cons_port = free_port() if with_cons else None
        self.user, self.auto_answer, self.dial, self.lifetime_s = user, auto_answer, dial, lifetime_s
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.ready = False
        self.exited = False
        self.started_at = 0.0
        self.established_at: float | None = None
        self.remote_closed = False
        self.ended = False
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

        if shutil.which(BARESIP) is None:
            raise FileNotFoundError("baresip is not installed (apt-get install -y baresip)")
        if self.home.exists():
            shutil.rmtree(self.home)
        self.rec_dir.mkdir(parents=True)
        self.source = self.home / "source.wav"
        _write_source(wav, self.source, self.rate, source_s)

    def _write_config(self) -> None:
        (self.home / "config").write_text(_config(
            sip_port=self.sip_port, source=self.source, rate=self.rate, rec_dir=self.rec_dir,
            codecs=self.codecs, cons_port=self.cons_port))
        params = ";regint=0;audio_codecs=" + ",".join(self.codecs)
        if self.auto_answer:
            params += ";answermode=auto"
        (self.home / "accounts").write_text(f"<sip:{self.user}@{HOST}>{params}\n")

    def start(self, ready_timeout_s: float = 10.0) -> None:
        """Start baresip and wait for "baresip is ready."; when it could not bind its
        ports (taken meanwhile by another process), retry on fresh ones."""
        for attempt in range(4):
            self._write_config()
            self._spawn()
            with self._cond:
                self._cond.wait_for(lambda: self.ready or self.exited, ready_timeout_s)
                if self.ready:
                    return
            self.stop()
            log = self.log()
            if attempt < 3 and self._fixed_port is None and "in use" in log:
                self.sip_port = free_port()
                self.cons_port = free_port() if self.cons_port is not None else None
                continue
            raise RuntimeError(f"baresip did not start:\n{log}")

    def _spawn(self) -> None:
        cmd = [BARESIP, "-n", HOST, "-f", str(self.home), "-t", str(int(self.lifetime_s) + 1)]
        if self.dial:
            cmd += ["-e", f"/dial {self.dial}"]
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        with self._cond:
            self.lines, self.ready, self.exited, self.ended = [], False, False, False
            self.established_at, self.remote_closed = None, False
        self.started_at = time.monotonic()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, errors="replace",
                                      cwd=self.home, env=env)
        self._reader = threading.Thread(target=self._read, args=(self._proc,), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            with self._cond:
                self.lines.append(line)
                if _READY in line:
                    self.ready = True
                elif _ESTABLISHED.search(line) and self.established_at is None:
                    self.established_at = time.monotonic()
                elif _SESSION_CLOSED.search(line):
                    self.remote_closed = True
                elif _TERMINATED.search(line):
                    self.ended = True
                self._cond.notify_all()
        proc.wait()
        with self._cond:
            self.exited = True
            self._cond.notify_all()

    def wait_for(self, predicate: Any, timeout_s: float | None) -> bool:
        """Wait until predicate() (called under the lock) or the process exits."""
        with self._cond:
            return bool(self._cond.wait_for(lambda: predicate() or self.exited,
                                            None if timeout_s is None else max(0.0, timeout_s)))

    def command(self, text: str) -> None:
        """Send a menu command ("/sndcode 5") to the cons UI."""
        if self.cons_port is None:
            raise RuntimeError("this baresip has no cons module")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto((text + "\n").encode(), (HOST, self.cons_port))

    def stop(self) -> None:
        """SIGTERM: BYE for open calls, WAV dumps closed, exit (at once when the calls
        are established). A pending INVITE keeps it waiting for its transaction: a second
        SIGTERM makes baresip exit right away; SIGKILL last."""
        proc = self._proc
        if proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 1.5), (signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            proc.send_signal(sig)
            try:
                proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
        if self._reader is not None:
            self._reader.join(timeout=5)

    def log(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def result(self, *, closed_by_remote: bool) -> SipCallResult:
        """After stop(): the heard audio (the sndfile "-dec" dumps, joined) as
        workdir/heard.wav, the log as workdir/baresip.log."""
        log = self.log()
        (self.workdir / "baresip.log").write_text(log + "\n")
        dumps = sorted(self.rec_dir.glob("dump-*-dec.wav"))
        parts: list[np.ndarray] = []
        rate = self.rate
        for dump in dumps:
            try:
                samples, rate = read_wav(dump)
            except (wave.Error, EOFError, ValueError):
                continue
            parts.append(samples)
        recording = self.workdir / "heard.wav"
        write_wav(recording, np.concatenate(parts) if parts else np.zeros(0, np.int16), rate)
        answered = (None if self.established_at is None
                    else round(self.established_at - self.started_at, 3))
        return SipCallResult(
            recording=recording, sample_rate=rate, log=log,
            established=self.established_at is not None, closed_by_remote=closed_by_remote,
            answered_after_s=answered,
            dtmf_sent=_DTMF_SENT.findall(log), dtmf_received=_DTMF_RECEIVED.findall(log))


# ---------------------------------------------------------------- the caller


def place_call(uri: str, wav: Path, *, workdir: Path, duration_s: float,
               dtmf: Iterable[tuple[float, str]] = (), commands: Iterable[tuple[float, str]] = (),
               local_port: int | None = None,
               codecs: tuple[str, ...] = ("PCMU", "PCMA"), answer_timeout_s: float = 15.0,
               user: str = "caller") -> SipCallResult:
    """Call `uri` from 127.0.0.1 and return what happened (blocks; safe from threads).

    `wav` (16-bit PCM, any rate; stereo is mixed down) is resampled to the first codec's
    rate and played as the microphone from the moment media starts (the answer), then
    silence. What the far end sends is recorded. Each `(t, digit)` of `dtmf` is sent at
    `t` seconds after the answer as RFC 4733 telephone-event; each `(t, command)` of
    `commands` is a baresip menu command sent then ("/hold", "/resume": re-INVITEs). The call is hung up (BYE)
    `duration_s` after the answer, or ends earlier when the remote hangs up. Calls not
    answered within `answer_timeout_s` are cancelled (`established` False).
    `local_port` is the caller's SIP port (UDP and TCP), a free one by default; files go
    to `workdir` (heard.wav, baresip.log, baresip/: config and the sndfile dumps).
    """
    if not uri.startswith(("sip:", "sips:")):
        uri = "sip:" + uri
    for _, digit in dtmf:
        if len(digit) != 1 or digit.upper() not in DTMF_DIGITS:
            raise ValueError(f"DTMF digit {digit!r}: one of {''.join(sorted(DTMF_DIGITS))} expected")
    schedule = sorted([(float(t), f"/sndcode {d.upper()}") for t, d in dtmf]
                      + [(float(t), str(c)) for t, c in commands])
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lifetime = answer_timeout_s + duration_s + 30
    bs = _Baresip(workdir, user=user, wav=Path(wav), source_s=answer_timeout_s + duration_s + 10,
                  sip_port=local_port, codecs=codecs, auto_answer=False, with_cons=bool(schedule),
                  lifetime_s=lifetime, dial=uri)
    closed_by_remote = False
    try:
        bs.start()
        bs.wait_for(lambda: bs.established_at is not None or bs.ended or bs.remote_closed,
                    answer_timeout_s)
        answered_at = bs.established_at
        if answered_at is not None:
            for t, command in schedule:
                if bs.wait_for(lambda: bs.ended, answered_at + t - time.monotonic()):
                    break
                bs.command(command)
            bs.wait_for(lambda: bs.ended, answered_at + duration_s - time.monotonic())
            with bs._cond:
                closed_by_remote = bs.ended and bs.remote_closed
    finally:
        bs.stop()
    return bs.result(closed_by_remote=closed_by_remote)


def place_calls(calls: Sequence[Mapping[str, Any]], max_workers: int | None = None) -> list[SipCallResult]:
    """Run `place_call(**kwargs)` for each mapping at the same time (one thread and one
    baresip process per call); results in the same order. Give each call its own
    `workdir`. An exception in any call is raised once all have finished."""
    if not calls:
        return []
    with ThreadPoolExecutor(max_workers=max_workers or len(calls)) as pool:
        futures = [pool.submit(place_call, **dict(kw)) for kw in calls]
        return [f.result() for f in futures]


# ---------------------------------------------------------------- an answering peer


class SipCallee:
    """Auto-answering baresip on 127.0.0.1: plays `wav` (then silence) to the caller,
    records what it hears, logs received DTMF; with `hangup_after_s` it hangs up (BYE,
    by stopping) that long after answering. Meant for one call: the sndfile dumps are
    named by the second, so overlapping calls on one callee would share files. The
    process quits by itself `max_call_s + 60` s after start (a guard against leaks).

        with SipCallee(wav, workdir=d) as callee:
            place_call(callee.uri, ...)
        callee.result.dtmf_received
    """

    def __init__(self, wav: Path, *, workdir: Path, port: int | None = None, user: str = "callee",
                 codecs: tuple[str, ...] = ("PCMU", "PCMA"), hangup_after_s: float | None = None,
                 max_call_s: float = 120.0) -> None:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self.hangup_after_s = hangup_after_s
        self._bs = _Baresip(workdir, user=user, wav=Path(wav), source_s=max_call_s + 10,
                            sip_port=port, codecs=codecs, auto_answer=True, with_cons=False,
                            lifetime_s=max_call_s + 60)
        self._hangup_thread: threading.Thread | None = None
        self._hung_up = threading.Event()
        self._stopping = threading.Event()
        self.result: SipCallResult | None = None

    @property
    def uri(self) -> str:
        return f"sip:{self._bs.user}@{HOST}:{self._bs.sip_port}"

    def start(self) -> Self:
        self._bs.start()
        if self.hangup_after_s is not None:
            self._hangup_thread = threading.Thread(target=self._hang_up_later, daemon=True)
            self._hangup_thread.start()
        return self

    def _hang_up_later(self) -> None:
        bs = self._bs
        bs.wait_for(lambda: bs.established_at is not None or self._stopping.is_set(), None)
        if bs.established_at is None or self._stopping.is_set():
            return
        assert self.hangup_after_s is not None
        if not bs.wait_for(lambda: bs.ended or self._stopping.is_set(),
                           bs.established_at + self.hangup_after_s - time.monotonic()):
            self._hung_up.set()
            bs.stop()

    def stop(self, grace_s: float = 1.0) -> SipCallResult:
        """Stop baresip (hanging up a call still open, after up to `grace_s` for a BYE
        already on its way) and return what it saw; `closed_by_remote` is True when the
        caller ended the call first."""
        if self.result is not None:
            return self.result
        bs = self._bs
        if bs.established_at is not None:
            bs.wait_for(lambda: bs.ended, grace_s)
        with bs._cond:
            self._stopping.set()
            closed_by_remote = bs.ended and bs.remote_closed and not self._hung_up.is_set()
            bs._cond.notify_all()
        bs.stop()
        if self._hangup_thread is not None:
            self._hangup_thread.join(timeout=5)
        self.result = bs.result(closed_by_remote=closed_by_remote)
        return self.result

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
