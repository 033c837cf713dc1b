"""Typed settings with defaults; every field can be set from a CALLBOT_* variable."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from bot.retention import RetentionSettings
from flows.fallback import FallbackSettings
from flows.router import RouterSettings
from voice.end_of_turn import EndOfTurnSettings
from voice.stt import STTSettings
from voice.vad import VADSettings

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class VoiceSettings:
    engine: str = "auto"          # auto: a provisioned French Piper voice, else Kokoro
    piper_voice: str = ""         # e.g. fr_FR-siwis-medium; empty: the first French one found
    kokoro_voice: str = "jf_gongitsune"
    speed: float = 1.0
    sentence_pause_s: float = 0.25

    def __post_init__(self) -> None:
        if self.engine not in ("auto", "piper", "kokoro"):
            raise ValueError(f"voice engine must be auto, piper or kokoro, got '{self.engine}'")


@dataclass(frozen=True)
class CallSettings:
    no_input_s: float = 8.0           # caller silence before a re-prompt
    # Speech over the bot holds it at once; this much voiced speech stops it for good,
    # this much silence first lets it go on (a backchannel: "oui", "hmm").
    barge_in_confirm_s: float = 0.6
    backchannel_gap_s: float = 0.3
    idle_timeout_s: float = 300.0     # nobody spoke for this long: the call is ended
    # SIP calls through our gateway: 'bridged' (warm: the agent hears a briefing, then the
    # caller; the recording goes on) or 'blind' (REFER: the caller's phone calls the agent).
    transfer_mode: str = "bridged"

    def __post_init__(self) -> None:
        if self.transfer_mode not in ("bridged", "blind"):
            raise ValueError("call.transfer_mode must be 'bridged' or 'blind'")


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    var_dir: Path = ROOT / "var"
    database_url: str = ""            # default: sqlite+aiosqlite under var_dir
    actions_url: str = "http://127.0.0.1:5055"
    recorded: bool = True
    chat_session_ttl_s: float = 1800.0
    max_chat_sessions: int = 2000
    max_calls: int = 4                # simultaneous voice calls; more are told the lines are busy
    max_body_bytes: int = 16_384
    audio_cache: Path = Path("")      # default: var_dir/audio-cache
    webrtc_loopback: bool = False     # offer 127.0.0.1 ICE candidates (tests, same-host use)
    vad: VADSettings = field(default_factory=VADSettings)
    stt: STTSettings = field(default_factory=STTSettings)
    turn: EndOfTurnSettings = field(default_factory=EndOfTurnSettings)
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    router: RouterSettings = field(default_factory=RouterSettings)
    fallback: FallbackSettings = field(default_factory=FallbackSettings)
    call: CallSettings = field(default_factory=CallSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.var_dir / 'callbot.sqlite3'}"

    @property
    def audio_cache_dir(self) -> Path:
        return self.audio_cache if str(self.audio_cache) not in ("", ".") else self.var_dir / "audio-cache"

    @property
    def recordings_dir(self) -> Path:
        return self.var_dir / "recordings"


def _coerce(kind: type, raw: str):
    if kind is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if kind is Path:
        return Path(raw)
    return kind(raw)


def settings_from_env(cls, prefix: str, env: dict[str, str]):
    values = {}
    for f in fields(cls):
        name = f"{prefix}{f.name.upper()}"
        default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
        if hasattr(default, "__dataclass_fields__"):
            values[f.name] = settings_from_env(type(default), f"{name}_", env)
        elif name in env:
            try:
                values[f.name] = _coerce(type(default), env[name])
            except ValueError as e:
                raise ValueError(f"{name}={env[name]!r}: {e}") from e
    return cls(**values)


def load_settings(env: dict[str, str] | None = None, **overrides) -> Settings:
    """Settings from CALLBOT_* variables (nested: CALLBOT_STT_MODEL, CALLBOT_VAD_ENGINE...)."""
    settings = settings_from_env(Settings, "CALLBOT_", dict(os.environ if env is None else env))
    if overrides:
        from dataclasses import replace

        settings = replace(settings, **overrides)
    return settings
