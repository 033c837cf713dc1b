"""The agent hub without calls: the queue in a real store (priorities, places, the one
accept that wins), the context card, and the dialogue of a caller who waits for a human
(questions meanwhile, a callback instead, nobody in time, outside opening hours)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.agents.card import build_card, mask_digits
from bot.agents.hub import AgentHub, TextDesk
from bot.agents.queue import AgentQueue
from bot.config import AgentSettings
from bot.store import Store
from flows.engine import Conversation, DialogueSettings, Keywords, State


@pytest.fixture
async def queue(tmp_path):
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'queue.sqlite3'}")
    await store.create_schema()
    yield AgentQueue(store)
    await store.close()


class Closed:
    def unavailable_message(self) -> str:
        return "Nos conseillers ne sont pas joignables en ce moment : ils répondent du lundi au vendredi."


def conversation(knowledge, router, agents=None) -> Conversation:
    return Conversation(session_id="s", knowledge=knowledge, router=router, keywords=Keywords(), actions=None,
                        settings=DialogueSettings(slow_after_failed_turns=0), agents=agents)


# ------------------------------------------------------------------ the queue


async def test_people_in_difficulty_first_then_by_waiting_time(queue):
    for call_id, team in (("a", "accueil"), ("b", "seuils"), ("c", "difficultes"), ("d", "accueil")):
        await queue.enqueue(call_id, channel="sip", team=team, reason="demande_conseiller", card={})
        await asyncio.sleep(0.01)
    assert [e["call_id"] for e in await queue.waiting()] == ["c", "a", "b", "d"]
    assert [e["call_id"] for e in await queue.waiting(["accueil"])] == ["a", "d"]
    assert await queue.position("d") == 2 and await queue.position("b") == 1   # places count within a team
    await queue.leave("a", "abandoned")
    assert await queue.position("d") == 1 and await queue.position("a") is None


async def test_one_accept_wins_among_many_at_once(queue):
    await queue.enqueue("x", channel="webrtc", team="accueil", reason="demande_conseiller", card={})
    won = await asyncio.gather(*(queue.accept("x", f"agent{i}") for i in range(8)))
    assert won.count(True) == 1
    entry = await queue.entry("x")
    assert entry["state"] == "accepted" and entry["agent"] == f"agent{won.index(True)}"
    assert not await queue.leave("x", "abandoned")   # an accepted call is not abandoned, it is closed
    await queue.release("x")                         # an accept that could not be carried out
    assert (await queue.entry("x"))["state"] == "waiting"
    assert await queue.accept("x", "agent9")


async def test_expected_wait_follows_the_team_s_recent_waits(queue):
    assert await queue.expected_wait_s("seuils", 2) == 180.0   # no history: 90 s per caller
    for i, wait in enumerate((30, 60, 90)):
        await queue.enqueue(f"w{i}", channel="sip", team="seuils", reason="r", card={})
        await queue.accept(f"w{i}", "agent")
        async with queue.store.session() as s, s.begin():
            from bot.agents.tables import QueueEntry

            entry = await s.get(QueueEntry, f"w{i}")
            entry.accepted_at = entry.enqueued_at + timedelta(seconds=wait)
    assert await queue.expected_wait_s("seuils", 2) == 120.0   # median 60 s, 2 callers


async def test_callbacks_by_team_done_once(queue):
    first = await queue.add_callback("c1", team="seuils", phone="0612345678", time_slot="matin", topic="plafond")
    await queue.add_callback("c2", team="paiement", phone="0145678901", time_slot="apres_midi", topic="")
    assert [c["call_id"] for c in await queue.callbacks(["seuils"])] == ["c1"]
    assert not await queue.callback_done(first, "marc", ["paiement"])   # not their team
    assert await queue.callback_done(first, "claire", ["seuils"])
    assert not await queue.callback_done(first, "claire", ["seuils"])   # once
    assert await queue.callbacks(["seuils"]) == []
    assert len(await queue.callbacks(None, include_done=True)) == 2


# ------------------------------------------------------------------ the card


async def test_card_masks_identifiers_and_says_what_the_agent_needs(knowledge, router):
    conv = conversation(knowledge, router)
    conv.start()
    await conv.on_text("je dépasse le plafond de chiffre d'affaires de la micro-entreprise, que se passe-t-il")
    conv.slots.update({"siret": "73282932000074", "identified": True, "code_postal": "75011",
                       "account_id": "signed-token-never-shown"})
    conv.set_slow(True, "asked")
    transcript = [{"speaker": "bot", "text": "Bonjour"},
                  {"speaker": "caller", "text": "je dépasse le plafond de chiffre d'affaires de la micro-entreprise"}]
    card = build_card(conv, knowledge, team="seuils", reason="demande_conseiller", transcript=transcript,
                      caller="+33612345678")
    assert card["identified"] and card["account"] == "SIRET ••• ••• ••• 00074"
    assert {"name": "Code postal", "value": "•••11"} in card["slots"]
    assert all("signed-token" not in str(v) for v in card.values())
    assert card["slow"] and "lentement" in card["summary"] and "identifié" in card["summary"]
    assert card["question_type"] == conv.last_intent and card["team_name"] == "seuils et plafonds"
    assert card["suggestion"]["source"].startswith("https://") and card["suggestion"]["text"]
    assert card["caller"] == "+•••••••••78" and card["transcript"] == transcript
    assert mask_digits("0612345678") == "••••••••78"


# ------------------------------------------------------------------ the waiting caller's dialogue


async def test_waiting_caller_may_ask_questions_and_stays_in_the_queue(knowledge, router):
    conv = conversation(knowledge, router)
    conv.start()
    reply = await conv.on_text("je voudrais parler à un conseiller")
    assert reply.queue and reply.handoff.team == "accueil" and conv.queued
    reply = await conv.on_text("en attendant, c'est quoi le plafond de chiffre d'affaires en micro-entreprise")
    assert reply.intent == "plafond_micro" and not reply.queue
    assert reply.texts[-1] == knowledge.prompts["queue"]["still_waiting"]
    assert knowledge.prompt("anything_else") not in reply.texts
    assert conv.state is State.HANDOFF and conv.queued
    place = conv.on_queue_position(3, 250)
    assert place.texts[:2] == ["Il y a 2 personne(s) avant vous.", "L'attente est estimée à environ 4 minutes."]
    assert conv.on_queue_position(1, 20).texts[:2] == [knowledge.prompts["queue"]["first"],
                                                       knowledge.prompts["queue"]["wait_short"]]


async def test_waiting_caller_who_would_rather_be_called_back(knowledge, router):
    conv = conversation(knowledge, router)
    conv.start()
    await conv.on_text("je veux un conseiller")
    reply = await conv.on_text("non finalement rappelez-moi plutôt")
    assert reply.leave_queue and not conv.queued and reply.awaiting == "phone"
    assert (await conv.on_dtmf("0612345678#")).awaiting == "confirmation"
    assert (await conv.on_text("oui c'est ça")).awaiting == "time_slot"
    booked = await conv.on_text("le matin")
    assert booked.callback.phone == "0612345678" and booked.callback.time_slot == "matin"
    assert booked.callback.team == "accueil"
    assert "telephone_rappel" not in conv.slots   # not sent along with later action calls
    assert conv.state is State.ANYTHING_ELSE


async def test_nobody_in_time_then_no_callback_the_bot_goes_on(knowledge, router):
    conv = conversation(knowledge, router)
    conv.start()
    await conv.on_text("je voudrais parler à un conseiller")
    offer = conv.on_no_agent()
    assert offer.texts == [knowledge.prompts["callback"]["no_agent"], knowledge.prompts["callback"]["offer"]]
    assert conv.on_no_agent().texts == []   # once
    declined = await conv.on_text("non merci")
    assert declined.texts == [knowledge.prompts["callback"]["declined"]] and conv.state is State.ANYTHING_ELSE


async def test_outside_opening_hours_a_callback_is_offered_at_once(knowledge, router):
    conv = conversation(knowledge, router, agents=Closed())
    conv.start()
    reply = await conv.on_text("je suis au bout du rouleau, je n'arrive plus à payer, je ne sais plus quoi faire")
    assert reply.handoff.team == "difficultes" and not reply.queue and not conv.queued
    assert reply.texts[0] == knowledge.prompts["callback"]["empathy"]
    assert Closed().unavailable_message() in reply.texts and conv.state is State.CALLBACK_OFFER
    assert (await conv.on_dtmf("1")).awaiting == "phone"   # 1 = yes, on the keypad


def test_the_hub_knows_its_opening_hours(knowledge):
    never = AgentHub(AgentSettings(opening_hours=""), None, knowledge)   # type: ignore[arg-type]
    assert "uniquement en vous rappelant" in never.unavailable_message()
    always = AgentHub(AgentSettings(opening_hours="24/7"), None, knowledge)   # type: ignore[arg-type]
    assert always.unavailable_message() is None
    default = AgentHub(AgentSettings(), None, knowledge)   # type: ignore[arg-type]
    assert default.hours.describe() == "du lundi au vendredi, de 8 heures 30 à 17 heures 30"
    saturday_noon = datetime(2026, 12, 5, 11, 0, tzinfo=UTC)
    assert not default.hours.is_open(saturday_noon)
    assert TextDesk(knowledge).unavailable_message() == knowledge.prompts["callback"]["written"]
