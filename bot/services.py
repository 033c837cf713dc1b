"""What every call shares: models loaded once, the store, the dialogue data."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Settings

if TYPE_CHECKING:
    from bot.agents.hub import AgentHub
from bot.store import Store
from flows.action_client import ActionClient
from flows.binary_text_model import BinaryTextModel
from flows.engine import AgentDesk, Conversation, DialogueSettings, Keywords
from flows.fallback import Backend, Fallback, FallbackSettings, Guard
from flows.fallback.openai_chat import OpenAIChatBackend
from flows.knowledge import Knowledge, load_knowledge
from flows.retrieval import Retriever
from flows.router import IntentRouter, load_router
from flows.turn_completeness import build_completeness
from models.errors import ModelError
from models.kokoro import kokoro_files
from models.piper import find_piper_voice, french_piper_voices
from voice.end_of_turn import SmartTurnModel
from voice.speech_engines import KokoroEngine, PiperEngine, SpeechEngine, SpeechStyle
from voice.speech_renderer import SpeechRenderer
from voice.stt import Transcriber
from voice.text_for_speech import clauses

log = logging.getLogger("callbot.services")


def make_speech_engine(settings: Settings, *, threads: int = 1) -> SpeechEngine:
    """One onnxruntime thread per call's engine; provisioning renders with more."""
    v = settings.voice
    if v.engine in ("auto", "piper"):
        name = v.piper_voice or next(iter(french_piper_voices()), "")
        path = find_piper_voice(name) if name else None
        if path is not None:
            log.info("voice: Piper %s", name)
            return PiperEngine(path, threads=threads)
        if v.engine == "piper":
            raise ModelError(
                f"Piper voice '{name or '(none)'}' is not provisioned: run "
                "'callbot models fetch-voice fr_FR-siwis-medium' or copy its .onnx and .onnx.json "
                "into models/cache/piper/"
            )
    log.warning(
        "voice: no French Piper voice provisioned; callers hear the offline Kokoro voice "
        "(%s, French phonemes). See README 'Production voice'.", v.kokoro_voice
    )
    return KokoroEngine(kokoro_files(), v.kokoro_voice, threads=threads)


def make_fallback_backend(settings: FallbackSettings) -> Backend | None:
    """The generative backend configured, None for the extractive default."""
    if settings.backend == "openai":
        log.info("fallback: OpenAI-compatible server %s, model %s", settings.base_url, settings.model)
        return OpenAIChatBackend(settings.base_url, settings.model, settings.api_key)
    if settings.backend == "llama_cpp":
        from flows.fallback.llama_local import LlamaCppBackend
        from models.llm import resolve_llm_model
        from models.llm_server import disable_weight_repacking

        path = resolve_llm_model(settings.gguf)
        disable_weight_repacking()
        log.info("fallback: local GGUF model %s", path.name)
        return LlamaCppBackend(path)
    return None


def make_fallback(settings: FallbackSettings, knowledge: Knowledge, keywords: Keywords, cache_dir: Path) -> Fallback:
    """The fallback as configured: retrieval over `knowledge` (index cached in `cache_dir`),
    the guard, the backend. Blocking: the index may be built now."""
    return Fallback(settings, knowledge, Retriever(knowledge, cache_dir), Guard(keywords),
                    make_fallback_backend(settings))


def speech_style(settings: Settings) -> SpeechStyle:
    return SpeechStyle(speed=settings.voice.speed, sentence_pause_s=settings.voice.sentence_pause_s)


def slow_speech_style(settings: Settings) -> SpeechStyle:
    return SpeechStyle(speed=settings.voice.speed * settings.slow.speed, sentence_pause_s=settings.slow.sentence_pause_s,
                       figure_pause_s=settings.slow.figure_pause_s)


def make_renderer(settings: Settings, knowledge: Knowledge, *, threads: int = 1) -> SpeechRenderer:
    """The voice with its audio cache, which keeps only the clauses of texts that hold
    nothing about a caller (Knowledge.fixed_texts); a cache an older version filled with
    every clause said is cleared of the rest. Blocking."""
    fixed = knowledge.fixed_texts()
    allowed = frozenset(c for text in fixed for c in clauses(text))
    renderer = SpeechRenderer(make_speech_engine(settings, threads=threads), settings.audio_cache_dir,
                              cacheable=allowed.__contains__)
    renderer.drop_legacy(fixed, [speech_style(settings), slow_speech_style(settings)])
    return renderer


@dataclass
class BotServices:
    settings: Settings
    knowledge: Knowledge
    keywords: Keywords
    router: IntentRouter
    store: Store
    actions: ActionClient
    fallback: Fallback | None = None
    transcriber: Transcriber | None = None
    smart_turn: SmartTurnModel | None = None
    completeness: BinaryTextModel | None = None
    renderer: SpeechRenderer | None = None
    hub: AgentHub | None = None          # the agent hub, set by the server

    @classmethod
    async def create(cls, settings: Settings, *, voice: bool = True) -> BotServices:
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        knowledge = load_knowledge()
        store = Store(settings.db_url)
        await store.create_schema()
        services = cls(
            settings=settings,
            knowledge=knowledge,
            keywords=Keywords(),
            # Trains first when the data changed (seconds): off the event loop.
            router=await asyncio.to_thread(load_router, knowledge, settings.router, settings.var_dir / "router"),
            store=store,
            actions=ActionClient(settings.actions_url, secret=settings.actions_secret),
        )
        # Loads (or builds, when an answer changed) the retrieval index: off the event loop.
        services.fallback = await asyncio.to_thread(make_fallback, settings.fallback, knowledge, services.keywords,
                                                    settings.var_dir / "router")
        if hasattr(services.fallback.backend, "load"):
            await services.fallback.backend.load()
        if voice:
            services.transcriber = Transcriber(settings.stt)
            if settings.turn.engine == "smart":
                services.smart_turn = SmartTurnModel()
                # after the router: both add to the same embedding cache
                services.completeness = await asyncio.to_thread(build_completeness, knowledge,
                                                                settings.var_dir / "router")
            services.renderer = await asyncio.to_thread(make_renderer, settings, knowledge)
        return services

    def conversation(self, session_id: str, agents: AgentDesk | None = None) -> Conversation:
        """`agents`: whether a human can take this caller now (None: always)."""
        return Conversation(
            session_id=session_id,
            knowledge=self.knowledge,
            router=self.router,
            keywords=self.keywords,
            actions=self.actions,
            settings=DialogueSettings(recorded=self.settings.recorded),
            fallback=self.fallback,
            agents=agents,
        )

    async def close(self) -> None:
        await self.actions.close()
        if self.fallback is not None and self.fallback.backend is not None:
            await self.fallback.backend.close()
        await self.store.close()
        if self.transcriber is not None:
            self.transcriber.close()
        if self.smart_turn is not None:
            self.smart_turn.close()
