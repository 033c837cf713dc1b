"""A caller identified over the phone hears their SIRET read back and their amounts: none of
it is left on disk in the audio cache (only texts without a caller's value are kept there),
and the call record is read only with the admin token."""

from __future__ import annotations

import asyncio
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bot.caller_sim import CallerVoice, bot_server, media_stream_dialogue
from bot.config import load_settings
from bot.services import make_speech_engine, slow_speech_style, speech_style
from flows.knowledge import load_knowledge
from tests.test_actions import accounts, actions, si_db, si_url  # noqa: F401 (module fixtures)
from voice.speech_renderer import SpeechRenderer
from voice.text_for_speech import clauses

pytestmark = pytest.mark.slow


def cache_files(cache: Path) -> set[Path]:
    return set(cache.rglob("*.pcm"))


def fixed_names(cache: Path) -> set[str]:
    """The file names the texts without a value may have in the cache, in both styles."""
    settings = load_settings()
    renderer = SpeechRenderer(make_speech_engine(settings), cache)
    texts = load_knowledge().fixed_texts()
    return {renderer.cache_path(c, style).name for style in (speech_style(settings), slow_speech_style(settings))
            for t in texts for c in clauses(t)}


def test_an_identified_call_leaves_no_personal_value_in_the_audio_cache(tmp_path, actions, accounts):  # noqa: F811
    account = accounts["debt_due"][0]
    cache = Path(os.environ.get("CALLBOT_AUDIO_CACHE") or load_settings().audio_cache_dir)
    voice = CallerVoice()
    question = voice.say("Bonjour, je voudrais savoir combien je dois à l'Urssaf.")
    with bot_server(tmp_path, CALLBOT_ACTIONS_URL=actions, CALLBOT_AUDIO_CACHE=str(cache)) as server:
        before = cache_files(cache)
        asyncio.run(media_stream_dialogue(server.url.replace("http", "ws") + "/ws/media",
                                          [question, account.siret + "#", "1", account.postcode + "#", "1"],
                                          "MZidentified"))
        record = server.recent_calls()[-1]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server.url}/api/calls/{record['id']}", timeout=5)
        assert refused.value.code == 401
    said = " ".join(t["text"] for t in record["turns"] if t["speaker"] == "bot")
    digits = re.sub(r"\D", "", said)
    assert account.siret in digits, said                            # read back to the caller
    assert re.search(r"\d euros", said) and "identifié" in said, said   # their own figures
    new = cache_files(cache) - before
    allowed = fixed_names(cache) if new else set()
    personal = sorted(p.name for p in new if p.name not in allowed)
    assert not personal, f"{len(personal)} clauses with a value were written to the cache"
