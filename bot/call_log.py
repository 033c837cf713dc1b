"""One call's record: turns and events committed to the store as they end."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bot.store import Store

log = logging.getLogger("callbot.calls")


class CallLog:
    def __init__(self, store: Store, call_id: str, *, office_rule: str = "account_then_number") -> None:
        """`office_rule`: whether an identified account's regional office is the call's
        (SupervisionSettings.office_rule)."""
        self.store = store
        self.call_id = call_id
        self._office_rule = office_rule
        self._t0 = time.monotonic()
        self._index = 0
        self.team: str | None = None
        self.closed = False

    def now_ms(self) -> int:
        return int((time.monotonic() - self._t0) * 1000)

    def ms_at(self, monotonic_s: float) -> int:
        return int((monotonic_s - self._t0) * 1000)

    async def turn(self, speaker: str, text: str, **values: Any) -> int:
        """Records a turn; returns its index in the call."""
        index, self._index = self._index, self._index + 1
        try:
            await self.store.add_turn(self.call_id, index=index, speaker=speaker, text=text, **values)
        except SQLAlchemyError:
            log.exception("call %s turn %d: could not be stored", self.call_id, index)
        return index

    async def event(self, kind: str, data: dict[str, Any] | None = None) -> None:
        try:
            await self.store.add_event(self.call_id, self.now_ms(), kind, data)
        except SQLAlchemyError:
            log.exception("call %s: event %s could not be stored", self.call_id, kind)

    async def note_actions(self, actions: list[dict[str, Any]], office: str | None) -> None:
        """The actions run for a reply, as events; once one identified the caller, the call
        belongs to their account's regional office (`office`, from the account's postcode)."""
        for action in actions:
            await self.event("action", action)
        if office and self._office_rule != "number" and any(a.get("identified") for a in actions):
            try:
                await self.store.update_region(self.call_id, office)
            except SQLAlchemyError:
                log.exception("call %s: office could not be stored", self.call_id)

    async def set_team(self, team: str | None) -> None:
        if team and team != self.team:
            self.team = team
            try:
                await self.store.update_team(self.call_id, team)
            except SQLAlchemyError:
                log.exception("call %s: team could not be stored", self.call_id)

    async def set_recording(self, path: str) -> None:
        """As soon as the file exists: a server that dies mid-call leaves the record
        pointing at what was recorded."""
        try:
            await self.store.set_recording(self.call_id, path)
        except SQLAlchemyError:
            log.exception("call %s: recording path could not be stored", self.call_id)

    async def close(self, outcome: str, recording: str | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self.store.close_call(self.call_id, outcome=outcome, team=self.team, recording=recording)
        except SQLAlchemyError:
            log.exception("call %s: could not be closed in the store", self.call_id)
        log.info("call %s closed: %s (team %s)", self.call_id, outcome, self.team)
