"""flows/: the dialogue data, the intent router (real multilingual-e5 embeddings) and
the conversation state machine, without audio and without the action server."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from flows.engine import QUESTION_MIN_SCORE, Conversation, DialogueSettings, Keywords, State
from flows.knowledge import DATA_DIR, DataError, Knowledge, load_knowledge
from flows.router import IntentRouter, Route, RouterSettings, load_router
from tests.domain import DOMAIN_TEAMS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def knowledge() -> Knowledge:
    return load_knowledge()


@pytest.fixture(scope="module")
def router(knowledge) -> IntentRouter:
    # The classifier `callbot models provision` trained, as the server uses it (training
    # itself is tested in tests/test_router.py).
    return load_router(knowledge, RouterSettings(), ROOT / "var" / "router")


@pytest.fixture(scope="module")
def keywords() -> Keywords:
    return Keywords()


@pytest.fixture
def make_conversation(knowledge, router, keywords):
    """Built as BotServices.conversation does, without an action server. Slow speech after
    failed turns changes the wording of what follows them: off unless a test asks for it
    (tests/test_slow_speech.py)."""

    def make(*, recorded: bool = True, slow_after_failed_turns: int = 0) -> Conversation:
        return Conversation(
            session_id="test-session",
            knowledge=knowledge,
            router=router,
            keywords=keywords,
            actions=None,
            settings=DialogueSettings(recorded=recorded, slow_after_failed_turns=slow_after_failed_turns),
        )

    return make


# ------------------------------------------------------------------ the data


def test_real_data_is_valid(knowledge):
    types = knowledge.question_types
    assert len(types) >= 150
    for qt in types.values():
        assert qt.team in DOMAIN_TEAMS, qt.id
        assert len(qt.phrasings) >= 8, qt.id
        assert qt.answer or qt.action or qt.flow or qt.handoff_reason, qt.id
        if qt.handoff_reason:
            assert qt.handoff_reason in knowledge.prompts["handoff_reasons"], qt.id  # the agent's briefing
        if qt.answer:
            assert qt.answer.text.strip(), qt.id
            assert qt.answer.source.startswith("https://"), qt.id
            assert isinstance(qt.answer.checked, date), qt.id
            assert qt.answer.checked <= date.today(), qt.id
        if qt.team == "difficultes":
            assert qt.handoff_reason, qt.id
        if qt.action:
            assert qt.answer, f"{qt.id}: an action needs a static answer for when the action server is down"
    assert {qt.team for qt in types.values()} == set(DOMAIN_TEAMS)


def test_no_phrasing_is_shared_by_two_types(knowledge):
    seen: dict[str, str] = {}
    for qt in knowledge.question_types.values():
        for p in qt.phrasings:
            key = " ".join(p.lower().split())
            assert seen.setdefault(key, qt.id) == qt.id, f"{p!r} in {seen[key]} and {qt.id}"


def test_prompts_say_what_the_rules_require(knowledge):
    greeting = knowledge.prompts["greeting"]
    assert "assistant automatique" in greeting["intro"]
    assert "conseiller" in greeting["human"] and "zéro" in greeting["human"]
    assert "enregistré" in greeting["recorded"] and "six mois" in greeting["recorded"]
    assert "n'est pas enregistré" in greeting["not_recorded"]


# ------------------------------------------------------------- broken files

VALID_TYPE = """\
  - id: {id}
    team: {team}
    description: Une question de test
    phrasings: ["un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit"]
{extra}"""
VALID_ANSWER = """\
    answer:
      text: Une réponse.
      source: https://www.urssaf.fr/
      checked: 2026-11-24
"""


@pytest.fixture
def data_dir(tmp_path) -> Path:
    for name in ("prompts.yaml", "keywords.yaml"):
        shutil.copy(DATA_DIR / name, tmp_path / name)
    (tmp_path / "questions").mkdir()
    return tmp_path


def write_questions(data_dir: Path, *entries: str) -> Path:
    path = data_dir / "questions" / "test.yaml"
    path.write_text("question_types:\n" + "".join(entries), encoding="utf-8")
    return path


def entry(id: str = "test_ok", team: str = "declaration", extra: str = VALID_ANSWER) -> str:
    return VALID_TYPE.format(id=id, team=team, extra=extra)


def test_minimal_valid_file_loads(data_dir):
    write_questions(
        data_dir, entry(), entry("aide_difficile", "difficultes", "    handoff:\n      reason: difficulte\n")
    )
    knowledge = load_knowledge(data_dir)
    assert set(knowledge.question_types) == {"test_ok", "aide_difficile"}
    assert knowledge.question_types["aide_difficile"].handoff_reason == "difficulte"


def test_invalid_yaml_names_the_file_and_line(data_dir):
    path = data_dir / "questions" / "test.yaml"
    path.write_text(
        "question_types:\n"
        "  - id: test_ok\n"
        "    team: declaration\n"
        '    phrasings: ["un", "deux"\n'  # unclosed flow sequence
        "    answer: {text: x}\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError) as excinfo:
        load_knowledge(data_dir)
    message = str(excinfo.value)
    assert message.startswith("questions/test.yaml: line ")
    assert "invalid YAML" in message
    line = int(message.split("line ")[1].split(":")[0])
    assert 4 <= line <= 6


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        pytest.param(
            [entry(team="fiscalite")],
            ["question type 'test_ok'", "line 3", "team 'fiscalite' is not one of"],
            id="unknown-team",
        ),
        pytest.param(
            [entry(extra="")],
            ["question type 'test_ok'", "needs an answer, an action, a flow or a handoff"],
            id="missing-answer",
        ),
        pytest.param([entry(), entry()], ["question type 'test_ok'", "duplicate id"], id="duplicate-id"),
        pytest.param(
            [entry("aide_difficile", "difficultes")],
            ["question type 'aide_difficile'", "'difficultes' question type always ends with a handoff"],
            id="difficultes-without-handoff",
        ),
        pytest.param(
            [entry(extra=VALID_ANSWER.replace("https://www.urssaf.fr/", "http://www.urssaf.fr/"))],
            ["question type 'test_ok'", "https"],
            id="http-source",
        ),
        pytest.param(
            [entry(extra=VALID_ANSWER.replace("2026-11-24", "bientôt"))],
            ["question type 'test_ok'", "answer.checked", "YYYY-MM-DD"],
            id="checked-not-a-date",
        ),
        pytest.param(
            [entry(extra="    answer:\n      text: Sans source.\n")],
            ["question type 'test_ok'", "line 6", "source is missing"],
            id="answer-without-source",
        ),
        pytest.param([entry(id="Pas-Snake")], ["line 2", "id 'Pas-Snake' must be snake_case"], id="bad-id"),
        pytest.param(
            [entry(), entry("deuxieme", extra="    handoff: {}\n")],
            ["question type 'deuxieme'", "reason is missing"],
            id="handoff-without-reason",
        ),
    ],
)
def test_data_errors_name_the_file_and_the_problem(data_dir, entries, expected):
    write_questions(data_dir, *entries)
    with pytest.raises(DataError) as excinfo:
        load_knowledge(data_dir)
    message = str(excinfo.value)
    assert message.startswith("questions/test.yaml: "), message
    for part in expected:
        assert part in message, message


def test_too_few_phrasings(data_dir):
    text = entry().replace('"huit"', "")
    write_questions(data_dir, text)
    with pytest.raises(DataError, match="line 5: question type 'test_ok': phrasings must be a list of at least 8"):
        load_knowledge(data_dir)


def test_unknown_field_is_named(data_dir):
    write_questions(data_dir, entry(extra=VALID_ANSWER + "    reponse: oups\n"))
    with pytest.raises(DataError, match="line 10: question type 'test_ok': unknown field 'reponse'"):
        load_knowledge(data_dir)


FLOW = """\
flows:
  test_flow:
    description: Un flux de test
    steps:
{steps}"""


def write_flow(data_dir: Path, steps: str) -> None:
    (data_dir / "flows").mkdir(exist_ok=True)
    (data_dir / "flows" / "test.yaml").write_text(FLOW.format(steps=steps), encoding="utf-8")


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param("      - say: Bonjour\n        end: true\n", "flows/test.yaml: line 5: flow 'test_flow' step 1: "
                     "a step has exactly one of", id="two-kinds"),
        pytest.param("      - ask: siret\n        prompt: Votre SIRET ?\n", "step 1: an ask step needs a parser",
                     id="ask-without-parser"),
        pytest.param("      - ask: siret\n        parser: telepathie\n        prompt: Votre SIRET ?\n",
                     "flow 'test_flow' step 1: parser 'telepathie' is not one of", id="unknown-parser"),
        pytest.param("      - ask: identified\n        parser: yes_no\n        prompt: Identifié ?\n",
                     "is set by actions only", id="protected-slot"),
        pytest.param("      - branch:\n          - goto: nulle_part\n", "goto 'nulle_part': no step has this id",
                     id="unknown-label"),
        pytest.param("      - use: test_flow\n", "flow 'test_flow': uses itself", id="recursion"),
        pytest.param("      - handoff: {reason: test}\n", "a flow's handoff names its team", id="handoff-team"),
    ],
)
def test_flow_errors_name_the_file_and_the_problem(data_dir, steps, expected):
    write_questions(data_dir, entry())
    write_flow(data_dir, steps)
    with pytest.raises(DataError) as excinfo:
        load_knowledge(data_dir)
    assert expected in str(excinfo.value), str(excinfo.value)


def test_question_naming_an_unknown_flow(data_dir):
    write_questions(data_dir, entry(extra="    flow: inexistant\n"))
    with pytest.raises(DataError, match="question type 'test_ok': flow 'inexistant' is not defined"):
        load_knowledge(data_dir)


def test_missing_prompt_is_named(data_dir):
    write_questions(data_dir, entry())
    prompts = (data_dir / "prompts.yaml").read_text("utf-8")
    kept = [line for line in prompts.splitlines() if not line.startswith("goodbye_no_input:")]
    (data_dir / "prompts.yaml").write_text("\n".join(kept) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"^prompts.yaml: missing prompts goodbye_no_input$"):
        load_knowledge(data_dir)


def test_a_question_type_never_offered_the_file_check_must_exist(data_dir):
    write_questions(data_dir, entry())
    (data_dir / "check_file.yaml").write_text("teams: {}\nnot_for_types: [test_ok, inexistant]\n", "utf-8")
    with pytest.raises(DataError, match="check_file.yaml: not_for_types: unknown question types inexistant"):
        load_knowledge(data_dir)
    (data_dir / "check_file.yaml").write_text("teams: {}\nnot_for_types: [test_ok]\n", "utf-8")
    assert load_knowledge(data_dir).check_file_not_for == {"test_ok"}
    # Identification before a human: only for question types that go to one, with a flow.
    (data_dir / "check_file.yaml").write_text(
        "teams: {}\nidentify_before_human: {flow: inexistant, types: [test_ok]}\n", "utf-8")
    with pytest.raises(DataError, match="identify_before_human needs a 'flow'"):
        load_knowledge(data_dir)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(DataError, match="questions: no question file"):
        load_knowledge(tmp_path)


# ------------------------------------------------------------- conversation

OUT_OF_DOMAIN = (
    "recette de la blanquette de veau",
    "quelle heure est-il à Tokyo",
    "le score du match d'hier soir",
)
# Fragments: what a bad line or a mumble leaves in the transcript.
GARBLED = ("euh la chose", "bof heu", "la la la")


def test_greeting(make_conversation, knowledge):
    reply = make_conversation().start()
    said = " ".join(reply.texts)
    assert "assistant automatique" in said
    assert "conseiller" in said and "zéro" in said
    assert "enregistré" in said and "n'est pas enregistré" not in said
    assert reply.texts[-1] == knowledge.prompts["greeting"]["question"]
    assert reply.handoff is None and not reply.ended and reply.team is None

    said = " ".join(make_conversation(recorded=False).start().texts)
    assert "n'est pas enregistré" in said and "six mois" not in said


async def test_question_is_answered_then_anything_else(make_conversation, knowledge):
    conv = make_conversation()
    conv.start()
    reply = await conv.on_text(
        "où est-ce qu'on trouve l'attestation de vigilance quand un client la demande"
    )
    assert reply.intent == "attestation_vigilance"
    assert reply.team == "attestations"
    assert reply.texts == [
        knowledge.question_types["attestation_vigilance"].answer.text,
        knowledge.prompt("anything_else"),
    ]
    assert reply.awaiting == "confirmation" and reply.handoff is None and not reply.ended

    reply = await conv.on_text("oui")
    assert reply.texts == [knowledge.prompt("listening")] and conv.state is State.QUESTION


async def test_action_question_without_action_server_gets_static_answer(make_conversation, knowledge):
    conv = make_conversation()
    reply = await conv.on_text("avant quelle date je dois faire ma déclaration du trimestre")
    assert reply.intent == "echeances_declaration" and reply.team == "declaration"
    assert reply.texts[0] == knowledge.question_types["echeances_declaration"].answer.text


async def test_out_of_scope_topic_is_answered_with_the_right_body(make_conversation):
    conv = make_conversation()
    reply = await conv.on_text("la caf a diminué mon aide au logement")
    assert reply.intent == "hors_caf" and reply.team == "hors_perimetre"
    assert reply.handoff is None
    assert "Caf" in reply.texts[0]


async def _to_question(conv: Conversation) -> None:
    conv.start()


async def _to_anything_else(conv: Conversation) -> None:
    conv.start()
    await conv.on_text("j'ai oublié mon mot de passe et je n'arrive plus à me connecter")
    assert conv.state is State.ANYTHING_ELSE and conv.team == "compte"


async def _to_offer_human(conv: Conversation) -> None:
    conv.start()
    for text in GARBLED:
        await conv.on_text(text)
    assert conv.state is State.OFFER_HUMAN


async def _to_handoff(conv: Conversation) -> None:
    conv.start()
    await conv.on_text("je veux parler à un conseiller")
    assert conv.state is State.HANDOFF


STATES = [
    pytest.param(_to_question, "accueil", id="question"),
    pytest.param(_to_anything_else, "compte", id="anything-else"),
    pytest.param(_to_offer_human, "accueil", id="offer-human"),
    pytest.param(_to_handoff, "accueil", id="handoff"),
]


@pytest.mark.parametrize(("reach", "team"), STATES)
@pytest.mark.parametrize(
    "ask",
    ["je voudrais parler à un conseiller", "passez-moi une vraie personne s'il vous plaît", "un humain"],
)
async def test_human_request_in_any_state(make_conversation, knowledge, reach, team, ask):
    conv = make_conversation()
    await reach(conv)
    waiting = conv.queued
    reply = await conv.on_text(ask)
    if waiting:   # already in the agents' queue: told so, not queued again
        assert reply.handoff is None and reply.texts == [knowledge.prompt("handoff_waiting")]
        assert conv.state is State.HANDOFF and conv.queued
        return
    assert reply.handoff is not None and reply.queue, reply
    assert reply.handoff.team == team and reply.team == team
    assert reply.handoff.reason == "demande_conseiller"
    assert conv.state is State.HANDOFF and not reply.ended


@pytest.mark.parametrize(("reach", "team"), STATES)
async def test_dtmf_zero_hands_off(make_conversation, reach, team):
    conv = make_conversation()
    await reach(conv)
    waiting = conv.queued
    reply = await conv.on_dtmf("0")
    if waiting:
        assert reply.handoff is None and conv.queued
        return
    assert reply.handoff is not None and reply.handoff.team == team
    assert reply.handoff.reason == "demande_conseiller"


async def test_dtmf_other_keys(make_conversation, knowledge):
    for keys in ("5", "A", "", "0" * 33):
        conv = make_conversation()
        conv.start()
        reply = await conv.on_dtmf(keys)
        assert reply.texts == [knowledge.prompt("keypad_invalid")] and reply.handoff is None, keys
    again = await conv.on_dtmf("9")  # never the same words twice in a row
    assert again.texts == [knowledge.prompt("no_match", 0)] and again.handoff is None
    await _to_anything_else(conv := make_conversation())
    reply = await conv.on_dtmf("1")  # 1 = yes, another question
    assert reply.texts == [knowledge.prompt("listening")]
    await _to_anything_else(conv := make_conversation())
    reply = await conv.on_dtmf("2")  # 2 = no
    assert reply.ended and reply.texts == [knowledge.prompt("goodbye")]


@pytest.mark.parametrize("reach", [_to_question, _to_anything_else, _to_offer_human])
@pytest.mark.parametrize(
    "words",
    [
        "je n'en peux plus, je suis désespéré",
        "j'ai envie d'en finir",
        "je suis au bout du rouleau avec toutes ces dettes",
    ],
)
async def test_distress_hands_off_to_difficultes(make_conversation, knowledge, reach, words):
    conv = make_conversation()
    await reach(conv)
    reply = await conv.on_text(words)
    assert reply.handoff is not None and reply.handoff.team == "difficultes"
    assert reply.team == "difficultes"
    assert reply.texts == [knowledge.prompt("distress")]


@pytest.mark.parametrize("decline", [("non",), ("bof", "mouais"), ("conseiller",)])
async def test_payment_difficulty_question_hands_off_with_care(make_conversation, knowledge, decline):
    """The agent will need the caller's file: identification is offered first; no, two
    unclear answers or "conseiller" hand the call over at once."""
    conv = make_conversation()
    reply = await conv.on_text("je n'ai pas assez d'argent pour payer mes cotisations ce trimestre")
    assert reply.intent == "difficulte_paiement" and reply.team == "difficultes"
    assert reply.handoff is None and reply.offers_file_check and conv.state is State.CHECK_FILE
    assert reply.texts == [knowledge.prompts["check_file"]["before_human"]]
    for words in decline:
        reply = await conv.on_text(words)
    assert reply.handoff is not None and reply.handoff.team == "difficultes", reply.texts
    if decline != ("conseiller",):
        assert reply.handoff.reason == "difficulte" and reply.texts == [knowledge.prompt("distress")]
    assert conv.then_handoff is None


async def test_identification_before_a_human_is_not_offered_twice_nor_kept_for_another_question(
        make_conversation, knowledge):
    conv = make_conversation()
    await conv.on_text("je n'ai pas assez d'argent pour payer mes cotisations ce trimestre")
    reply = await conv.on_text("oui")
    assert reply.awaiting == "siret" and conv.then_handoff is not None, reply.texts
    # A side question is answered and the identification goes on, the human still after it.
    reply = await conv.on_text("et au fait c'est quoi le plafond de chiffre d'affaires en micro cette année")
    assert "203 100" in reply.texts[0] and reply.awaiting == "siret" and conv.then_handoff is not None
    # A question with its own flow replaces it: no human after that one.
    reply = await conv.on_text("je voudrais savoir combien je dois à l'urssaf")
    assert reply.intent == "solde_compte" and reply.awaiting == "siret" and conv.then_handoff is None, reply.texts
    conv = make_conversation()
    conv.slots["identified"] = True
    reply = await conv.on_text("je n'ai pas assez d'argent pour payer mes cotisations ce trimestre")
    assert reply.handoff is not None and reply.texts == [knowledge.prompt("distress")]


@pytest.mark.parametrize("question", [
    "je voudrais connaître la recette de la blanquette de veau pour dimanche",
    "pouvez-vous me dire quel temps il fera demain à Marseille",
])
async def test_question_outside_the_knowledge_goes_to_the_fallback_then_a_human(make_conversation, knowledge,
                                                                                 question):
    conv = make_conversation()
    conv.start()
    reply = await conv.on_text(question)
    assert reply.texts == [knowledge.prompt("fallback_unknown")] and reply.intent is None
    assert conv.state is State.OFFER_HUMAN
    reply = await conv.on_text("oui")
    assert reply.handoff is not None and reply.handoff.team == "accueil"


async def test_no_match_twice_then_offer_human(make_conversation, knowledge):
    conv = make_conversation()
    conv.start()
    first = await conv.on_text(GARBLED[0])
    second = await conv.on_text(GARBLED[1])
    assert first.texts == [knowledge.prompt("no_match", 0)] and first.intent is None
    assert second.texts == [knowledge.prompt("no_match", 1)] and second.intent is None
    assert first.handoff is None and second.handoff is None
    third = await conv.on_text(GARBLED[2])
    assert third.texts == [knowledge.prompt("offer_human")]
    assert third.awaiting == "confirmation" and conv.state is State.OFFER_HUMAN

    reply = await conv.on_text("oui s'il vous plaît")
    assert reply.handoff is not None and reply.handoff.team == "accueil"
    assert reply.handoff.reason == "non_compris"


async def test_unclear_answer_to_the_offer_asks_again_once_then_hands_over(make_conversation, knowledge):
    conv = make_conversation()
    await _to_offer_human(conv)
    reply = await conv.on_text("peut-être, je ne sais pas trop")
    assert reply.texts == [knowledge.prompt("not_understood_answer"), knowledge.prompt("offer_human_question"),
                           knowledge.prompt("confirm_retry")]
    assert conv.state is State.OFFER_HUMAN and reply.handoff is None
    reply = await conv.on_text("bah euh comment dire")
    assert reply.handoff is not None and reply.handoff.reason == "non_compris"
    assert reply.texts == [knowledge.prompt("handoff_not_understood")]


async def test_offer_human_declined_goes_back_to_listening(make_conversation, knowledge):
    conv = make_conversation()
    await _to_offer_human(conv)
    reply = await conv.on_text("non")
    assert reply.texts == [knowledge.prompt("listening")] and reply.handoff is None
    assert conv.state is State.QUESTION
    reply = await conv.on_text("la caf a diminué mon aide au logement")
    assert reply.intent == "hors_caf"


async def test_no_input_three_times_ends_the_call(make_conversation, knowledge):
    conv = make_conversation()
    conv.start()
    first, second, third = await conv.on_no_input(), await conv.on_no_input(), await conv.on_no_input()
    assert first.texts == [knowledge.prompt("no_input", 0)] and not first.ended
    assert second.texts == [knowledge.prompt("no_input", 1)] and not second.ended
    assert third.texts == [knowledge.prompt("goodbye_no_input")] and third.ended
    assert conv.state is State.ENDED
    assert (await conv.on_no_input()).texts == []


async def test_speech_resets_the_no_input_count(make_conversation):
    conv = make_conversation()
    conv.start()
    await conv.on_no_input()
    await conv.on_no_input()
    await conv.on_text("j'ai oublié mon mot de passe et je n'arrive plus à me connecter")
    assert not (await conv.on_no_input()).ended


async def test_silence_while_holding_for_a_human_is_never_hung_up(make_conversation):
    conv = make_conversation()
    await _to_handoff(conv)
    for _ in range(5):
        reply = await conv.on_no_input()
        assert reply.texts == [] and not reply.ended   # the queue says the place now and then
    assert conv.state is State.HANDOFF and conv.queued


@pytest.mark.parametrize(
    "ask", ["répétez", "vous pouvez répéter s'il vous plaît", "pardon ?", "redites-moi ça"]
)
async def test_repeat(make_conversation, ask):
    conv = make_conversation()
    conv.start()
    answer = await conv.on_text("je voudrais fermer ma micro-entreprise, quelles sont les démarches")
    assert answer.intent == "cesser_activite"
    again = await conv.on_text(ask)
    assert again.texts == answer.texts
    assert again.handoff is None and not again.ended


async def test_repeat_the_greeting(make_conversation):
    conv = make_conversation()
    greeting = conv.start()
    assert (await conv.on_text("pardon ?")).texts == greeting.texts


@pytest.mark.parametrize("bye", ["merci, au revoir", "ce sera tout, bonne journée"])
async def test_goodbye_ends(make_conversation, knowledge, bye):
    conv = make_conversation()
    conv.start()
    reply = await conv.on_text(bye)
    assert reply.ended and reply.texts == [knowledge.prompt("goodbye")]
    assert conv.state is State.ENDED
    after = await conv.on_text("allô ?")
    assert after.texts == [] and after.ended
    assert (await conv.on_dtmf("0")).handoff is None


async def test_no_thanks_after_an_answer_ends(make_conversation, knowledge):
    conv = make_conversation()
    await _to_anything_else(conv)
    reply = await conv.on_text("non merci")
    assert reply.ended and reply.texts == [knowledge.prompt("goodbye")]


# ------------------------------------------------- deadlines (the action's logic)


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2026, 11, 24), (date(2027, 1, 31), 4, 2026)),
        (date(2026, 1, 31), (date(2026, 1, 31), 4, 2025)),  # the deadline day itself
        (date(2026, 2, 1), (date(2026, 4, 30), 1, 2026)),
        (date(2026, 4, 30), (date(2026, 4, 30), 1, 2026)),
        (date(2026, 5, 1), (date(2026, 7, 31), 2, 2026)),
        (date(2026, 10, 31), (date(2026, 10, 31), 3, 2026)),
    ],
)
def test_next_quarterly_deadline(today, expected):
    from flows.actions.deadlines import next_quarterly_deadline

    assert next_quarterly_deadline(today) == expected


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2026, 3, 15), (date(2026, 3, 31), 2, 2026)),
        (date(2026, 1, 10), (date(2026, 1, 31), 12, 2025)),
        (date(2028, 3, 1), (date(2028, 3, 31), 2, 2028)),
    ],
)
def test_next_monthly_deadline(today, expected):
    from flows.actions.deadlines import next_monthly_deadline

    assert next_monthly_deadline(today) == expected


def test_deadlines_text_reads_well():
    from flows.actions.deadlines import deadlines_text

    text = " ".join(deadlines_text(date(2026, 11, 24)))
    assert "le 31 janvier 2027, pour le quatrième trimestre 2026" in text
    assert "chiffre d'affaires d'octobre 2026 au plus tard le 30 novembre 2026" in text
    assert "chiffre d'affaires d'avril 2026" in " ".join(deadlines_text(date(2026, 5, 10)))
    assert "chiffre d'affaires d'août 2026" in " ".join(deadlines_text(date(2026, 9, 3)))
    assert "chiffre d'affaires de mars 2026" in " ".join(deadlines_text(date(2026, 4, 2)))


@pytest.mark.parametrize("text", [
    "je suis agent commercial, quel est mon taux de cotisations",
    "quelle opération je dois faire pour déclarer",
    "je voudrais un conseil pour mon plafond",
    "l'agent immobilier m'a demandé une attestation",
    "j'ai besoin d'un agent immobilier pour vendre mon local",
    # a person mentioned, not asked for
    "j'ai déjà eu un conseiller qui m'a dit de déclarer en ligne",
    "le conseiller m'a dit de rappeler pour mon attestation",
    "pouvez-vous me conseiller sur le statut",
    "mon conseiller bancaire m'a dit que je devais payer",
    "une conseillère m'a envoyé un courrier",
    "est-ce que je peux avoir un agent commercial en micro",
    "la personne de l'accueil m'a dit de vous appeler",
    "je voudrais savoir si quelqu'un a reçu mon courrier",
    "à quelle heure je peux avoir quelqu'un au téléphone",  # opening hours
])
def test_words_close_to_a_human_request_do_not_hand_off(keywords, text):
    from flows.engine import normalize

    assert not keywords.match("human", normalize(text))


@pytest.mark.parametrize("text", [
    "je veux parler à un conseiller", "Conseillère, s'il vous plaît", "passez-moi un humain",
    "je voudrais parler à une vraie personne", "Conseillé.",
    "euh conseiller", "Conseiller, conseiller !", "un conseiller s'il vous plaît", "opérateur",
    "est-ce que je peux parler à quelqu'un", "passez-moi quelqu'un s'il vous plaît",
    "je voudrais qu'un conseiller me rappelle", "j'en ai marre des robots",
    "je veux pas parler à une machine", "mettez-moi en relation avec un conseiller",
    "j'aimerais avoir une conseillère au téléphone", "j'ai besoin d'un conseiller",
    "ça fait vingt minutes que je tourne en rond avec votre robot je veux un agent maintenant",
    "passez-moi un agent s'il vous plaît",
])
def test_human_requests_are_caught(keywords, text):
    from flows.engine import normalize

    assert keywords.match("human", normalize(text))


# ------------------------------------------------------------ transfers to a human


async def test_agent_briefing_says_team_topic_and_reason_nothing_personal(make_conversation):
    conv = make_conversation()
    conv.start()
    conv.slots["siret"] = "73282932000074"
    await conv.on_text("c'est combien le plafond de chiffre d'affaires en micro")
    reply = await conv.on_text("je voudrais parler à un conseiller")
    briefing = conv.agent_briefing(reply.handoff)
    assert "seuils et plafonds" in briefing and "plafond" in briefing.lower()
    assert "demandé un conseiller" in briefing
    assert "7328" not in briefing


async def test_transfer_failed_leaves_the_caller_with_the_bot(make_conversation, knowledge):
    conv = make_conversation()
    await _to_handoff(conv)
    reply = conv.on_transfer_failed()
    p = knowledge.prompts["callback"]
    assert reply.texts == [p["no_agent"], p["offer"]] and conv.state is State.CALLBACK_OFFER
    reply = await conv.on_text("c'est combien le plafond de chiffre d'affaires en micro")
    assert reply.intent == "plafond_micro"


async def test_with_an_agent_the_bot_only_listens(make_conversation):
    conv = make_conversation()
    await _to_handoff(conv)
    conv.on_agent_joined()
    assert (await conv.on_text("bonjour madame")).texts == []
    assert (await conv.on_dtmf("5")).texts == []
    assert (await conv.on_no_input()).texts == []


async def test_a_type_below_its_own_minimum_is_asked_again(make_conversation, knowledge):
    # Frustration with the website routes to distress at about 0.78: not enough for words
    # of comfort and a handoff when the type asks for 0.8.
    assert knowledge.question_types["detresse_personnelle"].min_score == 0.8
    conv = make_conversation()
    conv.start()
    said = "je vais craquer avec ce site internet"
    route = conv.router.route(said)
    assert route.intent == "detresse_personnelle" and route.score < 0.8, route
    reply = await conv.on_text(said)
    assert reply.handoff is None and reply.texts == [knowledge.prompt("no_match", 0)], reply
    # real distress, however phrased, still goes to a human
    reply = await conv.on_text("j'ai des idées noires, tout s'écroule")
    assert reply.handoff is not None and reply.handoff.team == "difficultes", reply


# ------------------------------------------------ a dialogue that recovers (issue 8)
# The caller is asked yes/no (another question? a human? a read-back) or a value, and says
# something else: a question of their own, or words that answer nothing.

SIRET = "73282932000074"
# Neither yes nor no, no value, no question: hesitations as callers make them.
UNCLEAR = ("euh attendez voir", "hmm bof", "la chose là", "bah euh", "ouh là là", "comment dire euh")
# Questions asked instead of the answer, the way callers put them: context first.
WAITING_QUESTIONS = [
    ("alors voilà, j'ai un client qui me réclame une attestation de vigilance, comment je fais pour l'avoir",
     "attestation_vigilance"),
    ("pour l'attestation de vigilance, euh, elle est valable combien de temps", "attestation_vigilance"),
    (("bon, je suis auto-entrepreneur depuis deux ans, et je me demandais, c'est combien le plafond de "
      "chiffre d'affaires"), "plafond_micro"),
    (("je suis à la retraite depuis l'an dernier et je voudrais savoir si j'ai le droit de faire un peu "
      "d'auto-entreprise"), "retraite_cumul_micro"),
    ("mon comptable, est-ce qu'il peut faire les déclarations à ma place sur le site", "acces_tiers_comptable"),
    ("je vends des vieux vêtements sur vinted, est-ce que je dois déclarer quelque chose à l'urssaf",
     "vente_particulier_plateforme"),
    ("j'ai fait ma déclaration hier mais je me suis trompée dans le montant, comment je peux corriger",
     "corriger_declaration"),
    ("je voudrais changer mon compte bancaire pour les prélèvements, j'ai changé de banque",
     "changer_rib_prelevement"),
]
# Answers and hesitations: never taken for a question, however long.
WAITING_ANSWERS = (
    "oui c'est bien ça merci beaucoup madame", "non c'est pas le bon numéro", "attendez je cherche mes papiers",
    "oui je veux bien", "attendez deux secondes je reviens", "attendez je retrouve plus le papier",
    "je l'ai pas sous la main là", "peut-être je ne sais pas trop", "excusez-moi j'étais distrait",
    "c'est mon fils qui s'occupe de ça d'habitude",
)


async def _to_clarify(conv: Conversation) -> None:
    conv.start()
    await conv.on_text("mon prélèvement")  # its dates, or rejected by the bank?
    assert conv.state is State.CLARIFY, conv.last_texts


async def _to_siret(conv: Conversation) -> None:
    conv.start()
    await conv.on_text("je voudrais savoir combien je dois à l'urssaf en ce moment")
    assert conv.state is State.FLOW and conv.flow is not None and conv.flow.keypad_entry


async def _to_read_back(conv: Conversation) -> None:
    await _to_siret(conv)
    await conv.on_dtmf(SIRET + "#")
    assert conv.flow is not None and conv.flow.waits_for_yes_no, conv.last_texts


async def _to_postcode(conv: Conversation) -> None:
    await _to_read_back(conv)
    await conv.on_text("oui")
    assert "code postal" in " ".join(conv.last_texts)


WAITING = [
    pytest.param(_to_anything_else, id="anything-else"),
    pytest.param(_to_offer_human, id="offer-human"),
    pytest.param(_to_clarify, id="clarify"),
    pytest.param(_to_siret, id="siret"),
    pytest.param(_to_read_back, id="read-back"),
    pytest.param(_to_postcode, id="postcode"),
]


@pytest.mark.parametrize("reach", WAITING)
async def test_failed_answers_never_get_the_same_reprompt_twice_and_end_with_a_human(make_conversation, reach):
    conv = make_conversation()
    await reach(conv)
    replies = [list(conv.last_texts)]
    for words in UNCLEAR * 2:
        reply = await conv.on_text(words)
        assert reply.texts != replies[-1], (words, reply.texts)
        replies.append(reply.texts)
        if reply.handoff is not None:
            break
    assert reply.handoff is not None, replies   # a human at the end, never a loop
    assert len(replies) >= 3, replies           # after one re-prompt at least


@pytest.mark.parametrize("reach", [_to_anything_else, _to_offer_human, _to_read_back])
async def test_an_unclear_yes_no_is_asked_again_in_other_words_with_keys_and_a_human(make_conversation,
                                                                                      knowledge, reach):
    conv = make_conversation()
    await reach(conv)
    asked = list(conv.last_texts)
    reply = await conv.on_text("euh attendez voir")
    said = " ".join(reply.texts)
    assert knowledge.prompt("confirm_retry") in reply.texts and "tapez 1 pour oui, 2 pour non" in said
    assert "conseiller" in said and reply.texts != asked and reply.handoff is None
    assert reply.awaiting == "confirmation"


async def test_keys_answer_the_rephrased_yes_no(make_conversation, knowledge):
    conv = make_conversation()
    await _to_read_back(conv)
    await conv.on_text("hmm bof")
    reply = await conv.on_dtmf("1")   # yes: the SIRET is kept, the postcode is asked
    assert "code postal" in " ".join(reply.texts) and reply.handoff is None
    conv = make_conversation()
    await _to_anything_else(conv)
    await conv.on_text("hmm bof")
    assert (await conv.on_dtmf("2")).texts == [knowledge.prompt("goodbye")]


@pytest.mark.parametrize("reach", [_to_anything_else, _to_offer_human, _to_read_back, _to_siret])
@pytest.mark.parametrize("lead", ["", "oui, ", "non mais "])
@pytest.mark.parametrize(("question", "intent"), [WAITING_QUESTIONS[1], WAITING_QUESTIONS[4]])
async def test_a_question_instead_of_the_answer_is_answered(make_conversation, knowledge, reach, lead, question,
                                                            intent):
    conv = make_conversation()
    await reach(conv)
    reply = await conv.on_text(lead + question)
    assert reply.intent == intent, reply
    assert reply.texts[0] == knowledge.question_types[intent].answer.text, reply
    assert reply.handoff is None and not reply.ended
    if reach in (_to_read_back, _to_siret):   # then the flow asks its question again
        assert reply.texts[-2] == knowledge.prompt("resume_flow") and conv.state is State.FLOW, reply


async def test_bare_yes_and_no_are_the_answer(make_conversation, knowledge):
    conv = make_conversation()
    await _to_anything_else(conv)
    assert (await conv.on_text("oui oui")).texts == [knowledge.prompt("listening")]
    conv = make_conversation()
    await _to_anything_else(conv)
    assert (await conv.on_text("euh non merci")).ended
    conv = make_conversation()
    await _to_offer_human(conv)
    assert (await conv.on_text("oui s'il vous plaît")).handoff is not None
    conv = make_conversation()
    await _to_offer_human(conv)
    assert (await conv.on_text("non pas vraiment")).texts == [knowledge.prompt("listening")]
    conv = make_conversation()
    await _to_read_back(conv)
    assert "code postal" in " ".join((await conv.on_text("oui c'est bien ça")).texts)
    conv = make_conversation()
    await _to_read_back(conv)
    assert (await conv.on_text("non c'est pas ça")).texts[0] == knowledge.prompt("confirm_denied")


async def test_yes_with_words_that_are_no_question(make_conversation, knowledge):
    # "oui" and something the router does not take: the caller has a question to ask
    conv = make_conversation()
    await _to_anything_else(conv)
    reply = await conv.on_text("oui alors justement j'ai encore une question à vous poser")
    assert reply.texts == [knowledge.prompt("listening")] and conv.state is State.QUESTION
    # "non" and words that are no question: the call ends as the caller wishes
    conv = make_conversation()
    await _to_anything_else(conv)
    assert (await conv.on_text("non je crois que c'est bon pour aujourd'hui")).ended


@pytest.mark.parametrize(("question", "intent"), WAITING_QUESTIONS)
def test_questions_asked_while_waiting_pass_the_threshold(router, question, intent):
    route = router.route(question)
    assert route.intent == intent and route.score >= QUESTION_MIN_SCORE, route


@pytest.mark.parametrize("words", WAITING_ANSWERS)
async def test_answers_and_hesitations_are_never_taken_for_a_question(make_conversation, knowledge, words):
    conv = make_conversation()
    await _to_read_back(conv)
    reply = await conv.on_text(words)
    assert reply.intent is None and knowledge.prompt("resume_flow") not in reply.texts, reply
    assert conv.flow is not None or reply.handoff is not None


# ------------------------------------------------------------- clarifying questions


def _words(text: str) -> int:
    return len([w for w in text.replace("?", " ").replace(":", " ").split() if any(c.isalnum() for c in w)])


def test_every_type_has_a_short_option_for_clarifying_questions(knowledge):
    options = knowledge.prompts["clarify_options"]
    assert set(options) == set(knowledge.question_types)
    for qid, text in options.items():
        assert 1 <= _words(text) <= 12 and text.endswith(" ?") and "{" not in text, (qid, text)
    assert len(set(options.values())) == len(options)  # two options are never said alike
    clarify = knowledge.prompts["clarify"]
    assert all(isinstance(v, str) and "{" not in v for v in clarify.values())  # fixed: pre-rendered
    assert _words(clarify["ask"]) <= 12 and _words(clarify["choose"]) <= 12


async def test_clarify_between_two_types_of_one_team_sets_the_team(make_conversation, knowledge):
    conv = make_conversation()
    conv.start()
    reply = await conv.on_text("mon prélèvement")
    first, second = conv.choices
    assert {first, second} == {"prelevement_rejete", "prelevements_independant"}
    c, options = knowledge.prompts["clarify"], knowledge.prompts["clarify_options"]
    assert reply.texts == [c["ask"], options[first], c["or_else"], options[second], c["choose"]]
    assert reply.team == "paiement" and conv.team == "paiement" and reply.awaiting == "choice"
    reply = await conv.on_dtmf("2")
    assert reply.intent == second and reply.team == "paiement"


class _ClarifyingRouter:
    """Scripted: every question is between these two types."""

    def __init__(self, choices: tuple[str, str], own_file: bool = False) -> None:
        self.choices = choices
        self.own_file = own_file

    def route(self, text: str, among=None) -> Route:
        if among is not None:
            return Route(intent=None, score=0.1, reason="out_of_scope")
        return Route(intent=None, score=0.45, clarify=self.choices, reason="clarify")

    def about_own_file(self, text: str) -> bool:
        return self.own_file


async def test_clarify_between_two_teams_leaves_the_team_unknown(knowledge, keywords):
    conv = Conversation(session_id="t", knowledge=knowledge, router=_ClarifyingRouter(("hors_tva", "plafond_micro")),
                        keywords=keywords)
    conv.start()
    reply = await conv.on_text("la franchise")
    assert conv.state is State.CLARIFY and reply.team is None
    reply = await conv.on_text("le premier")
    assert reply.intent == "hors_tva" and reply.team == "hors_perimetre"
    conv = Conversation(session_id="t", knowledge=knowledge,
                        router=_ClarifyingRouter(("prelevement_rejete", "moyens_paiement")), keywords=keywords)
    conv.start()
    assert (await conv.on_text("le paiement")).team == "paiement"


async def test_a_question_about_ones_own_file_between_two_types_offers_the_check(knowledge, keywords):
    """Their own payment, and the router hesitates between two payment types: the file
    tells, no choice to make (the team's check, or the general one across two teams);
    unless one of them is a step the file cannot help with, or not the Urssaf's."""
    def conversation(choices):
        return Conversation(session_id="t", knowledge=knowledge, keywords=keywords,
                            router=_ClarifyingRouter(choices, own_file=True))

    conv = conversation(("prelevement_rejete", "paiement_non_pris_en_compte"))
    conv.start()
    reply = await conv.on_text("vous avez bien eu mon virement de mardi parce que j'ai eu une relance ce matin")
    assert reply.offers_file_check and conv.state is State.CHECK_FILE and reply.team == "paiement", reply.texts
    assert reply.texts == [knowledge.prompts["check_file"]["offer"]]
    conv = conversation(("mise_en_demeure", "prelevement_rejete"))   # two teams: the general check
    conv.start()
    reply = await conv.on_text("j'ai reçu une lettre recommandée parce que mon prélèvement n'est pas passé")
    assert reply.offers_file_check and reply.team is None and conv.check_flow == knowledge.check_file_flow("")
    conv = conversation(("hors_impots_revenu_cfe", "prelevement_rejete"))   # not the Urssaf's, for one
    conv.start()
    assert not (await conv.on_text("on m'a prélevé la cfe deux fois ce mois-ci")).offers_file_check
    conv = conversation(("prelevement_rejete", "changer_rib_prelevement"))
    conv.start()
    reply = await conv.on_text("j'ai changé de banque et mon prélèvement de ce mois n'est pas passé")
    assert conv.state is State.CLARIFY and not reply.offers_file_check


async def test_a_new_question_answers_a_clarifying_question(make_conversation):
    conv = make_conversation()
    await _to_clarify(conv)
    question, intent = WAITING_QUESTIONS[4]
    reply = await conv.on_text(question)
    assert reply.intent == intent and conv.choices is None


# -------------------------------------------------------------------- snapshots


FRAGMENTS = [
    # (first fragment, answered alone; the whole question once joined)
    pytest.param("je voudrais savoir combien", "je voudrais savoir combien de temps elle est valable, "
                 "l'attestation de vigilance", id="enters-a-flow"),
    pytest.param("pour l'attestation de vigilance", "pour l'attestation de vigilance, euh, elle est valable "
                 "combien de temps", id="answered-then-yes-no"),
    pytest.param("bof heu", "bof heu, je voudrais savoir comment déclarer mon chiffre d'affaires", id="no-match"),
    pytest.param("mon prélèvement", "mon prélèvement de l'urssaf a été rejeté par ma banque, qu'est-ce que je fais",
                 id="clarify"),
]


def _dialogue_state(conv: Conversation) -> tuple:
    return (conv.state, conv.team, conv.no_match, conv.unclear, conv.last_intent, conv.choices, conv.slots,
            conv.keys, conv.flow is None, conv.last_texts)


@pytest.mark.parametrize(("fragment", "joined"), FRAGMENTS)
async def test_restored_snapshot_understands_the_joined_turn_afresh(make_conversation, fragment, joined):
    conv = make_conversation()
    conv.start()
    before = conv.snapshot()
    first = await conv.on_text(fragment)
    assert first.texts and _dialogue_state(conv) != _dialogue_state(make_conversation())
    conv.restore(before)
    reply = await conv.on_text(joined)
    fresh = make_conversation()
    fresh.start()
    assert reply == await fresh.on_text(joined)
    assert _dialogue_state(conv) == _dialogue_state(fresh)


async def test_restore_twice_shares_nothing_with_the_snapshot(make_conversation, knowledge):
    conv = make_conversation()
    await _to_postcode(conv)
    snap = conv.snapshot()
    siret, asked = conv.slots["siret"], list(conv.last_texts)
    first = await conv.on_text("c'est le soixante-quinze zéro onze")     # a read-back of the postcode
    assert "C'est bien cela" in " ".join(first.texts)
    await conv.on_text("oui")                                             # the flow goes on and ends
    conv.slots["siret"] = "mutated"
    conv.restore(snap)
    assert conv.slots == {"siret": siret} and conv.last_texts == asked and conv.state is State.FLOW
    assert conv.flow is not None and conv.flow.slots is conv.slots        # still one dict for both
    assert conv.flow._knowledge is conv.knowledge and conv.router is not None
    again = await conv.on_text("c'est le soixante-quinze zéro onze")
    assert again == first
    conv.slots.clear()
    conv.restore(snap)                                                    # the snapshot was not touched
    assert conv.slots == {"siret": siret}
    assert await conv.on_text("c'est le soixante-quinze zéro onze") == first


async def test_restore_brings_back_counters_and_keypad_entry(make_conversation, knowledge):
    conv = make_conversation()
    await _to_siret(conv)
    await conv.on_text("euh attendez voir")       # one failure: the next re-prompt is the second
    await conv.on_dtmf("7328")                    # keys typed, not yet ended by '#'
    snap = conv.snapshot()
    failed = await conv.on_text("hmm bof")
    conv.restore(snap)
    assert conv.keys == "7328"
    assert await conv.on_text("hmm bof") == failed
    conv.restore(snap)
    reply = await conv.on_dtmf("2932000074#")
    assert "Est-ce exact" in " ".join(reply.texts), reply


async def test_speech_not_heard_is_asked_again_with_the_question_then_left_to_the_silence_watch(
        make_conversation, knowledge):
    conv = make_conversation()
    greeting = conv.start()
    first = conv.on_not_heard()
    assert first.texts == [knowledge.prompt("not_heard", 0), greeting.texts[-1]]
    second = conv.on_not_heard()
    assert second.texts[0] == knowledge.prompt("not_heard", 1) != first.texts[0]
    assert "conseiller" in second.texts[0] and second.texts[-1] == greeting.texts[-1]
    assert conv.on_not_heard().texts == []   # noise, maybe: the no-input re-prompts take over
    await conv.on_text("j'ai oublié mon mot de passe et je n'arrive plus à me connecter")
    assert conv.on_not_heard().texts[0] == knowledge.prompt("not_heard", 0)


async def test_speech_not_heard_in_a_flow_repeats_the_flow_question(make_conversation, knowledge):
    conv = make_conversation()
    await _to_siret(conv)
    asked = list(conv.last_texts)
    reply = conv.on_not_heard()
    assert reply.texts[0] == knowledge.prompt("not_heard", 0)
    assert reply.texts[1:] == conv.flow.repeat_question() and "SIRET" in " ".join(reply.texts[1:]), asked
    assert reply.awaiting == "siret" and conv.state is State.FLOW


async def test_speech_not_heard_while_holding_for_a_human_is_not_answered(make_conversation):
    conv = make_conversation()
    await _to_handoff(conv)
    assert conv.on_not_heard().texts == []
