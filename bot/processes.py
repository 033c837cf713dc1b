"""Stopping the child processes the server and the tests start."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess

PR_SET_PDEATHSIG = 1


def terminate_with_parent() -> None:
    """preexec_fn of a child process: the kernel sends it SIGTERM when its parent dies,
    even killed with SIGKILL, so that no Kamailio or action server outlives the server."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stops a process, and its whole group when it leads one (started with
    start_new_session=True): the rasa-sdk action server's workers outlive their parent."""
    try:
        group = os.getpgid(process.pid) if os.getpgid(process.pid) == process.pid else None
    except ProcessLookupError:
        group = None

    def send(sig: int) -> None:
        try:
            if group is not None:
                os.killpg(group, sig)
            else:
                process.send_signal(sig)
        except ProcessLookupError:
            pass

    send(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait()
    if group is not None:
        send(signal.SIGKILL)  # workers still there after their parent left
