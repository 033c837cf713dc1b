"""pipecat TTS service over the speech renderer (Piper or Kokoro, cached clauses)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

from pipecat.frames.frames import ErrorFrame, Frame, TTSAudioRawFrame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from voice.speech_engines import SpeechStyle
from voice.speech_renderer import PIPELINE_RATE, SpeechRenderer

FRAME_BYTES = PIPELINE_RATE // 50 * 2  # 20 ms of 16-bit mono


class RenderedTTSService(TTSService):
    def __init__(self, *, renderer: SpeechRenderer, style: SpeechStyle | None = None, **kwargs) -> None:
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            sample_rate=PIPELINE_RATE,
            settings=TTSSettings(model=renderer.engine.name, voice=renderer.engine.name, language="fr"),
            **kwargs,
        )
        self._renderer = renderer
        self.style = style or SpeechStyle()

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        try:
            await self.start_tts_usage_metrics(text)
            # Closed at once when the reply is interrupted: no clause is rendered after it.
            async with aclosing(self._renderer.stream(text, self.style)) as blocks:
                async for pcm in blocks:
                    await self.stop_ttfb_metrics()
                    for start in range(0, len(pcm), FRAME_BYTES):
                        yield TTSAudioRawFrame(
                            audio=pcm[start : start + FRAME_BYTES],
                            sample_rate=PIPELINE_RATE,
                            num_channels=1,
                            context_id=context_id,
                        )
        except (OSError, ValueError, RuntimeError) as e:
            yield ErrorFrame(error=f"speech synthesis failed: {e}")
