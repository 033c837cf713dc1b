"""A fallback answer over the phone: generated clause by clause, its first audio leaves
while the rest is still being generated, and the call record keeps the whole answer and
the passages it came from."""

from __future__ import annotations

import asyncio

import pytest

from bot.caller_sim import CallerVoice, bot_server, media_stream_call
from tests.scripted_llm import Script, ScriptedLLM

pytestmark = pytest.mark.slow

SENTENCES = ["Oui, un notaire, un avocat ou un expert-comptable peut vous accompagner pour la vente.",
             "Il prépare l'acte et les formalités de la cession.",
             "Vos dernières déclarations restent à faire sur votre espace en ligne."]


@pytest.fixture(scope="module")
def llm():
    server = ScriptedLLM().start()
    yield server
    server.stop()


def test_first_audio_of_a_generated_answer_leaves_before_the_answer_is_complete(tmp_path, llm):
    # Each sentence takes 4 s to come (a small local model on a CPU): the whole answer 8 s
    # after the first one. The first sentence, never said before, is rendered while the
    # caller waits (about as long as it is spoken here): its first words, up to its comma,
    # must be heard while the model is still writing.
    llm.script = Script(pieces=[s + " " for s in SENTENCES], piece_delay_s=4.0)
    question = CallerVoice("jm_kumo").say(
        "Est-ce vrai qu'un notaire, un avocat ou un expert-comptable peut accompagner une vente ?")
    # Whatever passage retrieval finds for the words Whisper heard goes to the model, and a
    # router that rejects more leaves the question to the fallback whatever Whisper made of
    # it: this test is about how the answer is said, not which passage it rests on.
    with bot_server(tmp_path, CALLBOT_ROUTER_MAX_FALSE_REJECTION="0.45",
                    CALLBOT_FALLBACK_BACKEND="openai", CALLBOT_FALLBACK_BASE_URL=llm.url,
                    CALLBOT_FALLBACK_MODEL="scripted", CALLBOT_FALLBACK_MIN_SCORE="-100",
                    CALLBOT_FALLBACK_MIN_SEMANTIC="0", CALLBOT_FALLBACK_MIN_SEMANTIC_OUT_OF_SCOPE="0") as server:
        ws = server.url.replace("http://", "ws://") + "/ws/media"
        call = asyncio.run(media_stream_call(ws, question, "MZfallback", reply_timeout_s=15.0, listen_after_s=10.0))
        assert call.first_reply is not None, call
        assert llm.finished_at, server.log_path.read_text()[-4000:]
        # The caller heard the answer begin while the model was still generating it.
        assert call.first_reply < llm.finished_at[-1] - 2.0, (call, llm.finished_at, server.log_path.read_text()[-6000:])
        record = server.wait_for(
            server.recent_calls()[0]["id"],
            lambda r: any(e["kind"] == "fallback" for e in r["events"]), timeout=30)
    fallback = next(e for e in record["events"] if e["kind"] == "fallback")
    assert fallback["data"]["backend"] == "openai" and fallback["data"]["outcome"] == "generated"
    assert fallback["data"]["passages"]
    answer = next(t for t in record["turns"] if t["speaker"] == "bot" and SENTENCES[0] in t["text"])
    assert all(s in answer["text"] for s in SENTENCES)
    assert answer["total_ms"] is not None
