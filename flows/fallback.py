"""The hook for questions outside the knowledge base (the router rejected them).

A fallback may answer only with vetted text; the default knows nothing and says so,
and the conversation offers a human. An LLM backend plugs in here, behind configuration.
"""

from __future__ import annotations

from typing import Protocol


class Fallback(Protocol):
    async def answer(self, text: str, *, session_id: str) -> str | None:
        """A vetted answer to `text`, or None when there is none."""


class NoAnswer:
    """The default: no answer outside the knowledge base."""

    async def answer(self, text: str, *, session_id: str) -> str | None:
        return None
