"""What pipecat logs goes through here: it writes what callers say and what the bot says
into its messages between square brackets ("Generating TTS [J'ai noté : 732 ...]",
"TranscriptionFrame(... text: [...])") and after "TTS request: <id> - ". Call texts hold
personal values (a SIRET read back, amounts due): they never reach a log, even in debug."""

from __future__ import annotations

import re
from typing import Any

_BRACKETED = re.compile(r"\[[^\]]*\]")
_TTS_REQUEST = re.compile(r"(TTS request: \S+) - .*", re.DOTALL)


def redact(message: str) -> str:
    return _TTS_REQUEST.sub(r"\1 - [redacted]", _BRACKETED.sub("[redacted]", message))


def pipecat_record_filter(record: dict[str, Any]) -> bool:
    """loguru filter: rewrites the record's message without the texts; keeps the record."""
    record["message"] = redact(record["message"])
    return True
