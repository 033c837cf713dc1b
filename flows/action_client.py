"""Calls actions on a Rasa action server over its webhook protocol (rasa-sdk or any)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger("callbot.flows.actions")


class ActionUnavailable(RuntimeError):
    """The action server did not answer usefully; the dialogue apologises and goes on."""


@dataclass(frozen=True)
class ActionResult:
    texts: list[str]
    events: list[dict[str, Any]]


class ActionClient:
    def __init__(self, url: str, *, timeout_s: float = 3.0) -> None:
        self._url = url.rstrip("/") + "/webhook"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def run(self, action: str, *, sender_id: str, slots: dict[str, Any],
                  latest_text: str, intent: str | None) -> ActionResult:
        payload = {
            "next_action": action,
            "sender_id": sender_id,
            "tracker": {
                "sender_id": sender_id,
                "slots": slots,
                "latest_message": {"text": latest_text, "intent": {"name": intent}, "entities": []},
                "events": [],
                "paused": False,
                "followup_action": None,
                "active_loop": {},
                "latest_action_name": "action_listen",
            },
            "domain": {"slots": {}, "responses": {}, "actions": [action]},
            "version": "3.21.0",
        }
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(self._url, json=payload) as response:
                if response.status != 200:
                    raise ActionUnavailable(f"action {action}: HTTP {response.status}")
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise ActionUnavailable(f"action {action}: {e}") from e
        texts = [r["text"] for r in body.get("responses", []) if isinstance(r, dict) and r.get("text")]
        return ActionResult(texts=texts, events=list(body.get("events", [])))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
