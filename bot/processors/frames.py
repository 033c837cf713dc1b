"""Frames of our own, travelling between the call's processors."""

import time
from dataclasses import dataclass, field

from pipecat.frames.frames import DataFrame, OutputAudioRawFrame, SystemFrame


@dataclass
class CallerSilentFrame(SystemFrame):
    """The caller has said nothing for `seconds` since the bot stopped speaking."""

    seconds: float = 0.0


@dataclass
class CallConnectedFrame(DataFrame):
    """The caller's media is up: time to greet."""


@dataclass
class BackchannelFrame(SystemFrame):
    """The caller's last speech over the bot was short: its transcript is not a turn
    if it is only "oui", "hmm" and the like."""


@dataclass
class TransferRequestFrame(DataFrame):
    """The dialogue hands the call to a human: after the words before it, the gateway
    transfers. `briefing` is what the agent hears alone first (bridged transfer)."""

    team: str = ""
    mode: str = "bridged"
    briefing: str = ""
    target: str = ""     # the phone of the agent who accepted the call (agent hub), else the team's


@dataclass
class TransferStatusFrame(SystemFrame):
    """From the gateway: the bridged transfer's agent has joined ('bridged') or could not
    be reached ('failed')."""

    team: str = ""
    status: str = ""


@dataclass
class AgentAudioFrame(SystemFrame):
    """What the agent says during a bridged transfer (the caller already hears it through
    the gateway): for the call's recording only, never played."""

    audio: bytes = b""
    sample_rate: int = 16000


@dataclass
class QueueUpdateFrame(SystemFrame):
    """From the agent hub: the waiting caller's place and the expected wait."""

    position: int = 1
    wait_s: float = 0.0


@dataclass
class NoAgentFrame(SystemFrame):
    """From the agent hub: nobody took the waiting caller in time."""


@dataclass
class AgentAcceptedFrame(SystemFrame):
    """From the agent hub: an agent took the call, in the browser or on their phone
    (`sip_uri`: the gateway calls it)."""

    agent: str = ""
    device: str = "browser"
    sip_uri: str = ""


@dataclass
class AgentLeftFrame(SystemFrame):
    """From the agent hub: the agent ended the conversation: the call ends."""


@dataclass
class AgentVoiceFrame(SystemFrame):
    """What a browser agent says: played to the caller (and so recorded on the bot's side)."""

    audio: bytes = b""
    sample_rate: int = 16000


@dataclass
class LiveAudioFrame(OutputAudioRawFrame):
    """A live speaker's voice on its way out (a browser agent's): late, it is dropped rather
    than delayed, so the conversation stays live. `received` is when it reached the
    transport out (the transport cuts it into chunks of this class on arrival)."""

    received: float = field(default_factory=time.monotonic)
