"""Typed settings with defaults; every field can be set from a CALLBOT_* variable."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from bot.retention import RetentionSettings
from bot.supervision.settings import SupervisionSettings
from flows.fallback import FallbackSettings
from flows.offices import national_number as french_number
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
    # A turn that left no words but this much voiced audio was speech not understood: the
    # caller is asked to say it again (a cough or a breath is shorter, and is not answered).
    not_heard_min_voiced_s: float = 0.6
    # Speech over the bot holds it at once; this much voiced speech stops it for good,
    # this much silence first lets it go on (a backchannel: "oui", "hmm").
    barge_in_confirm_s: float = 0.6
    backchannel_gap_s: float = 0.3
    idle_timeout_s: float = 300.0     # nobody spoke for this long: the call is ended
    connect_timeout_s: float = 15.0   # a WebRTC offer whose media never connects gives its line back
    # SIP calls through our gateway: 'bridged' (warm: the agent hears a briefing, then the
    # caller; the recording goes on) or 'blind' (REFER: the caller's phone calls the agent).
    transfer_mode: str = "bridged"

    def __post_init__(self) -> None:
        if self.transfer_mode not in ("bridged", "blind"):
            raise ValueError("call.transfer_mode must be 'bridged' or 'blind'")


@dataclass(frozen=True)
class SlowSpeechSettings:
    """Slow-speech mode for callers who struggle (README, "Slow-speech mode": the research
    each default rests on)."""

    speed: float = 0.85               # length scale 1.18: a mild rate change (1.1-1.2 advised)
    sentence_pause_s: float = 0.6     # pauses between clauses help more than a slow voice
    figure_pause_s: float = 0.35      # ... and before key figures
    no_input_s: float = 15.0          # older callers need 2-3 s to formulate, more to find a paper
    # End-of-turn patience: older adults rate a bot best when it answers 0.6-1.5 s after they
    # stop, and pause longer mid-sentence: a pause of 1.2 s is waited through even after
    # words that read complete; 3 s after words that leave the phrase open.
    complete_s: float = 1.4
    likely_s: float = 2.0
    unsure_s: float = 2.5
    max_wait_s: float = 3.0
    continuation_s: float = 3.0
    caller_rate: float = 3.5          # syllables per second of voiced speech below which a caller is slow
    caller_rate_turns: int = 2        # ... measured over this many turns (the median)
    lines: str = ""                   # called numbers dedicated to slow speech, comma-separated

    def end_of_turn(self, base: EndOfTurnSettings) -> EndOfTurnSettings:
        return replace(base, complete_s=max(base.complete_s, self.complete_s), likely_s=max(base.likely_s, self.likely_s),
                       unsure_s=max(base.unsure_s, self.unsure_s), max_wait_s=max(base.max_wait_s, self.max_wait_s),
                       continuation_s=max(base.continuation_s, self.continuation_s))

    def line_is_slow(self, called: str | None) -> bool:
        number = national_number(called or "")
        return bool(number) and any(number == national_number(line) for line in self.lines.split(","))


def national_number(number: str) -> str:
    """A French number without its country code or trunk prefix: "+33 800 000 111",
    "0800 000 111" and "0033800000111" are one line; short numbers ("39 57") stay."""
    national = french_number(number)
    return national[1:] if national else "".join(c for c in number if c.isdigit()).lstrip("0")


@dataclass(frozen=True)
class AgentSettings:
    """The agent hub (README, "Agents"): sign-in, queues, callbacks."""

    session_ttl_s: float = 8 * 3600.0   # a shift; signed out after it
    max_failed_logins: int = 5          # in a row: the account is locked ...
    lockout_s: float = 900.0            # ... this long
    cookie_secure: bool = False         # set behind TLS: the session cookie only travels over HTTPS
    answer_timeout_s: float = 120.0     # nobody accepts a queued caller within this: callback offered
    hold_update_s: float = 30.0         # the queued caller hears their position this often
    # Opening hours of the agents (Europe/Paris): days and times, "; " between rules;
    # holidays as ISO dates, comma-separated. Outside them a callback is offered at once.
    opening_hours: str = "lun-ven 08:30-17:30"
    holidays: str = ""
    timezone: str = "Europe/Paris"
    briefing_max_s: float = 15.0        # the spoken briefing an agent hears before the caller

    def __post_init__(self) -> None:
        if self.max_failed_logins < 1 or self.lockout_s < 0 or self.session_ttl_s <= 0:
            raise ValueError("agents: max_failed_logins >= 1, lockout_s >= 0, session_ttl_s > 0")


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
    # Secrets (from the environment only; never printed). Keys callers' kept preferences
    # (bot/preferences.py); empty: none kept.
    preference_secret: str = field(default="", repr=False)
    # Bearer token for call records and recordings (/api/calls/...); empty: nobody reads them.
    admin_token: str = field(default="", repr=False)
    # Bearer token our SIP gateway presents on /ws/media; only it may ask for transfers.
    gateway_token: str = field(default="", repr=False)
    # A CPaaS (Twilio) stream is admitted when its X-Twilio-Signature checks with this key.
    twilio_auth_token: str = field(default="", repr=False)
    # The media-stream URL exactly as Twilio was given it (wss://callbot.example.fr/ws/media):
    # Twilio signs that URL, which a server behind a TLS proxy does not see. Empty: the
    # request's own URL in its ws:// or wss:// form.
    media_public_url: str = ""
    # Shared secret with the action server (Authorization: Bearer on /webhook).
    actions_secret: str = field(default="", repr=False)
    vad: VADSettings = field(default_factory=VADSettings)
    stt: STTSettings = field(default_factory=STTSettings)
    turn: EndOfTurnSettings = field(default_factory=EndOfTurnSettings)
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    router: RouterSettings = field(default_factory=RouterSettings)
    fallback: FallbackSettings = field(default_factory=FallbackSettings)
    call: CallSettings = field(default_factory=CallSettings)
    slow: SlowSpeechSettings = field(default_factory=SlowSpeechSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    agents: AgentSettings = field(default_factory=AgentSettings)
    supervision: SupervisionSettings = field(default_factory=SupervisionSettings)

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
