"""The dialogue in the pipeline: caller transcripts and keys in, reply speech out,
every turn committed to the call record with its latency breakdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndWorkerFrame,
    Frame,
    InputDTMFFrame,
    InputTransportMessageFrame,
    InterruptionFrame,
    OutputTransportMessageUrgentFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
    VADUserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from bot.agents.hold_tones import HoldFrame
from bot.call_log import CallLog
from bot.config import SlowSpeechSettings
from bot.processors.frames import (
    AgentAcceptedFrame,
    AgentLeftFrame,
    BackchannelFrame,
    CallConnectedFrame,
    CallerSilentFrame,
    NoAgentFrame,
    QueueUpdateFrame,
    TransferRequestFrame,
    TransferStatusFrame,
)
from flows.engine import Conversation, ConversationSnapshot, Reply, State, normalize
from voice.slow_speech import SlowSpeechFrame, speech_rate
from voice.turn_transcriber import AnswerExpectedFrame, RecognitionOffFrame, UnheardSpeechFrame

if TYPE_CHECKING:
    from bot.agents.hub import Seat

log = logging.getLogger("callbot.dialogue")


@dataclass
class _Pending:
    """A reply on its way out, waiting for its first audio to measure latency."""

    text: str
    intent: str | None
    reply_at: float
    speech_end: float | None = None
    transcript_at: float | None = None
    streaming: bool = False          # more clauses to come: recorded once all are said
    audio_out: float | None = None   # the reply's first audio


class DialogueProcessor(FrameProcessor):
    def __init__(self, *, conversation: Conversation, call: CallLog, transfer_mode: str | None = None,
                 slow: SlowSpeechSettings | None = None, preference_key: str | None = None,
                 seat: Seat | None = None, not_heard_min_voiced_s: float = 0.6, **kwargs) -> None:
        """`not_heard_min_voiced_s`: a turn that left no words is asked again when it held
        this much voiced audio. `transfer_mode`: 'blind' or 'bridged' when the channel can transfer to a human.
        `seat`: the call's place in the agents' queue (bot/agents/hub.py), None without agents.
        `slow`: when a caller's own pace turns slow-speech mode on. `preference_key`: where
        the caller's preferences are kept (bot/preferences.py), None when they cannot be."""
        super().__init__(**kwargs)
        self._conversation = conversation
        self._call = call
        self._transfer_mode = transfer_mode
        self._slow_settings = slow or SlowSpeechSettings()
        self._preference_key = preference_key
        self._seat = seat
        self._not_heard_min_voiced_s = not_heard_min_voiced_s
        self._had_agent = False
        self._queue_update: QueueUpdateFrame | None = None   # the waiting caller's place, to say
        self._slow = False              # the mode the call's processors are in
        self._rates: list[float] = []   # the caller's pace, syllables per voiced second, turn by turn
        self._bot_speaking = False
        # The dialogue as it was before the last caller turn: a caller who goes on as the
        # bot begins to answer is understood as if that answer had never been given.
        self._before_last_turn: ConversationSnapshot | None = None
        self._pending: _Pending | None = None
        self._ending = False
        self._over_bot = False  # the next transcript was said over the bot without stopping it
        self._stream_task: asyncio.Task | None = None

    @property
    def outcome(self) -> str | None:
        """How the conversation ended, None while it goes on."""
        if self._conversation.state is State.WITH_AGENT or self._had_agent:
            return "transferred"
        if self._conversation.state is State.HANDOFF:
            return "handoff"
        return "completed" if self._ending else None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, CallConnectedFrame):
            await self._say(self._conversation.start(), speech_end=None, transcript_at=None)
            return
        if isinstance(frame, TranscriptionFrame):
            await self._on_transcript(frame)
            return
        if isinstance(frame, InputDTMFFrame):
            await self._on_keys(str(frame.button.value))
            return
        if isinstance(frame, InputTransportMessageFrame) and isinstance(frame.message, dict) \
                and frame.message.get("type") == "dtmf":
            await self._on_keys(str(frame.message.get("keys", ""))[:32])
            return
        if isinstance(frame, CallerSilentFrame):
            if not self._ending:
                await self._call.event("no_input", {"seconds": frame.seconds})
                await self._say(await self._conversation.on_no_input(), speech_end=None, transcript_at=None)
            return
        if isinstance(frame, UnheardSpeechFrame):
            await self._on_unheard(frame)
            return
        if isinstance(frame, BackchannelFrame):
            self._over_bot = True
            return
        if isinstance(frame, TransferStatusFrame):
            await self._on_transfer_status(frame)
            return
        if isinstance(frame, QueueUpdateFrame):
            # Never over the bot's own words: said once they end.
            self._queue_update = frame
            if not self._bot_speaking:
                await self._say_queue_update()
            return
        if isinstance(frame, NoAgentFrame):
            await self.push_frame(HoldFrame(on=False))
            await self._say(self._conversation.on_no_agent(), speech_end=None, transcript_at=None)
            return
        if isinstance(frame, AgentAcceptedFrame):
            await self._on_agent_accepted(frame)
            return
        if isinstance(frame, AgentLeftFrame):
            await self._say(self._conversation.on_agent_left(), speech_end=None, transcript_at=None)
            return
        if isinstance(frame, InterruptionFrame):
            await self._stop_stream()   # the caller took the floor: no more generated clauses
        if isinstance(frame, VADUserStartedSpeakingFrame):
            # a new utterance: a backchannel that left no transcript must not mute it
            self._over_bot = False
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
            await self._commit_bot_turn()
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
            if self._queue_update is not None:
                await self._say_queue_update()
        await self.push_frame(frame, direction)

    async def _on_transcript(self, frame: TranscriptionFrame) -> None:
        transcript_at = time.monotonic()
        text = frame.text.strip()
        result = frame.result if isinstance(frame.result, dict) else {}
        over_bot, self._over_bot = self._over_bot, False
        speech_end = result.get("speech_end")
        if result.get("continues") is not None:
            await self._on_continuation(text, result)
            return
        said, keywords = normalize(text), self._conversation.keywords
        if self._bot_speaking and keywords.match("backchannel", said):
            log.debug("call %s: backchannel while the bot speaks, ignored", self._call.call_id)
            return
        if over_bot:
            # Short speech over the bot ("oui", "hmm", often misheard): not a turn, unless
            # it asks for something ("conseiller", "non", "répétez"): then the caller has the floor.
            if not any(keywords.match(k, said) for k in ("human", "distress", "deny", "repeat", "goodbye")):
                log.debug("call %s: short speech over the bot, ignored", self._call.call_id)
                return
            await self.broadcast_interruption()
        await self._stop_stream()   # a new turn: the answer being generated is not wanted any more
        await self._client_message("caller", text)
        self._follow_pace(text, result)
        self._before_last_turn = self._conversation.snapshot()
        reply = await self._conversation.on_text(text)
        await self._record_caller_turn(text, result, reply)
        await self._say(reply, speech_end=speech_end, transcript_at=transcript_at)

    async def _on_unheard(self, frame: UnheardSpeechFrame) -> None:
        """Speech that left no words: the caller, who may have stopped the bot to say it,
        would otherwise wait in silence. Not over the bot (a backchannel, a noise)."""
        over_bot, self._over_bot = self._over_bot, False
        if self._ending or self._bot_speaking or over_bot or frame.voiced_s < self._not_heard_min_voiced_s:
            return
        reply = self._conversation.on_not_heard()
        if reply.texts:
            await self._call.event("not_heard", {"voiced_s": frame.voiced_s})
            await self._say(reply, speech_end=None, transcript_at=None)

    async def _on_continuation(self, text: str, result: dict) -> None:
        """The caller went on as the bot began to answer their last turn (the bot has been
        stopped): the whole question, both pieces transcribed together, replaces it."""
        transcript_at = time.monotonic()
        await self._stop_stream()
        snapshot, self._before_last_turn = self._before_last_turn, None
        can_merge = snapshot is not None and not self._ending and self._conversation.state not in (
            State.HANDOFF, State.WITH_AGENT, State.ENDED)
        if can_merge:
            self._conversation.restore(snapshot)
        await self._call.event("turns_merged", {"merged": can_merge})
        await self._client_message("caller", text)
        self._before_last_turn = self._conversation.snapshot()
        reply = await self._conversation.on_text(text)
        await self._record_caller_turn(text, result, reply)
        await self._say(reply, speech_end=result.get("speech_end"), transcript_at=transcript_at)

    def _follow_pace(self, text: str, result: dict) -> None:
        """A caller who speaks slowly, turn after turn, is spoken to slowly."""
        rate = speech_rate(text, float(result.get("voiced_s") or 0.0))
        if rate is None or self._conversation.slow:
            return
        self._rates.append(rate)
        recent = self._rates[-self._slow_settings.caller_rate_turns:]
        if len(recent) >= self._slow_settings.caller_rate_turns \
                and statistics.median(recent) < self._slow_settings.caller_rate:
            log.info("call %s: the caller speaks at %.1f syllables a second", self._call.call_id,
                     statistics.median(recent))
            self._conversation.set_slow(True, "caller_pace")

    async def _record_caller_turn(self, text: str, result: dict, reply: Reply) -> None:
        start, end = result.get("speech_start"), result.get("speech_end")
        index = await self._call.turn(
            "caller", text,
            start_ms=self._call.ms_at(start) if start else None,
            end_ms=self._call.ms_at(end) if end else None,
            asr_confidence=result.get("confidence"),
            intent=reply.intent,
            intent_score=reply.score,
        )
        if isinstance(result.get("end_of_turn"), dict):
            # Why the bot decided the caller had finished, and how long it waited: what a
            # supervisor looks at when a caller was cut or waited (figures only, no words).
            await self._call.event("end_of_turn", {"turn": index, **result["end_of_turn"]})

    async def _on_keys(self, keys: str) -> None:
        if self._bot_speaking:
            await self.broadcast_interruption()  # a key press takes the floor, like speech
        await self._stop_stream()
        await self._call.event("dtmf", {"keys": keys})
        await self._client_message("caller", f"[touches {keys}]")
        await self._say(await self._conversation.on_dtmf(keys), speech_end=None, transcript_at=time.monotonic())

    async def _say(self, reply: Reply, *, speech_end: float | None, transcript_at: float | None) -> None:
        await self._call.set_team(reply.team)
        await self.push_frame(AnswerExpectedFrame(short=reply.awaiting is not None), FrameDirection.UPSTREAM)
        if reply.slow != self._slow:
            self._slow = reply.slow
            await self._call.event("slow_speech", {"on": reply.slow, "reason": reply.slow_reason})
            for direction in (FrameDirection.UPSTREAM, FrameDirection.DOWNSTREAM):
                await self.push_frame(SlowSpeechFrame(on=reply.slow, reason=reply.slow_reason or ""), direction)
        if reply.remember_slow is not None and self._preference_key is not None:
            await self._call.store.set_slow_preference(self._preference_key, reply.remember_slow)
            await self._call.event("slow_preference", {"kept": reply.remember_slow})
        await self._call.note_actions(reply.actions, self._conversation.slots.get("office"))
        if reply.handoff:
            await self._call.event("handoff", {"team": reply.handoff.team, "reason": reply.handoff.reason})
        if self._seat is not None:
            if reply.leave_queue:
                await self.push_frame(HoldFrame(on=False))
                await self._seat.leave("callback")
            if reply.callback is not None:
                await self._seat.book(reply.callback)
        if not reply.texts and reply.stream is None:
            return
        text = " ".join(reply.texts)
        await self._commit_bot_turn()  # a reply that never reached the audio out is still recorded
        self._pending = _Pending(text=text, intent=reply.intent, reply_at=time.monotonic(),
                                 speech_end=speech_end, transcript_at=transcript_at,
                                 streaming=reply.stream is not None)
        if text:
            await self._client_message("bot", text)
            await self.push_frame(TTSSpeakFrame(text))
        if reply.stream is not None:
            self._stream_task = self.create_task(self._speak_stream(reply, self._pending), "fallback-stream")
        if reply.queue and reply.handoff and self._seat is not None and self._transfer_mode != "blind":
            await self._seat.join(reply.handoff)
            await self.push_frame(HoldFrame(on=True))
        elif reply.handoff and self._transfer_mode:
            # Without the agent hub, or blind transfers to a contact centre's own queues:
            # the gateway transfers once the words before have been played.
            briefing = self._conversation.agent_briefing(reply.handoff) if self._transfer_mode == "bridged" else ""
            await self.push_frame(TransferRequestFrame(team=reply.handoff.team, mode=self._transfer_mode,
                                                       briefing=briefing))
            await self._call.event("transfer_requested", {"team": reply.handoff.team, "mode": self._transfer_mode,
                                                          "briefing": briefing})
        if reply.ended and not self._ending:
            self._ending = True
            await self.push_frame(EndWorkerFrame(reason="conversation ended"))

    async def _speak_stream(self, reply: Reply, pending: _Pending) -> None:
        """A reply generated as it is said: each clause goes to the TTS as soon as it comes
        (the first leaves before the answer is complete); the turn is recorded whole at the end,
        with the passages it came from."""
        assert reply.stream is not None
        said = [pending.text] if pending.text else []
        try:
            async for clause in reply.stream:
                said.append(clause)
                await self._client_message("bot", clause)
                await self.push_frame(TTSSpeakFrame(clause))
        finally:
            pending.text = " ".join(said)
            pending.streaming = False
            if reply.fallback is not None:
                await self._call.event("fallback", reply.fallback.record())
            if self._pending is pending and pending.audio_out is not None:
                await self._commit_bot_turn()

    async def _stop_stream(self) -> None:
        task, self._stream_task = self._stream_task, None
        if task is not None and not task.done():
            await self.cancel_task(task)
        elif task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _say_queue_update(self) -> None:
        update, self._queue_update = self._queue_update, None
        if update is not None:
            await self._say(self._conversation.on_queue_position(update.position, update.wait_s),
                            speech_end=None, transcript_at=None)

    async def _on_agent_accepted(self, frame: AgentAcceptedFrame) -> None:
        """An agent took the call: the caller is told; a desk phone is called by the gateway
        (the agent hears the briefing first), a browser agent's leg is already up."""
        self._queue_update = None
        await self.push_frame(HoldFrame(on=False))
        await self._say(self._conversation.on_agent_accepted(), speech_end=None, transcript_at=None)
        if frame.device == "phone" and self._transfer_mode is not None:
            handoff = self._conversation.handoff
            team = handoff.team if handoff else (self._conversation.team or "accueil")
            briefing = self._conversation.agent_briefing(handoff) if handoff else ""
            await self.push_frame(TransferRequestFrame(team=team, mode="bridged", briefing=briefing,
                                                       target=frame.sip_uri))
            await self._call.event("transfer_requested", {"team": team, "mode": "bridged", "briefing": briefing,
                                                          "agent": frame.agent})

    async def _on_transfer_status(self, frame: TransferStatusFrame) -> None:
        await self._call.event("transfer_" + frame.status, {"team": frame.team})
        if frame.status == "bridged":
            log.info("call %s: an agent of team %s has the call", self._call.call_id, frame.team)
            self._had_agent = True
            self._conversation.on_agent_joined()
            await self.push_frame(RecognitionOffFrame(), FrameDirection.UPSTREAM)
        else:
            if self._seat is not None:
                await self._seat.agent_unreachable()
            await self._say(self._conversation.on_transfer_failed(), speech_end=None, transcript_at=time.monotonic())

    async def _commit_bot_turn(self) -> None:
        pending = self._pending
        if pending is None:
            return
        if pending.streaming:
            # Its first audio is what the latency measures; the text is complete only later.
            if pending.audio_out is None and self._bot_speaking:
                pending.audio_out = time.monotonic()
            return
        self._pending = None
        audio_out = pending.audio_out or (time.monotonic() if self._bot_speaking else None)

        def ms(a: float | None, b: float | None) -> int | None:
            return None if a is None or b is None else int((b - a) * 1000)

        await self._call.turn(
            "bot", pending.text,
            start_ms=self._call.ms_at(audio_out or pending.reply_at),
            intent=pending.intent,
            stt_ms=ms(pending.speech_end, pending.transcript_at),
            dialogue_ms=ms(pending.transcript_at, pending.reply_at),
            tts_ms=ms(pending.reply_at, audio_out),
            total_ms=ms(pending.speech_end, audio_out),
        )

    async def _client_message(self, speaker: str, text: str) -> None:
        await self.push_frame(OutputTransportMessageUrgentFrame(
            message={"type": "transcript", "speaker": speaker, "text": text}
        ))

    async def flush(self) -> None:
        """Record the reply still waiting for audio (call hung up meanwhile)."""
        await self._stop_stream()
        if self._pending is not None:
            self._pending.streaming = False
        await self._commit_bot_turn()
