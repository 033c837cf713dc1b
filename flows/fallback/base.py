"""What a generative backend of the fallback is: chat messages in, streamed text out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class BackendError(Exception):
    """The backend failed (refused, erred, dropped its stream): the answer falls back to the
    passage itself; the call goes on."""


class Backend(Protocol):
    name: str

    def stream(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float) -> AsyncIterator[str]:
        """The answer's text as it is generated, piece by piece; BackendError on failure."""

    async def close(self) -> None: ...
