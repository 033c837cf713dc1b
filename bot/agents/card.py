"""The context card an agent reads before accepting a caller: what they asked, why the bot
handed them over, who they are (identifiers masked), what was said, and the knowledge the
bot would answer with, as a suggestion. The caller should not have to repeat anything."""

from __future__ import annotations

from typing import Any

from bot.supervision.masking import mask_digits
from flows.engine import Conversation
from flows.knowledge import Knowledge
from flows.retrieval import Retriever

# What an agent may see of a slot: a label, and whether it identifies someone (masked).
SLOT_LABELS: dict[str, tuple[str, bool]] = {
    "siret": ("SIRET", True),
    "siren": ("SIREN", True),
    "code_postal": ("Code postal", True),
    "telephone_rappel": ("Numéro de rappel", True),
    "creneau_rappel": ("Créneau de rappel", False),
    "infos_regime_reel": ("Infos régime réel", False),
    "account_status": ("État du compte", False),
    "threshold_alert": ("Proche du plafond", False),
    "attestation_requested": ("Attestation demandée", False),
}
TRANSCRIPT_TURNS = 30
SUMMARY_WORDS = 30


def build_card(conversation: Conversation, knowledge: Knowledge, *, team: str, reason: str,
               transcript: list[dict[str, str]], retriever: Retriever | None = None,
               caller: str | None = None) -> dict[str, Any]:
    """Blocking (the suggestion is a retrieval, ~20 ms): call it off the event loop."""
    prompts = knowledge.prompts
    qt = knowledge.question_types.get(conversation.last_intent or "")
    slots = conversation.slots
    identified = bool(slots.get("identified"))
    siret = str(slots.get("siret") or "")
    shown = []
    for name, value in slots.items():
        if name not in SLOT_LABELS or value in (None, ""):
            continue
        label, personal = SLOT_LABELS[name]
        shown.append({"name": label, "value": mask_digits(str(value)) if personal else _plain(value)})
    turns = [{"speaker": t["speaker"], "text": t["text"]} for t in transcript if t.get("text")][-TRANSCRIPT_TURNS:]
    last_question = next((t["text"] for t in reversed(turns) if t["speaker"] == "caller"
                          and len(t["text"].split()) >= 3), None)
    reason_text = prompts["handoff_reasons"].get(reason, reason)
    return {
        "question_type": qt.id if qt else None,
        "question": qt.description if qt else None,
        "team": team,
        "team_name": prompts["team_names"].get(team, team),
        "reason": reason,
        "reason_text": reason_text,
        "identified": identified,
        "account": f"SIRET {mask_digits(_grouped(siret), 5)}" if identified and siret else None,
        "slots": shown,
        "slow": conversation.slow,
        "summary": _summary(qt.description if qt else None, reason_text, identified, conversation.slow, last_question),
        "transcript": turns,
        "suggestion": _suggestion(qt, last_question, retriever),
        "caller": mask_digits(caller) if caller else None,
    }


def _plain(value: Any) -> str:
    return {True: "oui", False: "non"}.get(value, str(value)) if isinstance(value, bool) else str(value)


def _grouped(siret: str) -> str:
    return f"{siret[:3]} {siret[3:6]} {siret[6:9]} {siret[9:]}" if len(siret) == 14 else siret


def _summary(question: str | None, reason: str, identified: bool, slow: bool, last: str | None) -> str:
    parts = [f"Sujet : {question}." if question else "Sujet non identifié par l'assistant.",
             f"Motif du transfert : {reason}.",
             "Appelant identifié." if identified else "Appelant non identifié."]
    if slow:
        parts.append("L'appelant a besoin qu'on lui parle lentement.")
    if last:
        words = last.split()
        quoted = " ".join(words[:SUMMARY_WORDS]) + (" …" if len(words) > SUMMARY_WORDS else "")
        parts.append(f"Il a dit : « {quoted} »")
    return " ".join(parts)


def _suggestion(qt: Any, last_question: str | None, retriever: Retriever | None) -> dict[str, str] | None:
    """The answer of the question type the bot settled on, else the passage retrieval finds
    nearest the caller's last question: an aid, never an instruction."""
    if qt is not None and qt.answer is not None:
        return {"text": qt.answer.text, "source": qt.answer.source, "title": qt.description}
    if retriever is None or not last_question:
        return None
    found = retriever.search(last_question, k=1)
    if not found:
        return None
    passage = found[0].passage
    return {"text": passage.text, "source": passage.source, "title": passage.title}
