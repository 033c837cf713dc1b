"""The agent hub on one node: the seats of the callers waiting here for a human, and what
happens when an agent accepts one (in the browser, or on their desk phone through the SIP
gateway). The queue itself is in the store (bot/agents/queue.py), shared by every node;
an accept must reach the node that holds the call (route /api/agent/calls/{id} by call id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pipecat.frames.frames import Frame

from bot.agents.agent_leg import BrowserAgentLeg
from bot.agents.card import build_card
from bot.agents.hours import OpeningHours
from bot.agents.queue import AgentQueue
from bot.call_log import CallLog
from bot.config import AgentSettings
from bot.processors.frames import AgentAcceptedFrame, AgentLeftFrame, NoAgentFrame, QueueUpdateFrame
from flows.engine import CallbackRequest, Conversation, Handoff
from flows.knowledge import Knowledge
from flows.retrieval import Retriever
from voice.speech_engines import SpeechStyle
from voice.speech_renderer import SpeechRenderer

log = logging.getLogger("callbot.agents")

Notify = Callable[[Frame], Awaitable[None]]


class AcceptError(Exception):
    """The accept cannot be carried out: `status` is the HTTP answer (409 taken, 410 gone)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Accepted:
    agent: str
    device: str
    leg: BrowserAgentLeg | None = None


class AgentHub:
    def __init__(self, settings: AgentSettings, queue: AgentQueue, knowledge: Knowledge, *,
                 retriever: Retriever | None = None, renderer: SpeechRenderer | None = None,
                 style: SpeechStyle | None = None) -> None:
        self.settings = settings
        self.style = style or SpeechStyle()
        self.queue = queue
        self.knowledge = knowledge
        self.retriever = retriever
        self.renderer = renderer
        self.hours = OpeningHours.parse(settings.opening_hours, settings.holidays, settings.timezone)
        self.seats: dict[str, Seat] = {}

    def unavailable_message(self) -> str | None:
        """The AgentDesk of voice calls: agents take calls during their opening hours."""
        if self.hours.is_open(datetime.now(UTC)):
            return None
        return self.knowledge.prompts["callback"]["closed"].format(hours=self.hours.describe())

    def seat(self, call: CallLog, conversation: Conversation, *, channel: str, caller: str | None,
             notify: Notify) -> Seat:
        return Seat(self, call, conversation, channel=channel, caller=caller, notify=notify)

    async def close_all(self) -> None:
        for seat in list(self.seats.values()):
            await seat.call_ended()


class TextDesk:
    """The AgentDesk of the text channel: no agent answers in writing; a callback is offered."""

    def __init__(self, knowledge: Knowledge) -> None:
        self._message = knowledge.prompts["callback"]["written"]

    def unavailable_message(self) -> str | None:
        return self._message


class Seat:
    """One caller's place in the agents' queue, from the handoff to the end of the call.
    It talks to the call by frames (`notify` queues them into the call's pipeline)."""

    def __init__(self, hub: AgentHub, call: CallLog, conversation: Conversation, *, channel: str,
                 caller: str | None, notify: Notify) -> None:
        self.hub = hub
        self.call = call
        self.conversation = conversation
        self.channel = channel
        self.caller = caller
        self.notify = notify
        self.handoff: Handoff | None = None
        self.accepted: Accepted | None = None
        self._waiter: asyncio.Task | None = None

    @property
    def call_id(self) -> str:
        return self.call.call_id

    async def card(self) -> dict:
        assert self.handoff is not None
        record = await self.call.store.get_call(self.call_id)
        turns = record["turns"] if record else []
        return await asyncio.to_thread(build_card, self.conversation, self.hub.knowledge, team=self.handoff.team,
                                       reason=self.handoff.reason, transcript=turns,
                                       retriever=self.hub.retriever, caller=self.caller)

    async def join(self, handoff: Handoff) -> None:
        """The caller waits for an agent of the handoff's team (again, with a new place, if
        they asked for another team)."""
        self.handoff = handoff
        await self.hub.queue.enqueue(self.call_id, channel=self.channel, team=handoff.team, reason=handoff.reason,
                                     card=await self.card())
        self.hub.seats[self.call_id] = self
        await self.call.event("queued", {"team": handoff.team, "reason": handoff.reason})
        log.info("call %s: waiting for an agent of team %s", self.call_id, handoff.team)
        self._stop_waiting()
        self._waiter = asyncio.create_task(self._wait(), name=f"queue-{self.call_id}")

    async def _wait(self) -> None:
        """Tells the caller their place now and then, refreshes the agent's card, and gives
        up after `answer_timeout_s`: the caller is offered a callback."""
        settings = self.hub.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.answer_timeout_s
        first = True
        while True:
            position = await self.hub.queue.position(self.call_id)
            if position is None:
                return
            if not first:
                await self.hub.queue.update_card(self.call_id, await self.card())
            wait_s = await self.hub.queue.expected_wait_s(self.handoff.team if self.handoff else "accueil", position)
            await self.notify(QueueUpdateFrame(position=position, wait_s=wait_s))
            first = False
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.sleep(min(settings.hold_update_s, remaining))
            if loop.time() >= deadline:
                break
        if await self.hub.queue.leave(self.call_id, "timed_out"):
            log.info("call %s: no agent within %g s", self.call_id, settings.answer_timeout_s)
            await self.call.event("queue_timeout", {"after_s": settings.answer_timeout_s})
            self.hub.seats.pop(self.call_id, None)
            await self.notify(NoAgentFrame())

    def _stop_waiting(self) -> None:
        if self._waiter is not None and not self._waiter.done() and self._waiter is not asyncio.current_task():
            self._waiter.cancel()
        self._waiter = None

    async def leave(self, state: str) -> None:
        """The caller stops waiting ('callback': they would rather be called back)."""
        self._stop_waiting()
        if await self.hub.queue.leave(self.call_id, state):
            await self.call.event("queue_left", {"state": state})
        self.hub.seats.pop(self.call_id, None)

    async def book(self, callback: CallbackRequest) -> None:
        callback_id = await self.hub.queue.add_callback(self.call_id, team=callback.team, phone=callback.phone,
                                                        time_slot=callback.time_slot, topic=callback.topic)
        await self.call.event("callback_booked", {"id": callback_id, "team": callback.team,
                                                  "time_slot": callback.time_slot})

    async def accept(self, agent: str, device: str, *, sip_uri: str | None = None,
                     offer: dict | None = None) -> dict:
        """Called once the store gave this caller to `agent`. Browser: the agent's WebRTC
        leg (returns the SDP answer); phone: the gateway calls the agent's desk phone."""
        self._stop_waiting()
        if device == "phone":
            if self.channel != "sip" or not sip_uri:
                raise AcceptError(409, "this call cannot go to a desk phone (not a SIP call, or no phone set)")
            self.accepted = Accepted(agent, device)
            await self.call.event("agent_accepted", {"agent": agent, "device": device})
            await self.notify(AgentAcceptedFrame(agent=agent, device=device, sip_uri=sip_uri))
            return {"device": "phone", "call_id": self.call_id}
        if offer is None or self.hub.renderer is None:
            raise AcceptError(400, "a browser accept needs an SDP offer")
        briefing = self.conversation.agent_briefing(self.handoff) if self.handoff else ""
        leg = BrowserAgentLeg(self, agent, renderer=self.hub.renderer, style=self.hub.style, briefing=briefing,
                              briefing_max_s=self.hub.settings.briefing_max_s)
        answer = await leg.start(offer)
        self.accepted = Accepted(agent, device, leg)
        await self.call.event("agent_accepted", {"agent": agent, "device": device, "briefing": briefing})
        await self.notify(AgentAcceptedFrame(agent=agent, device=device))
        return {**answer, "call_id": self.call_id}

    async def agent_unreachable(self) -> None:
        """The agent's phone did not answer (or their leg could not be placed): the call
        leaves them; the caller is offered a callback."""
        if self.accepted is None:
            return
        agent, self.accepted = self.accepted.agent, None
        await self.hub.queue.leave(self.call_id, "closed")
        await self.hub.queue.set_busy(agent, None)
        self.hub.seats.pop(self.call_id, None)

    async def agent_hung_up(self) -> None:
        """The agent ended the conversation (console button, or their leg dropped)."""
        if self.accepted is None:
            return
        await self.call.event("agent_left", {"agent": self.accepted.agent})
        await self.notify(AgentLeftFrame())

    async def call_ended(self) -> None:
        """The caller's call is over, whatever ended it: out of the queue, agent leg closed."""
        self._stop_waiting()
        if self.accepted is None:
            if await self.hub.queue.leave(self.call_id, "abandoned"):
                await self.call.event("queue_left", {"state": "abandoned"})
        else:
            await self.hub.queue.leave(self.call_id, "closed")
            await self.hub.queue.set_busy(self.accepted.agent, None)
            if self.accepted.leg is not None:
                with contextlib.suppress(Exception):
                    await self.accepted.leg.close()
        self.hub.seats.pop(self.call_id, None)
