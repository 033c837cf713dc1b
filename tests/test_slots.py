"""flows/slots.py: slot parsers for what callers say (Whisper transcripts, French) and type
on the keypad, and the French read-backs used to confirm them."""

from __future__ import annotations

import random
import re
import time
from datetime import date
from pathlib import Path

import pytest
from num2words import num2words

from flows.identifiers import siret_is_valid
from flows.slots import PARSERS, SlotValue, chunks_for_readback, dictated_digits, parse_keypad, parse_speech

TODAY = date(2026, 4, 15)          # a Wednesday, in the second quarter
SIRET = "73282932000074"           # INSEE's documented example (SIREN 732 829 320, 7th establishment)
LA_POSTE_HEAD_OFFICE = "35600000000048"
ROOT = Path(__file__).resolve().parent.parent


def speech(parser: str, text: str, today: date = TODAY) -> str | None:
    found = parse_speech(parser, text, today=today)
    return None if found is None else found.value


def keypad(parser: str, keys: str, today: date = TODAY) -> str | None:
    found = parse_keypad(parser, keys, today=today)
    return None if found is None else found.value


def luhn_ok(digits: str) -> bool:
    """The Luhn rule, written independently of the module: double every second digit from
    the right, add the digits of the results."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d // 10 + d % 10
    return total % 10 == 0


def with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


def random_siret(rng: random.Random) -> str:
    """SIREN and SIRET both with their Luhn key, as INSEE allots them."""
    while True:
        siren = with_check_digit("".join(rng.choice("0123456789") for _ in range(8)))
        if siren != "356000000":
            return with_check_digit(siren + "".join(rng.choice("0123456789") for _ in range(4)))


def say_group(digits: str) -> str:
    """A group as callers dictate it: leading zeros one by one, then the number in words."""
    zeros = len(digits) - len(digits.lstrip("0"))
    words = ["zéro"] * zeros
    if digits.lstrip("0"):
        words.append(num2words(int(digits), lang="fr"))
    return " ".join(words)


VALID_VALUE = {
    "siret": re.compile(r"[0-9]{14}"),
    "siren": re.compile(r"[0-9]{9}"),
    "postcode": re.compile(r"(0[1-9]|[1-8][0-9]|9[0-5]|97|98)[0-9]{3}"),
    "amount": re.compile(r"(0|[1-9][0-9]*)\.[0-9]{2}"),
    "date": re.compile(r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"),
    "month": re.compile(r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])"),
    "quarter": re.compile(r"(19|20)[0-9]{2}-Q[1-4]"),
    "yes_no": re.compile(r"oui|non"),
    "number": re.compile(r"0|[1-9][0-9]*"),
    "phone": re.compile(r"0[1-79][0-9]{8}"),
    "time_slot": re.compile(r"matin|apres_midi|indifferent"),
}


def assert_valid(parser: str, found: SlotValue | None) -> None:
    if found is None:
        return
    assert isinstance(found, SlotValue)
    assert VALID_VALUE[parser].fullmatch(found.value), (parser, found)
    assert found.spoken and not re.search(r"[0-9]", found.spoken), (parser, found)
    if parser == "siret":
        assert luhn_ok(found.value) or found.value.startswith("356000000")
    if parser == "siren":
        assert luhn_ok(found.value)
    if parser == "date":
        date.fromisoformat(found.value)


def test_parser_names() -> None:
    assert PARSERS == {"siret", "siren", "postcode", "amount", "date", "month", "quarter", "yes_no", "number",
                       "phone", "time_slot"}
    with pytest.raises(ValueError):
        parse_speech("siret_number", "732 829 320 00074", today=TODAY)
    with pytest.raises(ValueError):
        parse_keypad("code", "1234", today=TODAY)


# ---------------------------------------------------------------- SIRET / SIREN

SIRET_SAID = [
    "732 829 320 00074",
    "73282932000074",
    "Euh, alors mon SIRET c'est le 732 829 320 00074.",
    "mon siret c'est le sept cent trente-deux huit cent vingt-neuf trois cent vingt zéro zéro zéro soixante-quatorze",
    "sept cent trente deux, huit cent vingt neuf, trois cent vingt, zéro zéro zéro, soixante quatorze",
    "73 28 29 32 00 00 74",
    "soixante-treize vingt-huit vingt-neuf trente-deux zéro zéro zéro zéro soixante-quatorze",
    "Sept, trois, deux. Huit, deux, neuf. Trois, deux, zéro. Zéro, zéro, zéro, sept, quatre.",
    "sept trois deux huit deux neuf trois deux zéro zéro zéro zéro sept quatre",
    "sept trois deux huit deux neuf trois deux zéro double zéro zéro sept quatre",
    "sept trois deux huit deux neuf trois deux zéro deux fois zéro zéro sept quatre",
    "sept trois deux huit deux neuf trois deux o o o o sept quatre",
    "732-829-320-00074",
    "732.829.320.00074",
    "732/829/320/00074",
    "732829320 00074",
    "attendez je cherche... voilà, 732 829 320, euh, 00074",
    "j'ai un siret qui est le 732 829 320 00074",
    "mon numéro SIRET à 14 chiffres c'est 732 829 320 00074",
    "732 huit cent vingt-neuf 320 zéro zéro zéro 74",
    "sept cent trente-deux, 829, trois cent vingt, 00074, voilà",
    "C'est le 732 829 320 00074, je vous le redis, c'est bien ça.",
]


@pytest.mark.parametrize("text", SIRET_SAID)
def test_siret_said(text: str) -> None:
    found = parse_speech("siret", text, today=TODAY)
    assert found == SlotValue(SIRET, "sept trois deux, huit deux neuf, trois deux zéro, zéro zéro zéro sept quatre")


SIRET_REFUSED = [
    "732 829 320 00075",                              # Luhn check fails: never corrected silently
    "732 829 320 00047",                              # two digits swapped
    "732 829 320 0007",                               # 13 digits
    "732 829 320 000744",                             # 15 digits
    "732 829 320 00074 732 829 320 00074",            # said twice in a row: 28 digits
    "732 829 320 euh non 733 829 320 00074",          # a correction: which one is not ours to guess
    "je ne l'ai pas sous la main",
    "",
    "   ",
    "un instant s'il vous plaît",
    "trois cent vingt",
    "3k",
    "deux mille",
    "sept trois deux huit deux neuf trois deux zéro zéro zéro zéro sept",
]


@pytest.mark.parametrize("text", SIRET_REFUSED)
def test_siret_refused(text: str) -> None:
    assert speech("siret", text) is None


def test_siret_round_trip_in_many_dictation_styles() -> None:
    rng = random.Random(20260415)
    for _ in range(150):
        siret = random_siret(rng)
        groups = [siret[0:3], siret[3:6], siret[6:9], siret[9:14]]
        styles = [
            " ".join(groups),
            ", ".join(say_group(g) for g in groups),       # Whisper writes the pauses as commas
            " ".join(say_group(d) for d in siret),
            ", ".join(say_group(siret[i:i + 2]) for i in range(0, 14, 2)),
            f"euh mon siret c'est le {' '.join(g if i % 2 else say_group(g) for i, g in enumerate(groups))}",
        ]
        for text in styles:
            assert speech("siret", text) == siret, text
        wrong = siret[:-1] + str((int(siret[-1]) + 1) % 10)
        assert not luhn_ok(wrong)
        assert speech("siret", " ".join(wrong[i:i + 3] for i in range(0, 14, 3))) is None


@pytest.mark.parametrize(("text", "expected"), [
    # a unit before "cent" starts the next group unless hyphenated to the tens before it
    ("huit cent soixante-dix sept cent quarante-trois", "870743"),
    ("quatre-vingt-sept cent vingt-deux", "87122"),
    ("vingt deux cent", "20200"),
    ("vingt-deux cent", "22100"),
    # a pause (comma, full stop) ends a group: "quatre, vingt-neuf" is 4 then 29
    ("zéro quatre, vingt-neuf", "0429"),
    ("zéro quatre-vingt-neuf", "089"),
    # "quatre-vingts" with its s ends the number: the s is only written when nothing follows
    ("zéro six quatre-vingts douze", "068012"),
    ("zéro six quatre-vingt-douze", "0692"),
    ("zéro six quatre-vingt douze", "0692"),
    ("quatre-vingts-douze", "92"),
    ("quatre-vingt-quatre vingt", "8420"),
    ("quatre-vingt quatre-vingt", "8080"),
    ("trois cent quatre, cent douze", "304112"),
    ("dix-sept cent", "1700"),
])
def test_group_boundaries(text: str, expected: str) -> None:
    assert dictated_digits(text) == expected


def test_siret_read_back_can_be_parsed_back() -> None:
    rng = random.Random(7)
    for _ in range(50):
        siret = random_siret(rng)
        found = parse_speech("siret", siret, today=TODAY)
        assert found is not None
        assert speech("siret", found.spoken) == siret
        assert found.spoken.count(",") == 3          # SIREN by threes, then the NIC


def test_a_siret_whose_siren_key_is_wrong_is_refused() -> None:
    """A misheard SIRET whose 14 digits pass the Luhn check by chance (one in ten) while
    its SIREN does not: refused at the read-back, as the action server would refuse it."""
    rng = random.Random(11)
    refused = 0
    for _ in range(200):
        siren = "".join(rng.choice("0123456789") for _ in range(9))
        if luhn_ok(siren) or siren == "356000000":
            continue
        siret = with_check_digit(siren + "".join(rng.choice("0123456789") for _ in range(4)))
        assert luhn_ok(siret) and not siret_is_valid(siret)
        assert speech("siret", " ".join(siret[i:i + 3] for i in range(0, 14, 3))) is None
        assert keypad("siret", siret) is None
        refused += 1
    assert refused > 150


def test_the_dialogue_and_the_action_server_share_the_siret_check() -> None:
    import flows.slots

    assert flows.slots.siret_is_valid is siret_is_valid
    for user in ("flows/actions/actions.py", "flows/actions/demo_si/service.py"):
        assert "from flows.identifiers import" in (ROOT / user).read_text(), user
    assert not any("def luhn" in p.read_text() or "def _luhn" in p.read_text()
                   for p in (ROOT / "flows").rglob("*.py") if p.name != "identifiers.py")


def test_la_poste_sirets_use_the_digit_sum_rule() -> None:
    # every La Poste establishment shares SIREN 356000000; INSEE checks their digit sum by 5
    establishment = "35600000000015"
    assert sum(map(int, establishment)) % 5 == 0 and not luhn_ok(establishment)
    assert speech("siret", "356 000 000 00015") == establishment
    assert keypad("siret", establishment) == establishment
    # the head office keeps a Luhn key (its digit sum is 26)
    assert luhn_ok(LA_POSTE_HEAD_OFFICE) and sum(map(int, LA_POSTE_HEAD_OFFICE)) % 5
    assert speech("siret", "trois cent cinquante-six zéro zéro zéro zéro zéro zéro zéro zéro zéro quarante-huit") \
        == LA_POSTE_HEAD_OFFICE
    # another La Poste number that happens to pass Luhn but not the sum rule is refused
    luhn_only = next(s for s in (with_check_digit(f"356000000{n:04d}") for n in range(1, 200))
                     if sum(map(int, s)) % 5 and s != LA_POSTE_HEAD_OFFICE)
    assert speech("siret", luhn_only) is None
    assert keypad("siret", luhn_only) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("732 829 320", "732829320"),
    ("mon siren c'est le sept cent trente-deux huit cent vingt-neuf trois cent vingt", "732829320"),
    ("sept trois deux, huit deux neuf, trois deux zéro", "732829320"),
    ("356 000 000", "356000000"),
    ("732 829 321", None),                # Luhn fails
    ("732 829 32", None),
    ("732 829 320 00074", None),          # a SIRET is not a SIREN
    ("je sais pas", None),
])
def test_siren(text: str, expected: str | None) -> None:
    assert speech("siren", text) == expected


def test_siren_read_back() -> None:
    found = parse_speech("siren", "732829320", today=TODAY)
    assert found is not None and found.spoken == "sept trois deux, huit deux neuf, trois deux zéro"


# ---------------------------------------------------------------- postcodes

@pytest.mark.parametrize(("text", "expected"), [
    ("75011", "75011"),
    ("soixante-quinze zéro onze", "75011"),
    ("soixante quinze mille onze", "75011"),
    ("75 011", "75011"),
    ("sept cinq zéro un un", "75011"),
    ("c'est le treize zéro zéro un", "13001"),
    ("zéro un deux cent trente", "01230"),
    ("01230", "01230"),
    ("vingt mille deux cents", "20200"),                      # Corsica
    ("quatre-vingt-dix-sept quatre cent dix", "97410"),      # La Réunion
    ("98000", "98000"),                                       # Monaco
    ("j'habite 12 rue de la Paix, 75002 Paris", "75002"),
    ("euh attendez, c'est le 69 003", "69003"),
    ("00100", None),
    ("96000", None),
    ("99000", None),
    ("7501", None),
    ("750011", None),
    ("75011 ou 75012", None),
    ("Paris", None),
])
def test_postcode(text: str, expected: str | None) -> None:
    assert speech("postcode", text) == expected


def test_postcode_read_back_is_digit_by_digit() -> None:
    found = parse_speech("postcode", "soixante-quinze zéro onze", today=TODAY)
    assert found == SlotValue("75011", "sept cinq, zéro un un")


# ---------------------------------------------------------------- phone numbers

PHONE = "0612345678"
PHONE_SPOKEN = "zéro six, douze, trente-quatre, cinquante-six, soixante-dix-huit"
PHONE_SAID = [
    "zéro six, douze, trente-quatre, cinquante-six, soixante-dix-huit",
    "Zéro six. Douze. Trente-quatre. Cinquante-six. Soixante-dix-huit.",
    "zéro six douze trente-quatre cinquante-six soixante-dix-huit",
    "zéro six douze trente quatre cinquante six soixante dix huit",
    "06 12 34 56 78",
    "06.12.34.56.78",
    "06-12-34-56-78",
    "0612345678",
    "0 6 1 2 3 4 5 6 7 8",
    "zéro six un deux trois quatre cinq six sept huit",
    "zéro, six, un, deux, trois, quatre, cinq, six, sept, huit",
    "06 douze 34 cinquante-six 78",
    "zéro six 12 trente-quatre 56 soixante-dix-huit",
    "+33 6 12 34 56 78",
    "+33612345678",
    "+33 (0)6 12 34 56 78",
    "+33 06 12 34 56 78",
    "plus trente-trois six douze trente-quatre cinquante-six soixante-dix-huit",
    "plus trente-trois, six, douze, trente-quatre, cinquante-six, soixante-dix-huit",
    "0033 6 12 34 56 78",
    "zéro zéro trente-trois six douze trente-quatre cinquante-six soixante-dix-huit",
    "euh oui alors c'est le 06 12 34 56 78",
    "Mon numéro de portable, c'est le zéro six, douze, trente-quatre, cinquante-six, soixante-dix-huit.",
    "j'ai un portable, c'est le 06 12 34 56 78",
    "vous pouvez me rappeler au 06 12 34 56 78 merci",
    "attendez... voilà, 06 12, euh, 34 56 78",
    "mon numéro à dix chiffres c'est le 06 12 34 56 78",
    "06 12 34 56 78, plutôt après 14 heures",
]


@pytest.mark.parametrize("text", PHONE_SAID)
def test_phone_said(text: str) -> None:
    assert parse_speech("phone", text, today=TODAY) == SlotValue(PHONE, PHONE_SPOKEN)


@pytest.mark.parametrize(("text", "expected"), [
    ("c'est le zéro un quarante-cinq soixante-sept quatre-vingt-neuf douze", "0145678912"),
    ("zéro un, quarante-cinq, soixante-sept, quatre-vingt-neuf, douze", "0145678912"),
    ("01 45 67 89 12", "0145678912"),
    ("zéro quatre, quatre-vingt-onze, zéro zéro, soixante et onze, vingt et un", "0491007121"),
    ("zéro sept double zéro douze trente-quatre cinquante-six", "0700123456"),
    ("zéro neuf soixante-dix-sept quatre-vingts, dix, zéro cinq", "0977801005"),
    ("zéro six quatre-vingts douze trente-quatre zéro zéro", "0680123400"),
    ("05 56 12 34 56", "0556123456"),
    ("03 88 00 00 00", "0388000000"),
    ("02 99 12 34 56", "0299123456"),
    ("07 81 23 45 67", "0781234567"),
    ("09 72 12 34 56", "0972123456"),
    ("plus 33 1 45 67 89 12", "0145678912"),
    ("+33 7 81 23 45 67", "0781234567"),
    # refused: nothing is guessed
    ("06 12 34 56 7", None),                                   # 9 digits
    ("06 12 34 56 78 9", None),                                # 11 digits
    ("zéro six douze trente-quatre cinquante-six", None),      # 8 digits
    ("six douze trente-quatre cinquante-six soixante-dix-huit", None),   # no leading zero
    ("08 00 12 34 56", None),                                  # free or premium: 08 numbers are refused
    ("zéro huit quatre-vingt-dix-neuf, douze, trente-quatre, cinquante-six", None),
    ("08 92 68 02 80", None),
    ("00 12 34 56 78", None),
    ("06 12 34 56 78 ou 07 12 34 56 78", None),                # two numbers
    ("06 12 34 56 78, je répète, 06 12 34 56 78", None),
    ("+32 2 123 45 67", None),                                 # Belgium: not ours to call
    ("plus trente-deux, deux, douze, trente-quatre, cinquante-six", None),
    ("0032 6 12 34 56 78", None),
    ("33 6 12 34 56 78", None),                                # no "plus": the 33 is not a country code
    ("+33 6 12 34 56 7", None),
    ("+33 6 12 34 56 78 9", None),
    ("+33 8 00 12 34 56", None),
    ("3949", None),
    ("je ne connais pas mon numéro par cœur", None),
    ("c'est le même numéro que d'habitude", None),
    ("euh", None),
    ("", None),
    ("06 12 34 56 7a", None),
])
def test_phone(text: str, expected: str | None) -> None:
    assert speech("phone", text) == expected


def test_phone_read_back_is_by_pairs_with_a_spoken_leading_zero() -> None:
    found = parse_keypad("phone", "0145007180", today=TODAY)
    assert found == SlotValue("0145007180", "zéro un, quarante-cinq, zéro zéro, soixante et onze, quatre-vingts")


def test_phone_read_back_round_trip() -> None:
    rng = random.Random(33)
    numbers = [f"0{rng.choice('12345679')}{rng.randrange(10**8):08d}" for _ in range(300)]
    numbers += [f"06{p:02d}{p:02d}{p:02d}{p:02d}" for p in range(100)]      # every pair, read back
    for number in numbers:
        found = parse_keypad("phone", number, today=TODAY)
        assert found is not None, number
        assert found.spoken.count(",") == 4 and not re.search(r"[0-9]", found.spoken)
        assert speech("phone", found.spoken) == number, found.spoken
        assert speech("phone", f"+33 {number[1]} {number[2:]}") == number


# ---------------------------------------------------------------- callback time slots

@pytest.mark.parametrize(("text", "expected"), [
    ("le matin", "matin"),
    ("Le matin.", "matin"),
    ("plutôt le matin", "matin"),
    ("euh plutôt le matin s'il vous plaît", "matin"),
    ("dans la matinée", "matin"),
    ("en matinée", "matin"),
    ("de préférence le matin", "matin"),
    ("le matin de préférence", "matin"),
    ("demain matin", "matin"),
    ("avant midi", "matin"),
    ("plutôt avant midi", "matin"),
    ("avant le déjeuner", "matin"),
    ("en début de journée", "matin"),
    ("vers 10 heures", "matin"),
    ("vers dix heures", "matin"),
    ("avant 11h", "matin"),
    ("entre 10 heures et midi", "matin"),
    ("pas l'après-midi", "matin"),
    ("je ne peux pas l'après-midi, je travaille", "matin"),
    ("l'après-midi", "apres_midi"),
    ("L'après-midi.", "apres_midi"),
    ("plutôt l'après-midi", "apres_midi"),
    ("dans l'après midi", "apres_midi"),
    ("après midi", "apres_midi"),
    ("après-midi", "apres_midi"),
    ("cet après-midi", "apres_midi"),
    ("en début d'après-midi", "apres_midi"),
    ("l'aprèm", "apres_midi"),
    ("après le déjeuner", "apres_midi"),
    ("après déjeuner", "apres_midi"),
    ("après la pause de midi", "apres_midi"),
    ("en fin de journée", "apres_midi"),
    ("vers 15 heures", "apres_midi"),
    ("après 14h", "apres_midi"),
    ("à partir de 14h30", "apres_midi"),
    ("deux heures de l'après-midi", "apres_midi"),
    ("pas le matin", "apres_midi"),
    ("surtout pas le matin", "apres_midi"),
    ("je ne peux pas le matin", "apres_midi"),
    ("pas avant midi", "apres_midi"),
    ("pas le matin, plutôt l'après-midi", "apres_midi"),
    ("n'importe", "indifferent"),
    ("n'importe quand", "indifferent"),
    ("peu importe", "indifferent"),
    ("quand vous voulez", "indifferent"),
    ("comme vous voulez", "indifferent"),
    ("ça m'est égal", "indifferent"),
    ("ça m'est complètement égal", "indifferent"),
    ("les deux me vont", "indifferent"),
    ("pas de préférence", "indifferent"),
    ("je suis disponible toute la journée", "indifferent"),
    ("le matin ou l'après-midi, peu importe", "indifferent"),
    ("peu importe, mais plutôt le matin", "matin"),
    # neither, or both without "peu importe": the engine asks again
    ("le matin ou l'après-midi", None),
    ("matin ou après-midi", None),
    ("ni le matin ni l'après-midi", None),
    ("le matin, enfin non, l'après-midi", None),
    ("entre 10 heures et 15 heures", None),
    ("après 10 heures", None),
    ("avant 15 heures", None),
    ("vers midi", None),
    ("entre midi et deux", None),
    ("le soir", None),
    ("vers deux heures", None),
    ("demain", None),
    ("oui", None),
    ("je ne sais pas", None),
    ("le plus tôt possible", "indifferent"),
    ("", None),
])
def test_time_slot(text: str, expected: str | None) -> None:
    assert speech("time_slot", text) == expected


@pytest.mark.parametrize(("value", "spoken"), [
    ("matin", "le matin"), ("apres_midi", "l'après-midi"), ("indifferent", "dès que possible")])
def test_time_slot_read_back_and_round_trip(value: str, spoken: str) -> None:
    found = parse_speech("time_slot", spoken, today=TODAY)
    assert found == SlotValue(value, spoken)


# ---------------------------------------------------------------- amounts

@pytest.mark.parametrize(("text", "expected"), [
    ("mille deux cent cinquante euros cinquante", "1250.50"),
    ("1 250,50 €", "1250.50"),
    ("1250,50 euros", "1250.50"),
    ("1250 € 50", "1250.50"),
    ("1 250 euros et 50 centimes", "1250.50"),
    ("mille deux cent cinquante euros et cinquante centimes", "1250.50"),
    ("mille deux cent cinquante virgule cinquante", "1250.50"),
    ("deux mille euros", "2000.00"),
    ("euh alors j'ai encaissé deux mille euros", "2000.00"),
    ("1.250 €", "1250.00"),
    ("1.250,50 €", "1250.50"),
    ("1250.5", "1250.50"),
    ("douze cents euros", "1200.00"),
    ("quatre-vingts euros", "80.00"),
    ("quatre-vingt-dix-neuf euros quatre-vingt-dix-neuf", "99.99"),
    ("cent cinquante-trois euros quarante-deux", "153.42"),
    ("septante-cinq euros", "75.00"),
    ("un euro cinquante", "1.50"),
    ("deux euros cinq", "2.05"),
    ("douze virgule cinq", "12.50"),
    ("douze virgule zéro cinq", "12.05"),
    ("cinquante centimes", "0.50"),
    ("zéro euro", "0.00"),
    ("un montant de mille euros", "1000.00"),
    ("3 mille euros", "3000.00"),
    ("1 250 000 €", "1250000.00"),
    ("un million d'euros", "1000000.00"),
    ("deux millions cinq cent mille euros", "2500000.00"),
    ("€1250", "1250.00"),
    ("dix-huit mille sept cents euros", "18700.00"),
    ("3k", None),
    ("trois k", None),
    ("1,250 euros", None),                    # decimal comma with three digits: ambiguous
    ("12 50", None),
    ("entre mille et deux mille euros", None),
    ("j'ai payé 300 euros le 15 mars", None),
    ("virgule cinq", None),
    ("douze virgule cinq cent", None),
    ("je ne sais pas combien", None),
    ("beaucoup trop", None),
    ("", None),
])
def test_amount(text: str, expected: str | None) -> None:
    assert speech("amount", text) == expected


@pytest.mark.parametrize(("value", "spoken"), [
    ("1250.50", "mille deux cent cinquante euros et cinquante centimes"),
    ("2000.00", "deux mille euros"),
    ("1.00", "un euro"),
    ("1.01", "un euro et un centime"),
    ("0.50", "cinquante centimes"),
    ("0.00", "zéro euro"),
    ("80.00", "quatre-vingts euros"),
    ("1000000.00", "un million d'euros"),
    ("2000000.00", "deux millions d'euros"),
    ("1200000.00", "un million deux cent mille euros"),
])
def test_amount_read_back(value: str, spoken: str) -> None:
    euros, cents = value.split(".")
    found = parse_keypad("amount", f"{euros}*{cents}", today=TODAY)
    assert found == SlotValue(value, spoken)
    assert speech("amount", spoken) == value


def test_amount_read_back_round_trip() -> None:
    rng = random.Random(3)
    for _ in range(300):
        cents = rng.choice([rng.randrange(0, 100), rng.randrange(0, 10**6), rng.randrange(0, 10**10)])
        found = parse_keypad("amount", f"{cents // 100}*{cents % 100:02d}", today=TODAY)
        assert found is not None and found.value == f"{cents // 100}.{cents % 100:02d}"
        assert speech("amount", found.spoken) == found.value, found


# ---------------------------------------------------------------- dates

@pytest.mark.parametrize(("text", "expected"), [
    ("le 31 mars", "2026-03-31"),
    ("Le 31 mars.", "2026-03-31"),
    ("trente et un mars deux mille vingt-six", "2026-03-31"),
    ("le trente-et-un mars 2026", "2026-03-31"),
    ("31/03/2026", "2026-03-31"),
    ("31-03-2026", "2026-03-31"),
    ("31.03.2026", "2026-03-31"),
    ("31/03/26", "2026-03-31"),
    ("2026-03-31", "2026-03-31"),
    ("31 03 26", "2026-03-31"),
    ("le trente et un zéro trois deux mille vingt-six", "2026-03-31"),
    ("mardi 31 mars 2026", "2026-03-31"),
    ("euh c'était le 31 mars je crois", "2026-03-31"),
    ("le 31 mars de l'année dernière", "2025-03-31"),
    ("le 31 mars à 14 heures", "2026-03-31"),
    ("hier", "2026-04-14"),
    ("c'était hier", "2026-04-14"),
    ("avant-hier", "2026-04-13"),
    ("aujourd'hui", "2026-04-15"),
    ("demain", "2026-04-16"),
    ("après-demain", "2026-04-17"),
    ("hier, le 14 avril", "2026-04-14"),
    ("lundi dernier", "2026-04-13"),
    ("mercredi dernier", "2026-04-08"),
    ("vendredi prochain", "2026-04-17"),
    ("le premier avril", "2026-04-01"),
    ("le 1er mai", "2026-05-01"),
    ("le un mars", "2026-03-01"),
    ("le 12 décembre", "2025-12-12"),          # nearest: four months ago rather than eight ahead
    ("le 12 octobre", "2026-10-12"),           # nearest: six months ahead rather than six back
    ("le 15", "2026-04-15"),
    ("le trois", "2026-04-03"),
    ("le 31/03/85", "1985-03-31"),
    ("le vingt-neuf février deux mille vingt-huit", "2028-02-29"),
    ("le 14 juillet mille neuf cent quatre-vingt-neuf", "1989-07-14"),
    ("le 14 juillet dix-neuf cent quatre-vingt-neuf", "1989-07-14"),
    ("le 31 février", None),
    ("le 29 février", None),                   # no leap year near enough
    ("le 32 mars", None),
    ("31/13/2026", None),
    ("mars 2026", None),                       # a month, not a date
    ("le 31 mars ou le 1er avril", None),
    ("hier ou avant-hier", None),
    ("hier, le 12 avril", None),               # the two disagree
    ("le 14 juillet 1789", None),              # outside the years accepted
    ("la semaine dernière", None),
    ("je ne sais plus", None),
    ("", None),
])
def test_date(text: str, expected: str | None) -> None:
    assert speech("date", text) == expected


@pytest.mark.parametrize(("today", "text", "expected"), [
    (date(2026, 1, 10), "le 20 décembre", "2025-12-20"),
    (date(2026, 12, 20), "le 5 janvier", "2027-01-05"),
    (date(2026, 1, 31), "le 30", "2026-01-30"),
    (date(2026, 3, 1), "le 31", "2026-01-31"),      # February has no 31st; January's is nearer than March's
    (date(2026, 1, 1), "hier", "2025-12-31"),
    (date(2024, 3, 1), "le 29 février", "2024-02-29"),
])
def test_date_without_year_is_the_nearest(today: date, text: str, expected: str) -> None:
    assert speech("date", text, today) == expected


def test_date_read_back() -> None:
    assert parse_speech("date", "31/03/2026", today=TODAY) == SlotValue(
        "2026-03-31", "le trente et un mars deux mille vingt-six")
    assert parse_speech("date", "1/5/2026", today=TODAY) == SlotValue(
        "2026-05-01", "le premier mai deux mille vingt-six")


def test_date_read_back_round_trip() -> None:
    rng = random.Random(11)
    for _ in range(300):
        day = date.fromordinal(rng.randint(date(1950, 1, 1).toordinal(), date(2060, 12, 31).toordinal()))
        found = parse_keypad("date", day.strftime("%d%m%Y"), today=TODAY)
        assert found is not None and found.value == day.isoformat()
        assert speech("date", found.spoken) == day.isoformat(), found


# ---------------------------------------------------------------- months

@pytest.mark.parametrize(("text", "expected"), [
    ("mars", "2026-03"),
    ("en mars", "2026-03"),
    ("le mois de mars", "2026-03"),
    ("le mois de mars dernier", "2026-03"),
    ("avril dernier", "2025-04"),              # said in April: the previous April
    ("avril prochain", "2027-04"),
    ("en mars 2025", "2025-03"),
    ("mars deux mille vingt-cinq", "2025-03"),
    ("mars de l'année dernière", "2025-03"),
    ("mars de cette année", "2026-03"),
    ("novembre", "2025-11"),
    ("mai", "2026-05"),
    ("octobre", "2025-10"),                    # six months either way: the past one
    ("le mois dernier", "2026-03"),
    ("le mois précédent", "2026-03"),
    ("ce mois-ci", "2026-04"),
    ("le mois prochain", "2026-05"),
    ("03/2026", "2026-03"),
    ("zéro trois deux mille vingt-six", "2026-03"),
    ("le 31 mars", "2026-03"),
    ("août 2024", "2024-08"),
    ("mars ou avril", None),
    ("mars 2026 ou avril", None),
    ("mars dernier 2025", None),               # two years said
    ("3", None),
    ("l'année dernière", None),
    ("je ne sais pas", None),
])
def test_month(text: str, expected: str | None) -> None:
    assert speech("month", text) == expected


def test_month_read_back_and_round_trip() -> None:
    assert parse_speech("month", "mars", today=TODAY) == SlotValue("2026-03", "mars deux mille vingt-six")
    for year in (1999, 2000, 2025, 2026, 2031):
        for month in range(1, 13):
            found = parse_keypad("month", f"{month:02d}{year}", today=TODAY)
            assert found is not None and found.value == f"{year}-{month:02d}"
            assert speech("month", found.spoken) == found.value


@pytest.mark.parametrize(("today", "text", "expected"), [
    (date(2026, 1, 5), "décembre", "2025-12"),
    (date(2026, 1, 5), "décembre dernier", "2025-12"),
    (date(2026, 12, 5), "janvier", "2027-01"),
    (date(2026, 12, 5), "janvier dernier", "2026-01"),
    (date(2026, 1, 5), "le mois dernier", "2025-12"),
    (date(2026, 12, 5), "le mois prochain", "2027-01"),
])
def test_month_across_years(today: date, text: str, expected: str) -> None:
    assert speech("month", text, today) == expected


# ---------------------------------------------------------------- quarters

@pytest.mark.parametrize(("text", "expected"), [
    ("premier trimestre", "2026-Q1"),
    ("le premier trimestre", "2026-Q1"),
    ("le 1er trimestre 2026", "2026-Q1"),
    ("premier trimestre deux mille vingt-six", "2026-Q1"),
    ("le deuxième trimestre", "2026-Q2"),
    ("le second trimestre", "2026-Q2"),
    ("le 2e trimestre", "2026-Q2"),
    ("troisième trimestre", "2026-Q3"),        # the coming one, a quarter ahead
    ("quatrième trimestre", "2025-Q4"),
    ("le 4ème trimestre 2024", "2024-Q4"),
    ("T2 2025", "2025-Q2"),
    ("t4", "2025-Q4"),
    ("Q3", "2026-Q3"),
    ("trimestre 4", "2025-Q4"),
    ("trimestre deux deux mille vingt-cinq", "2025-Q2"),
    ("le trimestre dernier", "2026-Q1"),
    ("le trimestre précédent", "2026-Q1"),
    ("ce trimestre", "2026-Q2"),
    ("le trimestre en cours", "2026-Q2"),
    ("le trimestre prochain", "2026-Q3"),
    ("le dernier trimestre", "2026-Q1"),       # no year: the previous quarter
    ("le dernier trimestre 2025", "2025-Q4"),  # with a year: the fourth
    ("janvier février mars", "2026-Q1"),
    ("euh janvier, février, mars", "2026-Q1"),
    ("de janvier à mars", "2026-Q1"),
    ("avril mai juin 2025", "2025-Q2"),
    ("octobre novembre décembre", "2025-Q4"),
    ("le premier trimestre de l'année dernière", "2025-Q1"),
    ("le deuxième trimestre de cette année", "2026-Q2"),
    ("janvier et mai", None),                  # two quarters
    ("mars", None),                            # one month does not name a quarter
    ("le premier ou le deuxième trimestre", None),
    ("le premier trimestre deux mille vingt-cinq ou deux mille vingt-six", None),
    ("le trimestre dernier 2024", None),
    ("trimestre", None),
    ("je sais pas", None),
])
def test_quarter(text: str, expected: str | None) -> None:
    assert speech("quarter", text) == expected


@pytest.mark.parametrize(("today", "text", "expected"), [
    (date(2026, 2, 1), "quatrième trimestre", "2025-Q4"),
    (date(2026, 2, 1), "troisième trimestre", "2025-Q3"),     # two quarters either way: the past one
    (date(2026, 11, 1), "premier trimestre", "2027-Q1"),
    (date(2026, 1, 10), "le trimestre dernier", "2025-Q4"),
    (date(2026, 11, 10), "le trimestre prochain", "2027-Q1"),
])
def test_quarter_across_years(today: date, text: str, expected: str) -> None:
    assert speech("quarter", text, today) == expected


def test_quarter_read_back_and_round_trip() -> None:
    assert parse_speech("quarter", "T1 2026", today=TODAY) == SlotValue(
        "2026-Q1", "le premier trimestre deux mille vingt-six")
    for year in (1995, 2025, 2026, 2030):
        for q in range(1, 5):
            found = parse_keypad("quarter", f"{q}{year}", today=TODAY)
            assert found is not None and found.value == f"{year}-Q{q}"
            assert speech("quarter", found.spoken) == found.value


# ---------------------------------------------------------------- yes / no

@pytest.mark.parametrize(("text", "expected"), [
    ("oui", "oui"),
    ("Oui.", "oui"),
    ("ouais", "oui"),
    ("Ouais ouais.", "oui"),
    ("euh oui", "oui"),
    ("oui c'est ça", "oui"),
    ("oui c'est bien ça", "oui"),
    ("exactement", "oui"),
    ("Exact.", "oui"),
    ("c'est ça", "oui"),
    ("c'est exact", "oui"),
    ("tout à fait", "oui"),
    ("absolument", "oui"),
    ("bien sûr", "oui"),
    ("d'accord", "oui"),
    ("OK", "oui"),
    ("voilà c'est ça", "oui"),
    ("effectivement", "oui"),
    ("si si", "oui"),
    ("mais si", "oui"),
    ("je confirme", "oui"),
    ("oui merci", "oui"),
    ("non", "non"),
    ("Non.", "non"),
    ("nan", "non"),
    ("non non", "non"),
    ("non merci", "non"),
    ("pas du tout", "non"),
    ("non c'est pas ça", "non"),
    ("ce n'est pas ça", "non"),
    ("c'est pas le bon", "non"),
    ("pas exactement", "non"),
    ("pas tout à fait", "non"),
    ("pas vraiment", "non"),
    ("je ne suis pas d'accord", "non"),
    ("absolument pas", "non"),
    ("c'est faux", "non"),
    ("je ne crois pas", "non"),
    ("euh non je pense pas", "non"),
    ("oui non", None),
    ("oui enfin non", None),
    ("ouais non", None),
    ("non oui", None),
    ("je ne sais pas", None),
    ("peut-être", None),
    ("bonjour", None),
    ("pardon ?", None),
    ("", None),
])
def test_yes_no(text: str, expected: str | None) -> None:
    assert speech("yes_no", text) == expected


# ---------------------------------------------------------------- numbers

@pytest.mark.parametrize(("text", "expected"), [
    ("quatre-vingt-dix-sept", "97"),
    ("quatre vingt dix sept", "97"),
    ("97", "97"),
    ("soixante et onze", "71"),
    ("soixante-et-onze", "71"),
    ("soixante-dix-sept", "77"),
    ("quatre-vingts", "80"),
    ("quatre-vingt-un", "81"),
    ("vingt et un", "21"),
    ("vingt et une", "21"),
    ("septante-cinq", "75"),
    ("huitante-huit", "88"),
    ("octante", "80"),
    ("nonante et un", "91"),
    ("mille neuf cent", "1900"),
    ("dix-neuf cent quatre-vingt-dix", "1990"),
    ("deux cent mille", "200000"),
    ("un million deux cent mille", "1200000"),
    ("cent", "100"),
    ("zéro", "0"),
    ("j'ai trois salariés", "3"),
    ("j'en ai un", "1"),
    ("j'ai un salarié", "1"),
    ("euh douze", "12"),
    ("1 250", "1250"),
    ("deux ou trois", None),
    ("2,5", None),
    ("aucune idée", None),
    ("beaucoup", None),
    ("", None),
])
def test_number(text: str, expected: str | None) -> None:
    assert speech("number", text) == expected


@pytest.mark.parametrize("lang", ["fr", "fr_BE", "fr_CH"])
def test_number_words_round_trip(lang: str) -> None:
    """Every number written by num2words (France, Belgium, Switzerland) reads back."""
    rng = random.Random(lang)
    sample = [*range(1200), *(rng.randrange(0, 10**9) for _ in range(800))]
    for n in sample:
        said = num2words(n, lang=lang)
        assert speech("number", said) == str(n), said
        assert speech("number", said.replace("-", " ")) == str(n), said


def test_number_read_back() -> None:
    assert parse_speech("number", "97", today=TODAY) == SlotValue("97", "quatre-vingt-dix-sept")
    assert parse_keypad("number", "1990", today=TODAY) == SlotValue("1990", "mille neuf cent quatre-vingt-dix")


# ---------------------------------------------------------------- keypad

@pytest.mark.parametrize(("parser", "keys", "expected"), [
    ("siret", SIRET, SIRET),
    ("siret", "73282932000075", None),
    ("siret", "7328293200007", None),
    ("siret", "73282932000074*", None),
    ("siren", "732829320", "732829320"),
    ("siren", "732829321", None),
    ("postcode", "75011", "75011"),
    ("postcode", "97410", "97410"),
    ("postcode", "00100", None),
    ("postcode", "7501", None),
    ("amount", "1250*50", "1250.50"),
    ("amount", "1250*5", "1250.50"),
    ("amount", "1250", "1250.00"),
    ("amount", "0*99", "0.99"),
    ("amount", "1250*", None),
    ("amount", "*50", None),
    ("amount", "12*50*3", None),
    ("amount", "1250*505", None),
    ("date", "31032026", "2026-03-31"),
    ("date", "3103", "2026-03-31"),
    ("date", "1212", "2025-12-12"),
    ("date", "31022026", None),
    ("date", "31132026", None),
    ("date", "310326", None),
    ("date", "31*03", None),
    ("month", "03", "2026-03"),
    ("month", "3", "2026-03"),
    ("month", "11", "2025-11"),
    ("month", "032025", "2025-03"),
    ("month", "13", None),
    ("month", "00", None),
    ("month", "0320", None),
    ("quarter", "1", "2026-Q1"),
    ("quarter", "4", "2026-Q4"),       # a single digit is a quarter of the current year
    ("quarter", "22025", "2025-Q2"),
    ("quarter", "5", None),
    ("quarter", "0", None),
    ("quarter", "52025", None),
    ("quarter", "12", None),
    ("yes_no", "1", "oui"),
    ("yes_no", "2", "non"),
    ("yes_no", "3", None),
    ("yes_no", "12", None),
    ("phone", "0612345678", "0612345678"),
    ("phone", "0145678912", "0145678912"),
    ("phone", "0972123456", "0972123456"),
    ("phone", "0800123456", None),
    ("phone", "0892680280", None),
    ("phone", "0012345678", None),
    ("phone", "612345678", None),
    ("phone", "06123456789", None),
    ("phone", "0033612345678", None),
    ("phone", "06123456*78", None),
    ("time_slot", "1", "matin"),
    ("time_slot", "2", "apres_midi"),
    ("time_slot", "3", "indifferent"),
    ("time_slot", "4", None),
    ("time_slot", "0", None),
    ("time_slot", "12", None),
    ("number", "97", "97"),
    ("number", "007", "7"),
    ("number", "9*7", None),
    ("number", "*", None),
])
def test_keypad(parser: str, keys: str, expected: str | None) -> None:
    assert keypad(parser, keys) == expected


@pytest.mark.parametrize("keys", ["", " ", "#", "12#", "A1", "١٢", "１２", "1 2", "-5", "1.5", "1" * 100])
def test_keypad_refuses_anything_but_digits_and_star(keys: str) -> None:
    for parser in PARSERS:
        assert parse_keypad(parser, keys, today=TODAY) is None, (parser, keys)


# ---------------------------------------------------------------- read-back chunks

def test_chunks_for_readback() -> None:
    assert chunks_for_readback("732829320") == ["sept trois deux", "huit deux neuf", "trois deux zéro"]
    assert chunks_for_readback(SIRET) == ["sept trois deux", "huit deux neuf", "trois deux zéro",
                                          "zéro zéro zéro", "sept quatre"]
    assert chunks_for_readback("7501", size=2) == ["sept cinq", "zéro un"]
    assert chunks_for_readback("1234", size=3) == ["un deux trois quatre"]   # no lone last digit
    assert chunks_for_readback("12 34-5") == ["un deux trois", "quatre cinq"]
    assert chunks_for_readback("") == []
    assert chunks_for_readback("123", size=0) == ["un", "deux", "trois"]


# ---------------------------------------------------------------- robustness

def test_text_beyond_500_characters_is_ignored() -> None:
    assert speech("siret", "732 829 320 00074 " + "blabla " * 200_000) == SIRET
    assert speech("siret", "a" * 600 + " 732 829 320 00074") is None
    start = time.perf_counter()
    for parser in PARSERS:
        parse_speech(parser, "sept cent " * 500_000, today=TODAY)
    assert time.perf_counter() - start < 2.0


def test_not_a_string_is_nothing() -> None:
    for parser in PARSERS:
        assert parse_speech(parser, None, today=TODAY) is None        # type: ignore[arg-type]
        assert parse_keypad(parser, 1234, today=TODAY) is None        # type: ignore[arg-type]


FUZZ_WORDS = ("un une deux trois quatre cinq six sept huit neuf dix onze seize dix-sept vingt vingts trente "
              "soixante septante huitante nonante quatre-vingt quatre-vingts cent cents mille mil million "
              "milliards zéro o double triple fois et euros centimes virgule k mars février août trimestre "
              "premier 1er 2e dernier prochain hier demain aujourd'hui avant-hier lundi le de l'année mois ce "
              "oui non pas si , . / - € 1 12 123 2026 00074 1,5 1.250 t q chiffres heures + plus 33 0033 06 "
              "08 matin matinée après-midi l'après-midi avant après midi déjeuner importe égal 14h")


@pytest.mark.parametrize("seed", range(6))
def test_fuzz_returns_none_or_a_valid_value(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = [chr(c) for c in range(0x20, 0x2FFF)] + list("0123456789 ,.-/€*'") \
        + ["\ud800", "\U0001F600", "\U0001D7D9", "\uFDFA", "\u0130", "１", "٣", "²", "ᵉʳ"]
    texts = ["", " ", "...", "?!,;:", "€€€", "////", "----", "0" * 5000, "\x00\n\t", "\u202f\u00a0"]
    for _ in range(150):
        texts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400))))
        texts.append(" ".join(rng.choice(FUZZ_WORDS.split()) for _ in range(rng.randint(0, 30))))
        texts.append("".join(rng.choice("0123456789 .,/-€*") for _ in range(rng.randint(0, 60))))
    worst = 0.0
    for text in texts:
        today = date(rng.randint(1901, 2098), rng.randint(1, 12), rng.randint(1, 28))
        keys = "".join(rng.choice("0123456789*#") for _ in range(rng.randint(0, 20)))
        for parser in PARSERS:
            start = time.perf_counter()
            assert_valid(parser, parse_speech(parser, text, today=today))
            assert_valid(parser, parse_keypad(parser, keys, today=today))
            worst = max(worst, time.perf_counter() - start)
    assert worst < 0.5


def test_every_value_found_in_the_tables_is_well_formed() -> None:
    tables = {"siret": SIRET_SAID, "amount": ["1 250,50 €", "cinquante centimes"],
              "date": ["hier", "le 31 mars"], "month": ["mars"], "quarter": ["T2 2025"],
              "yes_no": ["oui", "non"], "number": ["97"], "postcode": ["75011"], "siren": ["732 829 320"],
              "phone": PHONE_SAID, "time_slot": ["le matin", "l'après-midi", "peu importe"]}
    for parser, texts in tables.items():
        for text in texts:
            found = parse_speech(parser, text, today=TODAY)
            assert found is not None
            assert_valid(parser, found)
