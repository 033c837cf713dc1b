"""A caller identified over the phone hears their SIRET read back and their amounts: none of
it is left on disk in the audio cache (only texts without a caller's value are kept there),
and the call record is read only with the admin token."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
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


def link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:     # another file system
        shutil.copy2(source, target)


def cache_files(cache: Path) -> set[Path]:
    return set(cache.rglob("*.pcm"))


def server_styles(settings) -> tuple:
    return speech_style(settings), slow_speech_style(settings)   # normal and slow speech


def cache_names(cache: Path) -> tuple[SpeechRenderer, set[str], set[str]]:
    """The renderer's naming, the clauses of the texts without a value, and the file names
    these may have in the cache in both styles."""
    settings = load_settings()
    renderer = SpeechRenderer(make_speech_engine(settings), cache)
    fixed = {c for t in load_knowledge().fixed_texts() for c in clauses(t)}
    names = {renderer.cache_path(c, style).name for style in server_styles(settings) for c in fixed}
    return renderer, fixed, names


def test_an_identified_call_leaves_no_personal_value_in_the_audio_cache(tmp_path, actions, accounts):  # noqa: F811
    account = accounts["debt_due"][0]
    shared = Path(os.environ.get("CALLBOT_AUDIO_CACHE") or load_settings().audio_cache_dir)
    # The server gets its own copy of the shared cache (hard links: files there are replaced,
    # never written in place), so that what another test renders meanwhile is not counted.
    cache = tmp_path / "audio-cache"
    shutil.copytree(shared, cache, copy_function=link_or_copy)
    voice = CallerVoice()
    question = voice.say("Je voudrais savoir combien je dois à l'Urssaf.")
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
    assert "J'ai noté :" in said and "Code postal :" in said, said       # read back to the caller
    assert re.search(r"\d euros", said) and "identifié" in said, said   # their own figures
    renderer, fixed, names = cache_names(cache)
    personal = [c for t in record["turns"] if t["speaker"] == "bot" for c in clauses(t["text"]) if c not in fixed]
    assert any("zéro" in c for c in personal) and any("euros" in c for c in personal), personal  # SIRET, amounts
    styles = server_styles(load_settings())
    kept = [c for c in personal if any(renderer.cache_path(c, style).is_file() for style in styles)]
    assert not kept, f"clauses with a caller's value in the audio cache: {kept}"
    written = sorted(p.name for p in cache_files(cache) - before if p.name not in names)
    assert not written, f"{len(written)} clauses with a value were written to the cache during the call"
