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


def action_record(name: str, result: ActionResult | None) -> dict[str, Any]:
    """What the call's record keeps of an action run (no slot value: the record is read by
    supervisors): its name, whether the action server answered, and whether it identified
    the caller. `result` None: the server did not answer."""
    record: dict[str, Any] = {"name": name, "ok": result is not None}
    if result is not None:
        slots = {e.get("name"): e.get("value") for e in result.events if isinstance(e, dict) and e.get("event") == "slot"}
        if "identified" in slots:
            record["identified"] = slots["identified"] is True
    return record


class ActionClient:
    """`secret` (CALLBOT_ACTIONS_SECRET) is sent as `Authorization: Bearer`: our action
    server (flows/actions/server.py) refuses requests without it."""

    def __init__(self, url: str, *, secret: str = "", timeout_s: float = 3.0) -> None:
        self._url = url.rstrip("/") + "/webhook"
        self._headers = {"Authorization": f"Bearer {secret}"} if secret else {}
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
            async with self._session.post(self._url, json=payload, headers=self._headers) as response:
                if response.status == 401:
                    # Not a passing failure: every action will be refused until the two
                    # sides are given the same secret.
                    problem = ("configuration error: the action server refused our credentials (HTTP 401); "
                               "CALLBOT_ACTIONS_SECRET must be set, and the same, for the bot and the action server"
                               if self._headers else
                               "configuration error: the action server requires a secret (HTTP 401) and "
                               "CALLBOT_ACTIONS_SECRET is not set for the bot")
                    log.error("action %s: %s", action, problem)
                    raise ActionUnavailable(f"action {action}: {problem}")
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
