"""The per-call voice pipeline, assembled in one place.

transport in -> (to a browser agent) -> VAD (pauses) -> barge-in gate -> caller turns (end of turn, Whisper fr)
-> (with an agent: both sides transcribed for the record) -> no-input watch
-> dialogue (flows) -> transfer requests -> TTS (Piper or Kokoro, cached clauses) -> (hold tones)
-> output pacer (hold/release) -> (a browser agent's voice) -> transport out -> agent leg -> recorder
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.transports.base_transport import BaseTransport
from pipecat.workers.runner import WorkerRunner

from bot.agents.agent_leg import CallerToAgent
from bot.agents.hold_tones import HoldTones
from bot.agents.hub import Seat
from bot.agents.human_transcript import HumanPartTranscriber
from bot.call_log import CallLog
from bot.processors.barge_in import BargeInGate
from bot.processors.dialogue import DialogueProcessor
from bot.processors.silence_watch import SilenceWatch
from bot.processors.transfer import AgentLegRecorder, AgentVoicePlayer, TransferRequester
from bot.recording import CallRecorder
from bot.services import BotServices, slow_speech_style, speech_style
from voice.output_pacer import OutputPacer
from voice.speech_renderer import PIPELINE_RATE
from voice.tts import RenderedTTSService
from voice.turn_transcriber import TurnTranscriber
from voice.vad import make_vad_analyzer

log = logging.getLogger("callbot.pipeline")


@dataclass
class VoiceCall:
    call: CallLog
    worker: PipelineWorker
    dialogue: DialogueProcessor
    recorder: CallRecorder | None
    seat: Seat | None = None

    async def run(self) -> None:
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        failed = False
        try:
            await runner.run()
        except Exception:  # one call's failure must not touch the others: log it, close the record
            log.exception("call %s: pipeline failed", self.call.call_id)
            failed = True
        finally:
            if self.seat is not None:
                await self.seat.call_ended()
            await self.dialogue.flush()
            outcome = "error" if failed else self.dialogue.outcome or "caller_hung_up"
            await self.call.close(outcome, recording=self.recorder.recording if self.recorder else None)


async def build_voice_call(services: BotServices, transport: BaseTransport, call: CallLog, *,
                           channel: str = "webrtc", caller: str | None = None,
                           can_transfer: bool = False, slow_line: bool = False,
                           preference_key: str | None = None) -> VoiceCall:
    """`channel`, `caller`: for the agents' queue (a desk phone takes SIP calls only).
    `can_transfer`: the channel is our SIP gateway, which transfers to agents.
    `slow_line`: the caller dialled a number dedicated to slow speech. `preference_key`: the
    caller's number is known (bot/preferences.py): their kept preference applies, and one
    may be kept."""
    settings = services.settings
    if services.transcriber is None or services.renderer is None:
        raise RuntimeError("voice calls need the STT and TTS models loaded (BotServices voice=True)")
    conversation = services.conversation(call.call_id, agents=services.hub)
    worker: PipelineWorker | None = None

    async def notify(frame) -> None:   # the agent hub talks to the call by frames
        if worker is not None:
            await worker.queue_frames([frame])

    seat = services.hub.seat(call, conversation, channel=channel, caller=caller, notify=notify) \
        if services.hub is not None else None
    if preference_key is not None:
        conversation.slow_preference = await services.store.slow_preference(preference_key)
        conversation.may_remember_slow = not conversation.slow_preference
    if conversation.slow_preference:
        conversation.set_slow(True, "preference")
    elif slow_line:
        conversation.set_slow(True, "line")
    dialogue = DialogueProcessor(conversation=conversation, call=call, slow=settings.slow,
                                 preference_key=preference_key, seat=seat,
                                 not_heard_min_voiced_s=settings.call.not_heard_min_voiced_s,
                                 transfer_mode=settings.call.transfer_mode if can_transfer else None)
    # Stereo, caller left and bot right, on the call record's clock; written as the call goes.
    recorder = CallRecorder(path=settings.recordings_dir / f"{call.call_id}.wav", call=call) \
        if settings.recorded else None
    processors = [
        transport.input(),
        *([CallerToAgent(seat)] if seat is not None else []),
        VADProcessor(vad_analyzer=make_vad_analyzer(settings.vad)),
        BargeInGate(call=call, confirm_s=settings.call.barge_in_confirm_s,
                    release_after_s=settings.call.backchannel_gap_s),
        TurnTranscriber(transcriber=services.transcriber, smart_turn=services.smart_turn,
                        completeness=services.completeness.probability if services.completeness else None,
                        settings=settings.turn, slow_settings=settings.slow.end_of_turn(settings.turn),
                        call_id=call.call_id),
        HumanPartTranscriber(transcriber=services.transcriber, call=call),
        SilenceWatch(timeout_s=settings.call.no_input_s, slow_timeout_s=settings.slow.no_input_s),
        dialogue,
        TransferRequester(renderer=services.renderer, style=speech_style(settings)),
        RenderedTTSService(renderer=services.renderer, style=speech_style(settings),
                           slow_style=slow_speech_style(settings)),
        HoldTones(),
        OutputPacer(),
        AgentVoicePlayer(),
        transport.output(),
    ]
    if recorder is not None:
        processors += [AgentLegRecorder(), recorder]
    worker = PipelineWorker(
        Pipeline(processors),
        params=PipelineParams(audio_in_sample_rate=PIPELINE_RATE, audio_out_sample_rate=PIPELINE_RATE),
        idle_timeout_secs=settings.call.idle_timeout_s,
        enable_rtvi=False,
    )
    return VoiceCall(call=call, worker=worker, dialogue=dialogue, recorder=recorder, seat=seat)
