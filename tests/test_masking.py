"""bot/supervision/masking.py: identifiers hidden in what the supervisor console shows of a
call (turn texts, caller number, event data), postcodes where the identification asked for
one, and the WebVTT export of the turns.

The identifiers are generated (valid SIRETs, NIRs and IBANs, e-mails, phone numbers), said
or read back in every way the callers and the bot say them, inside varied sentences."""

from __future__ import annotations

import copy
import dataclasses
import random
import re
from collections.abc import Callable, Iterator
from datetime import date

import pytest

from bot.supervision import masking
from bot.supervision.masking import MASK, mask_call, mask_digits, mask_text, postcode_turns, webvtt
from flows.identifiers import luhn_check_digit, siren_is_valid, siret_is_valid
from flows.knowledge import load_knowledge
from flows.slots import dictated_digits, parse_keypad
from flows.slow_wording import slow_wording

RNG_SEED = 20260415
COUNT = 200
KNOWLEDGE = load_knowledge()
IDENTIFICATION = KNOWLEDGE.flows["identification"]
SIRET_STEP = next(s for s in IDENTIFICATION.steps if s.parser == "siret")
POSTCODE_STEP = next(s for s in IDENTIFICATION.steps if s.parser == "postcode")
PHONE_STEP = next(s for f in KNOWLEDGE.flows.values() for s in f.steps if s.parser == "phone")
REPEAT = KNOWLEDGE.prompts["slow_speech"]["repeat"]


def spoken(parser: str, digits: str) -> str:
    """How the bot reads a value back (flows/slots.py), as its turns hold it."""
    value = parse_keypad(parser, digits, today=date(2026, 4, 15))
    assert value is not None, (parser, digits)
    return value.spoken

# Sentences around an identifier, as Whisper writes the callers and as the bot speaks; none
# holds a digit or a number word, so whatever digits the masked text still says come from
# the identifier.
CONTEXTS = (
    "{}",
    "euh mon siret c'est le {}",
    "c'est {}.",
    "{}, voilà",
    "alors... ({}) c'est ça",
    "le numéro: {} merci",
    "«{}»",
    "je vous donne {}!",
    "attendez c'est {}? je crois",
    "numéro {}; voilà",
    "Vous avez dit {}, c'est bien ça ?",
    "J'ai noté : {}. Est-ce exact ?",
)


def test_contexts_say_no_digit():
    assert all(dictated_digits(c.format("")) == "" and not re.search(r"[0-9]", c) for c in CONTEXTS)


# ------------------------------------------------------------------ generated identifiers

def sirets(rng: random.Random) -> Iterator[str]:
    while True:
        siren = "".join(rng.choice("0123456789") for _ in range(8))
        siren += luhn_check_digit(siren)
        nic = "".join(rng.choice("0123456789") for _ in range(4))
        siret = siren + nic + luhn_check_digit(siren + nic)
        if siret_is_valid(siret):      # La Poste's SIREN has its own rule: none drawn here
            yield siret


def nir_key(body: str) -> str:
    """97 - (n mod 97), Corsica's 2A and 2B counted as 19 and 18."""
    n = int(body.upper().replace("2A", "19").replace("2B", "18"))
    return f"{97 - n % 97:02d}"


def nirs(rng: random.Random) -> Iterator[str]:
    while True:
        dept = rng.choice([f"{rng.randint(1, 95):02d}", "2A", "2B"])
        if dept == "20":
            continue
        body = (rng.choice("12") + f"{rng.randint(0, 99):02d}" + f"{rng.randint(1, 12):02d}" + dept
                + f"{rng.randint(1, 990):03d}" + f"{rng.randint(1, 999):03d}")
        yield body + nir_key(body)


IBAN_BBANS = {   # country: the BBAN's characters (d: digit, a: capital letter)
    "FR": "d" * 23, "DE": "d" * 18, "BE": "d" * 12, "ES": "d" * 20, "GB": "aaaa" + "d" * 14,
    "IT": "a" + "d" * 22, "NL": "aaaa" + "d" * 10, "PT": "d" * 21,
}


def iban_ok(iban: str) -> bool:
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def ibans(rng: random.Random) -> Iterator[str]:
    while True:
        country = rng.choice(sorted(IBAN_BBANS))
        bban = "".join(rng.choice("0123456789" if k == "d" else "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
                       for k in IBAN_BBANS[country])
        check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
        yield f"{country}{check:02d}{bban}"


def phones(rng: random.Random) -> Iterator[str]:
    while True:
        yield "0" + rng.choice("12345679") + "".join(rng.choice("0123456789") for _ in range(8))


def take(gen: Callable[[random.Random], Iterator[str]], n: int = COUNT) -> list[str]:
    it = gen(random.Random(RNG_SEED))
    return [next(it) for _ in range(n)]


SIRETS = take(sirets)
SIRENS = [s[:9] for s in SIRETS]
NIRS = take(nirs)
IBANS = take(ibans)
PHONES = take(phones)


def test_generated_identifiers_are_valid():
    assert len(set(SIRETS)) == COUNT and all(siret_is_valid(s) and siren_is_valid(s[:9]) for s in SIRETS)
    assert all(len(n) == 15 and n[0] in "12" and n[-2:] == nir_key(n[:13]) for n in NIRS)
    assert any("2A" in n or "2B" in n for n in NIRS)
    assert all(iban_ok(i) for i in IBANS) and len({i[:2] for i in IBANS}) == len(IBAN_BBANS)
    assert all((int(n[:13].upper().replace("2A", "19").replace("2B", "18")) + int(n[13:])) % 97 == 0 for n in NIRS)
    assert iban_ok("FR7630006000011234567890189")


# ------------------------------------------------------------------ formats, said and read back

def groups(digits: str, sizes: tuple[int, ...], sep: str = " ") -> str:
    out, i = [], 0
    for size in sizes:
        out.append(digits[i:i + size])
        i += size
    return sep.join(p for p in out if p)


def spaced(value: str, sep: str = " ") -> str:
    return sep.join(value)


def pairs(digits: str, sep: str = " ") -> str:
    return sep.join(digits[i:i + 2] for i in range(0, len(digits), 2))


SIRET_FORMATS: dict[str, Callable[[str], str]] = {
    "compact": lambda d: d,
    "read-back grouping": lambda d: groups(d, (3, 3, 3, 5)),
    "pairs": pairs,
    "digit by digit": spaced,
    "dots": lambda d: groups(d, (3, 3, 3, 5), "."),
    "dashes": lambda d: groups(d, (3, 3, 3, 5), "-"),
    "pauses": lambda d: groups(d, (3, 3, 3, 5), ", "),
    "digits with pauses": lambda d: spaced(d, ", "),
}
SIREN_FORMATS: dict[str, Callable[[str], str]] = {
    "compact": lambda d: d, "threes": lambda d: groups(d, (3, 3, 3)), "digit by digit": spaced,
    "dots": lambda d: groups(d, (3, 3, 3), "."), "dashes": lambda d: groups(d, (3, 3, 3), "-"),
}
NIR_FORMATS: dict[str, Callable[[str], str]] = {
    "compact": lambda d: d,
    "card": lambda d: groups(d, (1, 2, 2, 2, 3, 3, 2)),
    "digit by digit": spaced,
    "dots": lambda d: groups(d, (1, 2, 2, 2, 3, 3, 2), "."),
    "key apart": lambda d: f"{d[:13]} {d[13:]}",
    "lower case": lambda d: groups(d.lower(), (1, 2, 2, 2, 3, 3, 2)),
}
IBAN_FORMATS: dict[str, Callable[[str], str]] = {
    "printed": lambda d: " ".join(d[i:i + 4] for i in range(0, len(d), 4)),
    "compact": lambda d: d,
    "dashes": lambda d: "-".join(d[i:i + 4] for i in range(0, len(d), 4)),
}
PHONE_FORMATS: dict[str, Callable[[str], str]] = {
    "compact": lambda d: d,
    "pairs": pairs,
    "dots": lambda d: pairs(d, "."),
    "dashes": lambda d: pairs(d, "-"),
    "pauses": lambda d: pairs(d, ", "),
    "digit by digit": spaced,
    "+33": lambda d: "+33 " + d[1] + " " + pairs(d[2:]),
    "+33 compact": lambda d: "+33" + d[1:],
    "0033": lambda d: "0033 " + d[1] + " " + pairs(d[2:]),
}


def visible_digits(masked: str) -> str:
    """What a reader still gets of digits from a masked text, in figures or in words."""
    return "".join(re.findall(r"[0-9]", masked)) or dictated_digits(masked)


def assert_hidden(original: str, masked: str, digits: str) -> None:
    shown = visible_digits(masked)
    assert MASK in masked and masked != original, (original, masked)
    assert len(shown) <= 2 and digits.endswith(shown), (original, masked)


def cases(values: list[str], formats: dict[str, Callable[[str], str]]) -> Iterator[tuple[str, str, str]]:
    """Every value in every format, in a sentence turning with the index."""
    for i, value in enumerate(values):
        for j, (name, fmt) in enumerate(formats.items()):
            yield name, CONTEXTS[(i + j) % len(CONTEXTS)].format(fmt(value)), value


@pytest.mark.parametrize(("values", "formats"), [
    (SIRETS, SIRET_FORMATS), (SIRENS, SIREN_FORMATS), (PHONES, PHONE_FORMATS),
], ids=["siret", "siren", "phone"])
def test_digit_identifiers_keep_only_their_last_two_digits(values, formats):
    for name, text, value in cases(values, formats):
        masked = mask_text(text)
        assert_hidden(text, masked, value)
        assert visible_digits(masked) == value[-2:], (name, text, masked)   # two numbers told apart


def test_nir_is_masked_letters_of_corsica_included():
    for name, text, nir in cases(NIRS, NIR_FORMATS):
        masked = mask_text(text)
        assert_hidden(text, masked, nir)
        assert not re.search(r"(?<![^\W\d_])[AaBb](?![^\W\d_])", masked), (name, text, masked)


def test_iban_keeps_its_country_and_last_two_characters():
    for name, text, iban in cases(IBANS, IBAN_FORMATS):
        masked = mask_text(text)
        assert_hidden(text, masked, iban)
        assert iban[:2] + MASK * 2 in masked and masked.count(MASK) == len(iban) - 4, (name, text, masked)
        assert not re.search(r"[A-Z]{2}", masked.replace(iban[:2] + MASK, "")), (name, text, masked)


def test_bot_read_backs_in_words_are_masked():
    """The bot reads every value back in words (flows/slots.py): that is what its turns hold."""
    for i, (siret, phone) in enumerate(zip(SIRETS, PHONES, strict=True)):
        siren = SIRENS[i]
        for parser, digits, template, slot in (
            ("siret", siret, SIRET_STEP.confirm, "siret"),
            ("siren", siren, SIRET_STEP.confirm, "siret"),
            ("phone", phone, PHONE_STEP.confirm, PHONE_STEP.ask),
        ):
            said = spoken(parser, digits)
            read_back = template.format(**{slot: said})
            for text in (read_back, " ".join(slow_wording([read_back], REPEAT)), CONTEXTS[i % len(CONTEXTS)].format(said)):
                assert_hidden(text, mask_text(text), digits)


def test_callers_dictating_in_words_are_masked():
    for text, digits in [
        ("sept cent trente-deux huit cent vingt-neuf trois cent vingt zéro zéro zéro sept quatre",
         "73282932000074"),
        ("c'est le zéro six douze trente-quatre cinquante-six soixante-dix-huit", "0612345678"),
        ("mon numéro c'est le zéro six 12 34 56 78", "0612345678"),
        ("sept trois deux huit deux neuf trois deux zéro double zéro zéro sept quatre", "73282932000074"),
        ("Zéro Six, Douze, Trente-Quatre, Cinquante-Six, Soixante-Dix-Huit", "0612345678"),
    ]:
        assert_hidden(text, mask_text(text), digits)


EMAILS = [f"{first}{sep}{last}{num}@{domain}"
          for first, last, sep, num, domain in zip(
              ["jean", "marie", "Ahmed", "lea", "o", "paul-henri", "sophie", "k"] * 5,
              ["dupont", "martin", "benali", "nguyen", "durand", "leroy", "moreau", "x"] * 5,
              [".", "_", "", ".", "-", "."] * 7,
              ["", "75", "", "1985", "", "", "06", ""] * 5,
              ["gmail.com", "orange.fr", "free.fr", "laposte.net", "cabinet-dupont.fr", "wanadoo.fr",
               "mail.univ-paris.fr", "yahoo.co.uk"] * 5, strict=False)]


def test_emails_keep_their_first_character_and_tld():
    for i, email in enumerate(EMAILS):
        local, domain = email.split("@")
        tld = domain.rsplit(".", 1)[1]
        for text in (CONTEXTS[i % len(CONTEXTS)].format(email), f"mon adresse {email.upper()} voilà"):
            masked = mask_text(text)
            written = email.upper() if email.upper() in text else email
            assert f"{written[0]}{MASK * 3}@{MASK * 3}.{written.rsplit('.', 1)[1]}" in masked, (text, masked)
            assert local[1:].lower() not in masked.lower() and domain.split(".")[0] not in masked.lower()
        said = f"c'est {local.replace('.', ' point ')} arobase {domain.replace('.', ' point ')} merci"
        masked = mask_text(said)
        assert masked == f"c'est {local[0]}{MASK * 3} arobase {MASK * 3} point {tld} merci", (said, masked)
    assert mask_text("écrivez à jean.dupont @ orange.fr") == f"écrivez à j{MASK * 3} @ {MASK * 3}.fr"


# ------------------------------------------------------------------ what is not masked

INTACT = [
    "Le plafond est de 77 700 € pour une activité de services.",
    "77\u202f700\u00a0€", "12,3 %", "un taux de 12,3 pour cent", "1 200 euros", "1 234,50 euros",
    "le 15 mars 2025", "le 1er mars 2026", "31/03/2026", "2026-03-31", "2024-2025", "39 57",
    "appelez le 39 57 du lundi au vendredi", "3 trimestres", "en 2024", "de 8 h 30 à 17 h",
    "En 2024, 77 700 euros de chiffre d'affaires", "en 2024 77 700 euros", "Je répète : 2024, 2025, 2026.",
    "12 000 000 000 €", "j'ai 3 salariés et 2 établissements", "T2 2025", "article L. 133-6-8",
    "formulaire cerfa 15253*08", "quatre-vingt-dix-sept mille sept cent quatre-vingt-dix-neuf euros",
    "le trente et un mars deux mille vingt-six", "mille deux cent cinquante euros et cinquante centimes",
    "Dites les dix chiffres, deux par deux, par exemple : zéro six, douze, trente-quatre.",
    "mon siret à 14 chiffres", "un numéro neuf", "www.urssaf.fr", "autoentrepreneur.urssaf.fr",
    "MON CODE EST ABCD EFGH IJKL",
]


@pytest.mark.parametrize("text", INTACT)
def test_amounts_dates_and_short_numbers_are_left_alone(text):
    assert mask_text(text) == text


def test_amount_after_an_identifier_is_kept_and_the_identifier_masked():
    assert mask_text("siret 732 829 320 00074 500 €") == f"siret {MASK * 3} {MASK * 3} {MASK * 3} {MASK * 3}74 500 €"


def test_nothing_the_bot_says_of_itself_is_masked():
    """The data's texts (prompts, flows, answers, slow variants) hold no identifier."""
    texts = KNOWLEDGE.fixed_texts() + [p for qt in KNOWLEDGE.question_types.values() for p in qt.phrasings]
    assert len(texts) > 1000
    assert [t for t in texts if mask_text(t) != t] == []


def test_postcodes_are_masked_only_where_asked():
    for i, pc in enumerate(take(lambda r: iter(lambda: f"{r.randint(1, 95):02d}{r.randint(0, 999):03d}", None))):
        for text in (pc, f"c'est le {pc} à Paris", f"{pc[:2]} {pc[2:]}", spaced(pc),
                     postcode_read_back(pc), CONTEXTS[i % len(CONTEXTS)].format(pc)):
            assert mask_text(text) == text
            assert_hidden(text, mask_text(text, postcode=True), pc)
    assert mask_text("77 700 €", postcode=True) == "77 700 €"
    assert mask_text("mon adresse: 12 rue de la Paix 75002 Paris", postcode=True) == \
        f"mon adresse: 12 rue de la Paix {MASK * 3}02 Paris"


def test_mask_digits_is_the_one_the_agent_card_uses():
    from bot.agents import card
    assert card.mask_digits is mask_digits
    assert mask_digits("0612345678") == MASK * 8 + "78" and mask_digits("+33 6 12", 0) == "+•• • ••"


# ------------------------------------------------------------------ a call record

SIRET = SIRETS[0]
SIRET_SAID = f"euh oui c'est le {groups(SIRET, (3, 3, 3, 5))}"


def turn(index: int, speaker: str, text: str, start_ms: int | None = None, end_ms: int | None = None) -> dict:
    return {"index": index, "speaker": speaker, "text": text, "start_ms": start_ms, "end_ms": end_ms,
            "asr_confidence": 0.91 if speaker == "caller" else None, "intent": None, "intent_score": None,
            "stt_ms": None, "dialogue_ms": 120 if speaker == "bot" else None, "tts_ms": None, "total_ms": None}


def postcode_read_back(pc: str) -> str:
    return POSTCODE_STEP.confirm.format(code_postal=spoken("postcode", pc))


def identification_call() -> dict:
    """An identification as the dialogue runs it, with the texts of the flows data."""
    siret_read_back = SIRET_STEP.confirm.format(siret=spoken("siret", SIRET))
    texts = [
        ("bot", " ".join(KNOWLEDGE.greeting())),
        ("caller", "je voudrais savoir combien je dois"),
        ("bot", SIRET_STEP.prompt),
        ("caller", SIRET_SAID),
        ("bot", siret_read_back),
        ("caller", "oui"),
        ("bot", POSTCODE_STEP.prompt),                                               # 6
        ("caller", "75011"),                                                         # 7
        ("bot", postcode_read_back("75011")),                                        # 8
        ("caller", "non c'est 75012"),                                               # 9
        ("bot", f"{KNOWLEDGE.prompts['confirm_denied']} {POSTCODE_STEP.prompt}"),  # 10
        ("caller", "75 012 Paris"),                                                  # 11
        ("bot", postcode_read_back("75012")),                                        # 12
        ("caller", "oui c'est ça"),                                                  # 13
        ("bot", "Merci, vous êtes identifié. Vous avez déclaré 77 700 € en 2024, le 15 mars 2025."),
        ("caller", "et rappelez-moi au 06 12 34 56 78 ou écrivez à jean.dupont@orange.fr"),
        ("agent", "Bonjour, je reprends votre dossier de 2024 : 12 500 euros à régler."),
    ]
    turns = []
    for i, (speaker, text) in enumerate(texts):
        start = 1000 + 5000 * i
        turns.append(turn(i, speaker, text, start, None if speaker == "bot" else start + 3000))
    return {
        "id": "c-7f3a", "channel": "sip", "caller": "+33612345678",
        "started_at": "2026-04-15T09:30:00+02:00", "ended_at": "2026-04-15T09:32:00+02:00",
        "outcome": "completed", "team": "compte", "region": "idf", "recording": "var/rec/c-7f3a.wav",
        "turns": turns,
        "events": [
            {"at_ms": 12_000, "kind": "action", "data": {"name": "action_identify", "ok": True, "identified": True}},
            {"at_ms": 40_000, "kind": "dtmf", "data": {"keys": "75011"}},
            {"at_ms": 41_000, "kind": "dtmf", "data": {"keys": SIRET}},
            {"at_ms": 50_000, "kind": "fallback", "data": {
                "backend": "extractive", "outcome": "answered", "passages": ["plafonds-micro-2"],
                "retrieved": [["plafonds-micro-2", 0.82], ["seuils-tva-1", 0.41]],
                "detail": f"question: mon siret {SIRET} et le plafond de 77 700 €"}},
            {"at_ms": 90_000, "kind": "agent_wrap_up", "data": {
                "note": "Rappeler au 06 12 34 56 78, IBAN FR76 3000 6000 0112 3456 7890 189, NIR 1 85 05 78 006 084 36",
                "tags": ["rappel", f"siret {SIRET}"], "duration_s": 312}},
            {"at_ms": 95_000, "kind": "queue_left", "data": None},
        ],
    }


POSTCODE_TURNS = {7, 8, 9, 11, 12, 13}


def test_postcode_turns_are_the_answers_to_the_postcode_question_and_its_read_back():
    assert postcode_turns(identification_call()) == POSTCODE_TURNS


def test_postcode_turns_follow_retries_keypad_and_slow_speech():
    slow_prompt = " ".join(slow_wording([POSTCODE_STEP.prompt], REPEAT))
    call = {"turns": [
        turn(0, "bot", POSTCODE_STEP.prompt), turn(1, "caller", "euh attendez"),
        turn(2, "bot", POSTCODE_STEP.retry[0]), turn(3, "caller", "sept cinq zéro un un"),
        turn(4, "bot", " ".join(slow_wording([postcode_read_back("75011")], REPEAT))), turn(5, "caller", "non"),
        turn(6, "bot", f"{KNOWLEDGE.prompts['confirm_denied']} {slow_prompt}"), turn(7, "caller", "[touches 7]"),
        turn(8, "bot", POSTCODE_STEP.keypad), turn(9, "caller", "[touches 75012]"),
        turn(10, "bot", "Merci, vous êtes identifié."), turn(11, "caller", "c'est 75013 non je plaisante"),
    ]}
    assert postcode_turns(call) == {1, 3, 4, 5, 7, 9}


def test_postcode_turns_are_none_without_the_postcode_question():
    call = identification_call()
    call["turns"] = call["turns"][:6] + [turn(6, "caller", "j'habite au 75011")]
    assert postcode_turns(call) == set()
    assert postcode_turns({"turns": []}) == set() and postcode_turns({}) == set()


REWORDED = "Donnez-moi le code postal de votre siège social, vous le trouverez sur vos courriers de l'Urssaf."


@pytest.fixture
def reworded_postcode_question(monkeypatch):
    """The identification flow with another postcode question: postcode_turns reads it."""
    steps = tuple(s.model_copy(update={"prompt": REWORDED}) if s.parser == "postcode" else s
                  for s in IDENTIFICATION.steps)
    flows = {**KNOWLEDGE.flows, "identification": IDENTIFICATION.model_copy(update={"steps": steps})}
    monkeypatch.setattr(masking, "load_knowledge", lambda: dataclasses.replace(KNOWLEDGE, flows=flows))
    masking._postcode_step.cache_clear()
    yield
    masking._postcode_step.cache_clear()


def test_postcode_question_comes_from_the_flows_data(reworded_postcode_question):
    slow = slow_wording([REWORDED], REPEAT)
    assert len(slow) == 2 and " ".join(slow) != REWORDED       # slow speech cuts it in two sentences
    call = {"turns": [turn(0, "bot", REWORDED), turn(1, "caller", "75011"),
                      turn(2, "bot", POSTCODE_STEP.prompt), turn(3, "caller", "75012"),
                      turn(4, "bot", " ".join(slow)), turn(5, "caller", "75013"),
                      turn(6, "bot", slow[1]), turn(7, "caller", "75014")]}
    assert postcode_turns(call) == {1, 5}


def test_mask_call_masks_texts_caller_and_event_data():
    call = identification_call()
    masked = mask_call(call)
    texts = {t["index"]: t["text"] for t in masked["turns"]}
    assert texts[3] == f"euh oui c'est le {MASK * 3} {MASK * 3} {MASK * 3} {MASK * 3}{SIRET[-2:]}"
    assert visible_digits(texts[4]) == SIRET[-2:]
    assert texts[7] == f"{MASK * 3}11" and texts[9] == f"non c'est {MASK * 3}12"
    assert texts[11] == f"{MASK * 2} {MASK}12 Paris"
    assert visible_digits(texts[8]) == "11" and visible_digits(texts[12]) == "12" and MASK in texts[12]
    assert texts[14] == call["turns"][14]["text"]                       # amounts, years, dates
    assert texts[15] == f"et rappelez-moi au {MASK * 2} {MASK * 2} {MASK * 2} {MASK * 2} 78 ou écrivez à " \
                        f"j{MASK * 3}@{MASK * 3}.fr"
    assert texts[16] == call["turns"][16]["text"]
    for i in set(range(17)) - {3, 4, 7, 8, 9, 11, 12, 15}:
        assert texts[i] == call["turns"][i]["text"], i
    assert masked["caller"] == f"+{MASK * 9}78"

    events = masked["events"]
    assert events[0] == call["events"][0] and events[5] == call["events"][5]
    assert events[1]["data"] == {"keys": f"{MASK * 3}11"}
    assert events[2]["data"] == {"keys": MASK * 12 + SIRET[-2:]}
    fallback = events[3]["data"]
    assert fallback["passages"] == ["plafonds-micro-2"] and fallback["retrieved"] == call["events"][3]["data"]["retrieved"]
    assert fallback["detail"] == f"question: mon siret {MASK * 12}{SIRET[-2:]} et le plafond de 77 700 €"
    note = events[4]["data"]
    assert note["duration_s"] == 312 and note["tags"] == ["rappel", f"siret {MASK * 12}{SIRET[-2:]}"]
    assert note["note"] == (f"Rappeler au {MASK * 2} {MASK * 2} {MASK * 2} {MASK * 2} 78, "
                            f"IBAN FR{MASK * 2} {' '.join([MASK * 4] * 5)} {MASK}89, "
                            f"NIR {MASK} {MASK * 2} {MASK * 2} {MASK * 2} {MASK * 3} {MASK * 3} 36")


def test_mask_call_keeps_what_is_not_text_and_leaves_its_input_alone():
    call = identification_call()
    before = copy.deepcopy(call)
    masked = mask_call(call)
    assert call == before
    assert masked is not call and masked["turns"] is not call["turns"]
    assert {k: v for k, v in masked.items() if k not in ("caller", "turns", "events")} == \
        {k: v for k, v in call.items() if k not in ("caller", "turns", "events")}
    for m, t in zip(masked["turns"], call["turns"], strict=True):
        assert {k: v for k, v in m.items() if k != "text"} == {k: v for k, v in t.items() if k != "text"}
    assert [(e["at_ms"], e["kind"]) for e in masked["events"]] == [(e["at_ms"], e["kind"]) for e in call["events"]]
    assert mask_call(masked) == masked      # masking twice changes nothing more
    assert mask_call({"id": "x", "caller": None, "turns": [], "events": []})["caller"] is None


# ------------------------------------------------------------------ WebVTT

TIMING = re.compile(r"^(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3}) --> (\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})$")
CUE_TEXT = re.compile(r"^<v (Appelant|Callbot|Conseiller)>(.+)$")


def ms(h: str, m: str, s: str, milli: str) -> int:
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(milli)


def parse_webvtt(text: str) -> list[tuple[int, int, str, str]]:
    """The cues of a WebVTT file as (start, end, voice, text unescaped), checking the
    structure a player needs: the header, a blank line between blocks, one timing line
    per cue, cue text without "-->" nor raw markup, start times in order."""
    assert text.startswith("WEBVTT\n\n"), text[:20]
    cues = []
    for block in text[len("WEBVTT\n\n"):].rstrip("\n").split("\n\n"):
        if not block.strip():
            continue
        lines = block.split("\n")
        assert len(lines) == 3 and "-->" not in lines[0] and lines[0].strip(), block
        timing = TIMING.match(lines[1])
        assert timing, lines[1]
        start, end = ms(*timing.groups()[:4]), ms(*timing.groups()[4:])
        assert start < end, lines[1]
        payload = CUE_TEXT.match(lines[2])
        assert payload and "-->" not in lines[2], lines[2]
        body = payload.group(2)
        assert "<" not in body and ">" not in body and not re.search(r"&(?!amp;|lt;|gt;)", body), body
        cues.append((start, end, payload.group(1),
                     body.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")))
    starts = [c[0] for c in cues]
    assert starts == sorted(starts)
    return cues


def test_webvtt_exports_a_masked_call_as_valid_cues():
    call = mask_call(identification_call())
    cues = parse_webvtt(webvtt(call))
    assert len(cues) == len(call["turns"])
    assert [c[3] for c in cues] == [t["text"] for t in call["turns"]]
    assert [c[2] for c in cues[:3]] == ["Callbot", "Appelant", "Callbot"] and cues[-1][2] == "Conseiller"
    assert cues[0][:2] == (1000, 6000)            # a bot turn without its end: until the next turn
    assert cues[1][:2] == (6000, 9000)
    assert SIRET not in webvtt(call) and groups(SIRET, (3, 3, 3, 5)) not in webvtt(call)
    assert groups(SIRET, (3, 3, 3, 5)) in webvtt(identification_call())   # unmasked when given so


def test_webvtt_skips_untimed_turns_escapes_and_orders_by_time():
    call = {"turns": [
        turn(0, "bot", "Bonjour.", 0),
        turn(1, "caller", "a --> b <i>c</i> & d\n\nnouvelle ligne", 2500, 4000),
        turn(2, "bot", "sans horaire"),
        turn(3, "agent", "C'est noté.", 3_725_004, 3_726_000),
        turn(4, "caller", "interrompt", 3000, 3500),             # barge-in: stored after, said before
        turn(5, "bot", "   ", 3_800_000),
        turn(6, "bot", "Au revoir.", 3_900_000),
    ]}
    vtt = webvtt(call)
    cues = parse_webvtt(vtt)
    assert [c[3] for c in cues] == ["Bonjour.", "a --> b <i>c</i> & d nouvelle ligne", "interrompt", "C'est noté.",
                                    "Au revoir."]
    assert "a --&gt; b &lt;i&gt;c&lt;/i&gt; &amp; d" in vtt and "sans horaire" not in vtt
    assert "01:02:05.004 --> 01:02:06.000" in vtt.splitlines()
    assert cues[0][:2] == (0, 2500) and cues[-1][:2] == (3_900_000, 3_900_000 + masking.LAST_CUE_MS)
    assert webvtt({"turns": []}) == "WEBVTT\n"
