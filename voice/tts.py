"""pipecat TTS service over the speech renderer (Piper or Kokoro, cached clauses)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

from pipecat.frames.frames import ErrorFrame, Frame, TTSAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from voice.slow_speech import SlowSpeechFrame
from voice.speech_engines import SpeechStyle
from voice.speech_renderer import PIPELINE_RATE, SpeechRenderer

FRAME_BYTES = PIPELINE_RATE // 50 * 2  # 20 ms of 16-bit mono


class RenderedTTSService(TTSService):
    """Speaks with `style`, or `slow_style` in slow-speech mode (SlowSpeechFrame). The last
    text said whole is kept as audio: said again word for word ("répétez"), it is replayed
    at once."""

    def __init__(self, *, renderer: SpeechRenderer, style: SpeechStyle | None = None,
                 slow_style: SpeechStyle | None = None, **kwargs) -> None:
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            # A clause rendered while the caller waits (a value, a slow-speech answer not in
            # the cache) may take seconds on a busy CPU; the renderer always ends with audio
            # or an error, so waiting for it never hangs, where pipecat's 3 s default would
            # close the reply's audio context before its first clause and lose it.
            stop_frame_timeout_s=20.0,
            sample_rate=PIPELINE_RATE,
            settings=TTSSettings(model=renderer.engine.name, voice=renderer.engine.name, language="fr"),
            **kwargs,
        )
        self._renderer = renderer
        self.style = self._normal_style = style or SpeechStyle()
        self._slow_style = slow_style or self.style
        self._last: tuple[str, bytes] | None = None   # the last text said whole, and its audio

    def can_generate_metrics(self) -> bool:
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, SlowSpeechFrame):
            self.style = self._slow_style if frame.on else self._normal_style
        await super().process_frame(frame, direction)

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        try:
            await self.start_tts_usage_metrics(text)
            if self._last is not None and self._last[0] == text:
                await self.stop_ttfb_metrics()
                for frame in self._frames(self._last[1], context_id):
                    yield frame
                return
            said: list[bytes] = []
            # Closed at once when the reply is interrupted: no clause is rendered after it.
            async with aclosing(self._renderer.stream(text, self.style)) as blocks:
                async for pcm in blocks:
                    await self.stop_ttfb_metrics()
                    said.append(pcm)
                    for frame in self._frames(pcm, context_id):
                        yield frame
            self._last = (text, b"".join(said))
        except (OSError, ValueError, RuntimeError) as e:
            yield ErrorFrame(error=f"speech synthesis failed: {e}")

    @staticmethod
    def _frames(pcm: bytes, context_id: str) -> list[TTSAudioRawFrame]:
        return [TTSAudioRawFrame(audio=pcm[start:start + FRAME_BYTES], sample_rate=PIPELINE_RATE, num_channels=1,
                                 context_id=context_id) for start in range(0, len(pcm), FRAME_BYTES)]
