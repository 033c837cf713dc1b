"""Frames of our own, travelling between the call's processors."""

from dataclasses import dataclass

from pipecat.frames.frames import DataFrame, SystemFrame


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
