"""Admission of voice calls: one count of lines in use, shared by WebRTC and media-stream
calls, so that `max_calls` holds under a burst.

A call takes its line with `Admission.take()`, which is synchronous: nothing can run
between the check and the take, so concurrent handshakes cannot all see a free line. The
`Slot` it returns is given back by `release()` (idempotent) on every path: used as a
context manager, or tied to the task that owns the call with `attach()`, whose end gives
it back even when the task is cancelled before it ever ran.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from types import TracebackType
from typing import Self

log = logging.getLogger("callbot.admission")


class Slot:
    """One line, held from the moment a call is admitted until it is released."""

    def __init__(self, admission: Admission, number: int, label: str) -> None:
        self._admission = admission
        self.number = number
        self.label = label
        self.task: asyncio.Task | None = None
        self.released = False

    def attach(self, task: asyncio.Task) -> None:
        """`task` runs the call: cancelled by `Admission.close_all()`, and its end gives
        the line back (a done callback runs even for a task cancelled before it started,
        where a `finally` inside it would not)."""
        self.task = task
        task.add_done_callback(lambda _task: self.release())

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self._admission._give_back(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Slot({self.number}, {self.label!r}, released={self.released})"


class Admission:
    def __init__(self, max_calls: int) -> None:
        self.max_calls = max_calls
        self._slots: dict[int, Slot] = {}
        self._numbers = itertools.count(1)

    @property
    def in_use(self) -> int:
        return len(self._slots)

    def take(self, label: str) -> Slot | None:
        """A line for a new call, or None when every line is in use. Never awaits."""
        if len(self._slots) >= self.max_calls:
            log.warning("%s refused: %d/%d lines in use", label, len(self._slots), self.max_calls)
            return None
        slot = Slot(self, next(self._numbers), label)
        self._slots[slot.number] = slot
        return slot

    def _give_back(self, slot: Slot) -> None:
        self._slots.pop(slot.number, None)

    async def close_all(self) -> None:
        """At shutdown: every call's task is cancelled and awaited; its line comes back."""
        tasks = [slot.task for slot in self._slots.values() if slot.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
