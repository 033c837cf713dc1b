"""Slot parsers: what a caller says (a Whisper transcript, in French) or types on the phone
keypad, turned into a canonical value and a French read-back for the confirmation.

    parse_speech(parser, text, today=...) -> SlotValue | None
    parse_keypad(parser, keys, today=...) -> SlotValue | None

`None` means "nothing valid was found": the engine re-prompts. Neither function raises on
any text or keys (only an unknown parser name, a programming error the data loader catches,
raises ValueError). Only the first 500 characters of a transcript are read. Nothing is
guessed: a SIRET with a digit too many, or one failing its check digit, is `None`, never a
"corrected" number.

Canonical values and read-backs (`SlotValue.spoken` is words only, never digits, so the
synthetic voice never reads "732" as "sept cent trente-deux" when digits were meant; commas
mark the pauses between chunks):

| parser    | value            | spoken                                                        |
| --------- | ---------------- | ------------------------------------------------------------- |
| siret     | "73282932000074" | "sept trois deux, huit deux neuf, trois deux zéro, zéro zéro zéro sept quatre" |
| siren     | "732829320"      | "sept trois deux, huit deux neuf, trois deux zéro"            |
| postcode  | "75011"          | "sept cinq, zéro un un"                                       |
| phone     | "0612345678"     | "zéro six, douze, trente-quatre, cinquante-six, soixante-dix-huit" |
| amount    | "1250.50"        | "mille deux cent cinquante euros et cinquante centimes"       |
| date      | "2026-03-31"     | "le trente et un mars deux mille vingt-six"                   |
| month     | "2026-03"        | "mars deux mille vingt-six"                                   |
| quarter   | "2026-Q1"        | "le premier trimestre deux mille vingt-six"                   |
| yes_no    | "oui" / "non"    | "oui" / "non"                                                 |
| number    | "97"             | "quatre-vingt-dix-sept"                                       |
| time_slot | "matin"          | "le matin" ("apres_midi": "l'après-midi", "indifferent": "dès que possible") |

Read-back choices:
- SIRET: the SIREN by threes then the 5-digit NIC, the grouping printed on Urssaf and INSEE
  documents ("732 829 320 00074"), so a caller reading from paper follows along.
- Postcode: digit by digit, department then the rest ("sept cinq, zéro un un"). For an older
  caller on a phone line, one short word per digit is the clearest: "soixante-quinze" /
  "soixante-cinq" or "quatre-vingt-dix-sept" are long compounds that are easy to mishear, and
  the caller checks each digit against the written code, as for the SIRET.
- Phone: by pairs, the way French numbers are printed and said ("06 12 34 56 78"), each pair
  one number in words and a pair starting with 0 said "zéro" then its digit ("zéro six",
  "zéro zéro"): callers say their own number this way and recognise it at once.
- Amounts always carry two decimals in the value ("2000.00"); the read-back omits zero cents.

Checks (flows/identifiers.py, the one shared with the action server): a SIRET's SIREN and
its 14 digits both pass the Luhn check, except La Poste's (SIREN 356000000), whose digit sum
is a multiple of 5 instead (its head office, 356 000 000 00048, keeps a Luhn key); a SIREN
is 9 digits passing the Luhn check.

Speech (Whisper output):
- Numbers in digits or in French words, hyphenated or not: "quatre-vingt-dix-sept",
  "soixante et onze", "mille neuf cent", "septante", "huitante"/"octante", "nonante",
  colloquial hundreds ("douze cents" = 1200, "dix-neuf cent quatre-vingt-dix" = 1990).
- Codes (siret, siren, postcode) are dictated in groups, the digits of all groups are joined:
  "732 829 320 00074", "73 28 29 32 00 00 74", "sept cent trente-deux huit cent vingt-neuf
  ...", mixtures of digits and words, separators ". - , /". Each group in words keeps its
  value ("sept cent trente-deux" = 732); a pause Whisper wrote as punctuation ends a group
  ("quatre, vingt-neuf" is 4 then 29, "quatre-vingt-neuf" is 89); a unit before "cent" starts
  a new group unless hyphenated to the tens before it ("soixante-dix sept cent" is 70 then
  700, "quatre-vingt-sept cent" is 87 then 100); "zéro" is always one digit; "double zéro" and
  "triple sept" repeat a digit, as does "deux fois zéro"; "o" is a zero when next to other
  digits. A number followed by "chiffres" ("mon siret à 14 chiffres") is not part of the code.
  "un" is read as the article, not a digit, when a word that is not a number follows it
  ("j'ai un siret c'est ..."). "quatre-vingts" with its plural s ends a number, as the s is
  only written when nothing follows ("quatre-vingts douze" is 80 then 12, "quatre-vingt-douze"
  is 92), and a "quatre" hyphenated to the tens before it ends that number
  ("quatre-vingt-quatre vingt" is 84 then 20).
- Words around the value are ignored ("euh alors c'est le", "mon siret c'est", "attendez").
- Postcode: the digits said must be exactly 5; in a longer answer (a full address) a single
  5-digit group is taken. It must start with 01-95, 97 or 98.
- Phone: dictated as the codes are, in pairs or digit by digit, words and digits mixed ("zéro
  six, douze, trente-quatre ...", "06 12 34 56 78", "c'est le zéro un 45 ..."); the digits
  said must be exactly 10, a 0 then 1-7 or 9 (geographic, mobile and VoIP numbers; never 08,
  whose premium-rate calls the organisation pays). "+33", "plus trente-trois" (the "plus" just
  before the first group) or "00 33" stand for the leading 0, with or without it after them
  ("+33 6 12 ...", "+33 (0)6 12 ..."). Another country code, "33 6 12 ..." without "plus", 9
  or 11 digits, or two numbers said: None. A time of day ("après 14 heures") is not part of
  the number.
- Amount: "1 250,50 €", "1250,50 euros", "1.250 €", "mille deux cent cinquante euros
  cinquante", "... euros et cinquante centimes", "deux mille euros", "douze virgule cinq",
  "cinquante centimes". A decimal comma followed by 3 digits ("1,250") is ambiguous: None.
  "3k" and other shorthand: None. More than one amount in the answer: None.
- Date: "le 31 mars", "le premier avril", "trente et un mars deux mille vingt-six",
  "31/03/2026", "31-03-26", "2026-03-31", "hier", "avant-hier", "aujourd'hui", "demain",
  "lundi dernier", "vendredi prochain", "le 15" (a day alone), "le 31 mars de l'année
  dernière". Without a year, a day and month resolve to the nearest such date (in the past
  or the future, the past one on a tie); a day alone resolves to the nearest month having
  that day. Two-digit years are 20xx unless that is more than 20 years ahead (then 19xx).
  Impossible dates (31 février) and answers naming two dates: None. A time of day ("à 14
  heures") is ignored.
- Month: "mars", "en mars 2025", "le mois de mars dernier" (the latest March before the
  current month), "mars prochain", "le mois dernier", "ce mois-ci", "03/2026". A month
  without a year resolves to the nearest one (the past one on a tie).
- Quarter: "premier trimestre", "T2 2025", "le 3e trimestre", "trimestre 4", "le trimestre
  dernier" (the previous quarter), "ce trimestre", "janvier février mars", "d'avril à juin"
  (two months or more, all in one quarter), "le premier trimestre de l'année dernière".
  "Le dernier trimestre" is the fourth one when a year is said, the previous quarter
  otherwise. Without a year, the nearest such quarter (the past one on a tie).
- Year words shared by date, month and quarter: "cette année", "l'année dernière", "l'an
  dernier", "l'année prochaine".
- yes_no: "oui", "ouais", "exactement", "c'est ça", "tout à fait", "d'accord", "voilà",
  "si" ... / "non", "pas du tout", "non c'est pas ça", "pas exactement", "je ne crois pas"
  ...; an answer holding both ("oui non", "oui enfin non") is None.
- Number: one integer ("quatre-vingt-dix-sept", "97", "1 250", "j'ai trois salariés");
  an answer with two numbers ("deux ou trois") is None.
- Time slot (when to call the caller back): "le matin", "dans la matinée", "avant midi",
  "avant le déjeuner", "vers 10 heures", "avant 11h" -> "matin"; "l'après-midi", "l'aprèm",
  "après midi", "après le déjeuner", "en fin de journée", "vers 15 heures", "à partir de 14h"
  -> "apres_midi"; "n'importe", "peu importe", "quand vous voulez", "ça m'est égal", "les
  deux", "pas de préférence", "toute la journée" -> "indifferent". A negation just before
  names the other slot ("pas le matin", "je ne peux pas l'après-midi", "pas avant midi").
  Hours from 7 to 11 are the morning, 13 to 19 the afternoon; an hour spanning both ("après
  10 heures", "avant 15 heures", "vers midi") or a negated hour names neither. One slot with
  "peu importe" is that slot; both slots named ("le matin ou l'après-midi") are None unless
  the answer says either will do ("..., peu importe"). "Le soir" is None: no one calls then.

Keypad (digits only, the final '#' already removed by the engine; '*' is only the decimal
separator of amounts and is invalid elsewhere):
- siret: 14 digits; siren: 9 digits; postcode: 5 digits; phone: 10 digits, no country code
  (same checks as speech).
- amount: euros, optionally '*' and 1 or 2 digits of cents: "1250*50" = 1250.50,
  "1250*5" = 1250.50, "1250" = 1250.00.
- date: DDMMYYYY, or DDMM (year resolved as for speech: the nearest such date).
- month: MM (1 or 2 digits, nearest such month) or MMYYYY.
- quarter: 1 to 4 (a quarter of the current year), or the quarter then the year: "12026".
- yes_no: 1 = oui, 2 = non.
- number: digits.
- time_slot: 1 = matin, 2 = apres_midi, 3 = indifferent.

Years are accepted from 1900 to 2099.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from num2words import num2words

from flows.identifiers import siren_is_valid, siret_is_valid

__all__ = ["PARSERS", "SlotValue", "chunks_for_readback", "parse_keypad", "parse_speech"]

MAX_CHARS = 500          # a slot answer is a few words; anything longer is cut, bounding the work
MAX_KEYS = 32
MIN_YEAR, MAX_YEAR = 1900, 2099
MAX_AMOUNT_EUROS = 10**12
MAX_NUMBER = 10**15


@dataclass(frozen=True)
class SlotValue:
    value: str    # canonical value
    spoken: str   # French read-back for the confirmation, words only


# --------------------------------------------------------------------------- text

_DIGIT_WORDS = ("zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf")
_MONTH_NAMES = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
                "septembre", "octobre", "novembre", "décembre")
_QUARTER_ORDINALS = ("premier", "deuxième", "troisième", "quatrième")

_TOKEN_RE = re.compile(r"[0-9]+[a-z]*|[a-z]+|[,;:.!?/]+")
PAUSE = "|"   # Whisper's punctuation marks the caller's pauses: "quatre, vingt-neuf" is 4 then 29
_DIGITS_RE = re.compile(r"[0-9]+")


def _fold(text: str) -> str:
    """Lowercase, accents removed, punctuation kept (amounts and dates need it)."""
    text = text[:MAX_CHARS].replace("€", " euros ")
    # NFKD also maps look-alikes ("１", "²", "ᵉʳ") to ASCII; it can expand a character, so cut again.
    text = unicodedata.normalize("NFKD", text)[: 4 * MAX_CHARS]
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


class _Glued(str):
    """A token written joined to the previous one by a hyphen ("quatre-vingt-sept"):
    certainly part of the same number."""


def _tokens(folded: str) -> list[str]:
    out: list[str] = []
    last_end = -2
    for m in _TOKEN_RE.finditer(folded):
        t = m.group()
        if t[0] in ",;:.!?/":
            if out and out[-1] != PAUSE:
                out.append(PAUSE)
        elif m.start() == last_end + 1 and folded[last_end] == "-":
            out.append(_Glued(t))
        else:
            out.append(t)
        last_end = m.end()
    return out


def _words(n: int) -> str:
    return num2words(n, lang="fr")


def _spell(digits: str) -> str:
    return " ".join(_DIGIT_WORDS[int(d)] for d in digits)


def chunks_for_readback(digits: str, size: int = 3) -> list[str]:
    """The digits of `digits` (anything else is skipped) spelled in words, `size` digits a
    chunk: "73282932000074" -> ["sept trois deux", "huit deux neuf", ..., "sept quatre"].
    A lone last digit joins the chunk before it: a one-word chunk is easily missed."""
    ds = "".join(c for c in str(digits)[:MAX_CHARS] if "0" <= c <= "9")
    size = max(1, int(size))
    parts = [ds[i:i + size] for i in range(0, len(ds), size)]
    if len(parts) > 1 and len(parts[-1]) == 1 and size > 1:
        parts[-2:] = [parts[-2] + parts[-1]]
    return [_spell(p) for p in parts]


# ------------------------------------------------------------------ number words

_UNITS = {"un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6, "sept": 7,
          "huit": 8, "neuf": 9}
_TEENS = {"dix": 10, "onze": 11, "douze": 12, "treize": 13, "quatorze": 14, "quinze": 15, "seize": 16}
_TENS = {"vingt": 20, "vingts": 20, "trente": 30, "quarante": 40, "cinquante": 50, "soixante": 60,
         "septante": 70, "huitante": 80, "octante": 80, "nonante": 90}
_HUNDRED = frozenset({"cent", "cents"})
_SCALES = {"mille": 1000, "mil": 1000, "million": 10**6, "millions": 10**6,
           "milliard": 10**9, "milliards": 10**9}
_STARTS = frozenset(_UNITS) | frozenset(_TEENS) | frozenset(_TENS) | _HUNDRED | {"mille", "mil"}
_NUMBER_WORDS = _STARTS | frozenset(_SCALES) | {"zero"}
_REPEAT = {"double": 2, "triple": 3}


def mentions_number(normalized: str) -> bool:
    """Whether a normalised transcript holds a number, in digits or words ("un"/"une"
    aside: they are articles far more often)."""
    return any(c.isdigit() for c in normalized) or any(
        w in _NUMBER_WORDS and w not in ("un", "une") for w in normalized.split())

_WRITTEN_FIGURE = re.compile(r"\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?:,\d+)?|\d+(?:,\d+)?")


def figures(text: str) -> set[str]:
    """Every figure of a text, written ("5 000", "6,45 %", "2026") or in words ("cinq mille",
    "trente jours"), as canonical decimal strings ("5000", "6.45"): what the fallback's
    guard compares between a generated answer and its passages. "un"/"une" before a word
    are articles, not figures."""
    text = re.sub(r"\bpour ?cent\b", "%", text[: 20 * MAX_CHARS], flags=re.IGNORECASE)
    written = [m.group() for m in _WRITTEN_FIGURE.finditer(text)]
    out = {_canonical(w) for w in written}
    rest = _WRITTEN_FIGURE.sub(" ", text)
    folded = "".join(c for c in unicodedata.normalize("NFKD", rest) if not unicodedata.combining(c)).lower()
    out.update(_canonical(g.digits) for g in _groups(_tokens(folded)) if g.words)
    return out


def _canonical(figure: str) -> str:
    whole, _, decimals = re.sub(r"[ \u00a0\u202f]", "", figure).partition(",")
    whole = whole.lstrip("0") or "0"
    decimals = decimals.rstrip("0")
    return f"{whole}.{decimals}" if decimals else whole


_FILLERS = frozenset({"euh", "heu", "euhh", "hum", "hm", "hmm", "mh", "ben", "bah", "bon", "alors",
                      "donc", "voila", "enfin", "attendez", "attends", "pardon", "ah", "oh", "eh", "et",
                      "puis", "pis", "_", PAUSE})
_MONTHS = {"janvier": 1, "fevrier": 2, "mars": 3, "avril": 4, "mai": 5, "juin": 6, "juillet": 7,
           "aout": 8, "septembre": 9, "octobre": 10, "novembre": 11, "decembre": 12}
# After these, "un" is still a number: "un euro", "le un mars".
_UN_FOLLOWERS = frozenset({"euro", "euros", "centime", "centimes", "virgule", "fois", "million",
                           "milliard", "chiffre", "heure", "heures"}) | frozenset(_MONTHS)


def _tok(tokens: list[str], i: int) -> str:
    return tokens[i] if 0 <= i < len(tokens) else ""


def _is_digits(t: str) -> bool:
    return _DIGITS_RE.fullmatch(t) is not None


def _numberish(t: str) -> bool:
    return _is_digits(t) or t in _NUMBER_WORDS or t in _REPEAT


def _before_cent(tokens: list[str], i: int) -> bool:
    """Token i is a unit that starts the next group rather than ends this one: followed by
    "cent" and not hyphenated to what precedes ("soixante-dix sept cent" is 70 then 700,
    "quatre-vingt-sept cent" is 87 then 100)."""
    return _tok(tokens, i + 1) in _HUNDRED and not isinstance(tokens[i], _Glued)


def _teen(tokens: list[str], i: int, *, tail: bool = False) -> tuple[int, int] | None:
    """10-19 at token i; `tail`: the end of a longer number, where "sept cent" after "dix"
    starts the next group ("soixante-dix sept cent" is 70 then 700)."""
    t = _tok(tokens, i)
    if t not in _TEENS:
        return None
    if t == "dix" and _tok(tokens, i + 1) in ("sept", "huit", "neuf") and not (tail and _before_cent(tokens, i + 1)):
        return 10 + _UNITS[tokens[i + 1]], i + 2
    return _TEENS[t], i + 1


def _after_tens(tokens: list[str], base: int, j: int, *, teens: bool) -> tuple[int, int]:
    t = _tok(tokens, j)
    if t == "et":
        nxt = _tok(tokens, j + 1)
        if nxt in ("un", "une"):
            return base + 1, j + 2
        if nxt == "onze" and base == 60:
            return 71, j + 2
        return base, j
    if teens and t in _TEENS and not _before_cent(tokens, j):
        r = _teen(tokens, j, tail=True)
        if r is not None:
            return base + r[0], r[1]
    # a unit followed by "cent" starts the next group: "vingt deux cent" is 20 then 200; so does
    # "quatre vingt", unless hyphenated to the tens ("quatre-vingt-quatre vingt" is 84 then 20)
    if t in _UNITS and not (t == "quatre" and _tok(tokens, j + 1) in ("vingt", "vingts")
                            and not isinstance(t, _Glued)) \
            and not _before_cent(tokens, j):
        return base + _UNITS[t], j + 1
    return base, j


def _below_100(tokens: list[str], i: int) -> tuple[int, int] | None:
    t = _tok(tokens, i)
    if t in _TEENS:
        return _teen(tokens, i)
    if t in _UNITS:
        if t == "quatre" and _tok(tokens, i + 1) in ("vingt", "vingts"):
            # the plural s is written only when nothing follows: "quatre-vingts, douze" is 80 then 12
            if tokens[i + 1] == "vingts" and not isinstance(_tok(tokens, i + 2), _Glued):
                return 80, i + 2
            return _after_tens(tokens, 80, i + 2, teens=True)
        return _UNITS[t], i + 1
    if t in _TENS:
        base = _TENS[t]
        return _after_tens(tokens, base, i + 1, teens=base == 60)
    return None


def _below_1000(tokens: list[str], i: int, *, colloquial: bool) -> tuple[int, int] | None:
    """A number under a thousand; `colloquial` also takes "douze cents" (1200)."""
    if _tok(tokens, i) in _HUNDRED:
        value, j = 100, i + 1
    else:
        r = _below_100(tokens, i)
        if r is None:
            return None
        value, j = r
        if not (_tok(tokens, j) in _HUNDRED and (2 <= value <= 9 or (colloquial and 11 <= value <= 19))):
            return value, j
        value, j = value * 100, j + 1
    r = _below_100(tokens, j)
    if r is not None:
        value, j = value + r[0], r[1]
    return value, j


def _number(tokens: list[str], i: int) -> tuple[int, int] | None:
    """The longest French number starting at token i (digits allowed before a scale word:
    "3 mille"), as (value, index after it)."""
    total, limit, j, consumed = 0, MAX_AMOUNT_EUROS, i, False
    while True:
        t = _tok(tokens, j)
        part: tuple[int, int] | None = None
        if _is_digits(t) and len(t) <= 3 and (_tok(tokens, j + 1) in _SCALES or (consumed and limit > 1)):
            part = int(t), j + 1
        else:
            part = _below_1000(tokens, j, colloquial=not consumed)
        value, k = part if part is not None else (None, j)
        scale = _SCALES.get(_tok(tokens, k))
        if scale is not None and scale < limit and (value is not None or scale == 1000) \
                and (value is None or value < 1000):
            total += (1 if value is None else value) * scale
            limit, j, consumed = scale, k + 1, True
            continue
        if value is not None and (not consumed or value < limit):
            total, j, consumed = total + value, k, True
        break
    return (total, j) if consumed else None


@dataclass(frozen=True)
class _Group:
    digits: str       # the digits as said: "00074" for a digit group, str(value) for words
    start: int        # token span
    end: int
    words: bool

    @property
    def value(self) -> int | None:
        return int(self.digits) if len(self.digits) <= 18 else None


def _next_content(tokens: list[str], i: int, step: int) -> str:
    i += step
    while 0 <= i < len(tokens) and tokens[i] in _FILLERS:
        i += step
    return _tok(tokens, i)


def _un_is_number(tokens: list[str], i: int) -> bool:
    if tokens[i] == "une":   # "une" is an article in every answer a code or date is asked for
        return False
    nxt, prev = _next_content(tokens, i, 1), _next_content(tokens, i, -1)
    return nxt == "" or _numberish(nxt) or nxt in _UN_FOLLOWERS or _numberish(prev) or nxt == "o"


def _o_is_zero(tokens: list[str], i: int) -> bool:
    """"o" said for zero ("deux o o sept"): only within a run of "o" that touches a number."""
    for step in (-1, 1):
        j = i + step
        while _tok(tokens, j) == "o":
            j += step
        if _numberish(_tok(tokens, j)):
            return True
    return False


def _groups(tokens: list[str], *, article: bool = True) -> list[_Group]:
    """The numbers in a token list, in order. `article`: "un" before a word is the article."""
    out: list[_Group] = []
    i, n = 0, len(tokens)
    while i < n:
        t = tokens[i]
        if _is_digits(t):
            r = _number(tokens, i) if len(t) <= 3 and _tok(tokens, i + 1) in _SCALES else None
            if r is not None:
                out.append(_Group(str(r[0]), i, r[1], True))
                i = r[1]
            else:
                out.append(_Group(t, i, i + 1, False))
                i += 1
            continue
        if t == "zero" or (t == "o" and _o_is_zero(tokens, i)):
            out.append(_Group("0", i, i + 1, True))
            i += 1
            continue
        if t in _STARTS and not (article and t in ("un", "une") and not _un_is_number(tokens, i)):
            r = _number(tokens, i)
            if r is not None:
                out.append(_Group(str(r[0]), i, r[1], True))
                i = r[1]
                continue
        i += 1
    return _repeats(tokens, out)


def _repeats(tokens: list[str], groups: list[_Group]) -> list[_Group]:
    """"double zéro" -> 00, "triple sept" -> 777, "deux fois zéro" -> 00."""
    out: list[_Group] = []
    for g in groups:
        if len(g.digits) == 1:
            times = _REPEAT.get(_tok(tokens, g.start - 1))
            if times:
                out.append(_Group(g.digits * times, g.start - 1, g.end, True))
                continue
            prev = out[-1] if out else None
            if prev is not None and _tok(tokens, g.start - 1) == "fois" and prev.end == g.start - 1 \
                    and prev.digits in ("2", "3"):
                out[-1] = _Group(g.digits * int(prev.digits), prev.start, g.end, True)
                continue
        out.append(g)
    return out


def _dictated_groups(tokens: list[str]) -> list[_Group]:
    """The groups of a dictated code; a count of digits ("à 14 chiffres") is skipped."""
    return [g for g in _groups(tokens) if _next_content(tokens, g.end - 1, 1) not in ("chiffre", "chiffres")]


def dictated_digits(text: str) -> str:
    """All the digits dictated in `text`, groups joined."""
    return "".join(g.digits for g in _dictated_groups(_tokens(_fold(text))))[:64]


# ------------------------------------------------------------------ codes

def _siret(d: str) -> SlotValue | None:
    if not siret_is_valid(d):
        return None
    return SlotValue(d, ", ".join([*chunks_for_readback(d[:9]), _spell(d[9:])]))


def _siren(d: str) -> SlotValue | None:
    return SlotValue(d, ", ".join(chunks_for_readback(d))) if siren_is_valid(d) else None


def _postcode(d: str) -> SlotValue | None:
    if len(d) != 5 or not d.isascii() or not d.isdigit():
        return None
    if not (1 <= int(d[:2]) <= 95 or d[:2] in ("97", "98")):
        return None
    return SlotValue(d, f"{_spell(d[:2])}, {_spell(d[2:])}")


def _speech_postcode(text: str, today: date) -> SlotValue | None:
    d = dictated_digits(text)
    if len(d) != 5:
        tokens = _tokens(_fold(text))
        fives = [g.digits for g in _groups(tokens) if len(g.digits) == 5]
        d = fives[0] if len(fives) == 1 else ""
    return _postcode(d)


# ------------------------------------------------------------------ amounts

_AMOUNT_NUM_RE = re.compile(
    r"(?<![0-9a-z])[0-9]+(?:[.,][0-9]+)*(?: [0-9]{3}(?![0-9])(?:[.,][0-9]+)*)*(?![0-9a-z])")
_AMOUNT_WORDS = {"euro": "euro", "euros": "euro", "eur": "euro", "balles": "euro",
                 "centime": "centime", "centimes": "centime", "virgule": "virgule"}


def _digit_amount(s: str) -> tuple[int, bool] | None:
    """A written number ("1 250,50", "1.250", "12.5") as (cents, had decimals); None if
    ambiguous ("1,250": a decimal comma cannot have three digits for euros)."""
    s = s.replace(" ", "")
    seps = [(m.start(), m.group()) for m in re.finditer(r"[.,]", s)]
    if not seps:
        return (int(s) * 100, False) if len(s) <= 13 else None
    pos, sep = seps[-1]
    head, tail = s[:pos], s[pos + 1:]
    if len(tail) in (1, 2):
        if any(x == sep for _, x in seps[:-1]):
            return None
        parts = re.split(r"[.,]", head)
        if any(len(p) != 3 for p in parts[1:]) or len(parts[0]) > 13:
            return None
        return int("".join(parts)) * 100 + int(tail.ljust(2, "0")), True
    parts = re.split(r"[.,]", s)
    if len(tail) == 3 and len({x for _, x in seps}) == 1 and (sep == "." or len(seps) > 1) \
            and all(len(p) == 3 for p in parts[1:]) and 1 <= len(parts[0]) <= 3 and len(parts) <= 5:
        return int("".join(parts)) * 100, False
    return None


@dataclass(frozen=True)
class _Item:
    kind: str            # "num", "euro", "centime", "virgule"
    pos: int
    cents: int = 0       # for "num": the value in cents
    frac: bool = False   # for "num": written with decimals
    digits: str = ""     # for "num" without decimals: the digits as said


def _amount_items(text: str, *, article: bool = True) -> tuple[list[_Item], list[str]] | None:
    """Numbers and unit words in order, and the tokens they come from; None when a written
    number is ambiguous."""
    folded = _fold(text)
    tokens: list[str] = []
    written: dict[int, tuple[int, bool]] = {}
    last = 0
    for m in _AMOUNT_NUM_RE.finditer(folded):
        tokens.extend(_tokens(folded[last:m.start()]))
        last = m.end()
        s = m.group()
        if _is_digits(s):
            tokens.append(s)
            continue
        parsed = _digit_amount(s)
        if parsed is None:
            return None
        written[len(tokens)] = parsed
        tokens.append("#")
    tokens.extend(_tokens(folded[last:]))
    items = [_Item("num", g.start, cents=int(g.digits) * 100, digits=g.digits)
             for g in _groups(tokens, article=article) if len(g.digits) <= 13]
    items += [_Item("num", i, cents=c, frac=f, digits="" if f else str(c // 100)) for i, (c, f) in written.items()]
    items += [_Item(_AMOUNT_WORDS[t], i) for i, t in enumerate(tokens) if t in _AMOUNT_WORDS]
    return sorted(items, key=lambda it: it.pos), tokens


def _amount_cents(items: list[_Item], tokens: list[str]) -> int | None:
    nums = [k for k, it in enumerate(items) if it.kind == "num"]
    if not nums or any(it.kind == "virgule" for it in items[:nums[0]]):
        return None
    if any(_tok(tokens, items[k].pos + 1) == "k" for k in nums):
        return None     # "3 k": shorthand a caller may mean in thousands or not
    k = nums[0]
    first = items[k]

    def kind(at: int) -> str:
        return items[at].kind if at < len(items) else ""

    k += 1
    if first.frac:
        cents = first.cents
    elif kind(k) == "virgule":
        k += 1
        decimals = ""
        while kind(k) == "num" and not items[k].frac:
            decimals += items[k].digits
            k += 1
        if not 1 <= len(decimals) <= 2:
            return None
        cents = first.cents + int(decimals.ljust(2, "0"))
    elif kind(k) == "centime":
        if first.cents >= 100 * 100:
            return None
        cents, k = first.cents // 100, k + 1
    else:
        cents = first.cents
    if kind(k) == "euro":
        k += 1
        # "mille euros cinquante": cents right after the unit ("et" allowed), not "300 euros le 15"
        if cents % 100 == 0 and kind(k) == "num" and not items[k].frac and len(items[k].digits) <= 2 \
                and _only_connectors(tokens, items[k - 1].pos + 1, items[k].pos, _FILLERS):
            cents += int(items[k].digits)
            k += 1
            if kind(k) == "centime":
                k += 1
    if any(it.kind == "num" for it in items[k:]):
        return None     # a second amount: which one was meant is not ours to guess
    return cents if cents < MAX_AMOUNT_EUROS * 100 else None


def _amount(cents: int) -> SlotValue:
    euros, c = divmod(cents, 100)
    parts = []
    if euros or not c:
        if euros >= 10**6 and euros % 10**6 == 0:
            unit = "d'euros"       # "un million d'euros"
        else:
            unit = "euros" if euros >= 2 else "euro"
        parts.append(f"{_words(euros)} {unit}")
    if c:
        parts.append(f"{_words(c)} centime{'s' if c > 1 else ''}")
    return SlotValue(f"{euros}.{c:02d}", " et ".join(parts))


def _speech_amount(text: str, today: date) -> SlotValue | None:
    found = _amount_items(text)
    if found is None:
        return None
    cents = _amount_cents(*found)
    return None if cents is None else _amount(cents)


# ------------------------------------------------------------------ numbers

def _number_value(n: int) -> SlotValue | None:
    return SlotValue(str(n), _words(n)) if 0 <= n < MAX_NUMBER else None


def _speech_number(text: str, today: date) -> SlotValue | None:
    found = _amount_items(text, article=False)
    if found is None:
        return None
    nums = [it for it in found[0] if it.kind == "num"]
    if len(nums) != 1 or nums[0].cents % 100:
        return None
    return _number_value(nums[0].cents // 100)


# ------------------------------------------------------------------ dates

_RELATIVE_YEAR = [(("cette", "annee", "ci"), 0), (("cette", "annee"), 0), (("annee", "en", "cours"), 0),
                  (("annee", "derniere"), -1), (("an", "dernier"), -1), (("annee", "passee"), -1),
                  (("an", "passe"), -1), (("annee", "precedente"), -1),
                  (("annee", "prochaine"), 1), (("an", "prochain"), 1)]
_RELATIVE_DAY = [(("avant", "hier"), -2), (("apres", "demain"), 2), (("aujourd", "hui"), 0),
                 (("hier",), -1), (("demain",), 1)]
_WEEKDAYS = {"lundi": 0, "mardi": 1, "mercredi": 2, "jeudi": 3, "vendredi": 4, "samedi": 5, "dimanche": 6}
_PAST = frozenset({"dernier", "derniere", "passe", "passee", "precedent", "precedente"})
_NEXT = frozenset({"prochain", "prochaine", "suivant", "suivante"})
_CONNECTORS = _FILLERS | {"de", "du", "en", "l", "le", "la", "annee", "an", "mois"}
_TIME_WORDS = frozenset({"h", "heure", "heures", "minute", "minutes"})


class _Conflict(Exception):
    """Two incompatible readings in one answer (internal: parse_* return None)."""


def _phrases(tokens: list[str], table: list[tuple[tuple[str, ...], int]]) -> tuple[list[str], set[int]]:
    """Finds the phrases of `table` in tokens; returns the tokens with them blanked ("_")
    and the set of offsets they stand for."""
    tokens = list(tokens)
    found: set[int] = set()
    for i in range(len(tokens)):
        for phrase, offset in table:
            if tuple(tokens[i:i + len(phrase)]) == phrase:
                found.add(offset)
                tokens[i:i + len(phrase)] = ["_"] * len(phrase)
                break
    return tokens, found


def _relative_year(tokens: list[str], today: date) -> tuple[list[str], int | None]:
    tokens, found = _phrases(tokens, _RELATIVE_YEAR)
    if len(found) > 1:
        raise _Conflict
    return tokens, (today.year + found.pop() if found else None)


def _only_connectors(tokens: list[str], a: int, b: int, allowed: frozenset[str] = _CONNECTORS) -> bool:
    return all(t in allowed for t in tokens[a:b])


def _year_of(g: _Group, today: date) -> int | None:
    v = g.value
    if v is None:
        return None
    if MIN_YEAR <= v <= MAX_YEAR:
        return v
    if v < 100 and (len(g.digits) == 2 or g.words):
        return 2000 + v if 2000 + v <= today.year + 20 else 1900 + v
    return None


def _without_times(tokens: list[str], groups: list[_Group]) -> list[_Group]:
    return [g for g in groups if _tok(tokens, g.end) not in _TIME_WORDS]


def _nearest(candidates: list[date], today: date) -> date | None:
    if not candidates:
        return None
    return min(candidates, key=lambda d: (abs((d - today).days), d > today))


def _make_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _date_from(day: int, month: int, year: int | None, today: date) -> date | None:
    if year is not None:
        return _make_date(year, month, day) if MIN_YEAR <= year <= MAX_YEAR else None
    return _nearest([d for y in (today.year - 1, today.year, today.year + 1)
                     if (d := _make_date(y, month, day)) is not None], today)


def _day_alone(day: int, today: date) -> date | None:
    candidates = []
    for delta in (-2, -1, 0, 1, 2):     # two months either way: a 31st may be two months off
        y, m = divmod(today.year * 12 + today.month - 1 + delta, 12)
        if (d := _make_date(y, m + 1, day)) is not None:
            candidates.append(d)
    return _nearest(candidates, today)


def _merge_zero_pairs(groups: list[_Group]) -> list[_Group]:
    """"zéro trois" dictated for 03: a lone zero and the single digit after it are one group."""
    out: list[_Group] = []
    for g in groups:
        if out and out[-1].digits == "0" and len(g.digits) == 1 and out[-1].end == g.start:
            out[-1] = _Group("0" + g.digits, out[-1].start, g.end, True)
        else:
            out.append(g)
    return out


_DAY_ONE = frozenset({"premier", "1er", "1ere", "premiere"})


def _explicit_date(tokens: list[str], year_rel: int | None, today: date) -> date | None | bool:
    """The date named by numbers and month words; False when none is named."""
    groups = _without_times(tokens, _groups(tokens))
    months = [i for i, t in enumerate(tokens) if t in _MONTHS]
    firsts = [i for i, t in enumerate(tokens) if t in _DAY_ONE]
    if len(months) > 1 or len(firsts) > 1:
        return None
    if months:
        m = months[0]
        before = [g for g in groups if g.end <= m]
        after = [g for g in groups if g.start > m]
        if len(before) + len(firsts) != 1 or len(after) > 1:
            return None
        if firsts:
            if not _only_connectors(tokens, firsts[0] + 1, m, _FILLERS):
                return None
            day = 1
        else:
            if not _only_connectors(tokens, before[0].end, m, _FILLERS) or before[0].value is None:
                return None
            day = before[0].value
        year = year_rel
        if after:
            if year_rel is not None or not _only_connectors(tokens, m + 1, after[0].start):
                return None
            year = _year_of(after[0], today)
            if year is None:
                return None
        return _date_from(day, _MONTHS[tokens[m]], year, today) if 1 <= day <= 31 else None
    if firsts:
        return _day_alone(1, today) if not groups and year_rel is None else None
    if not groups:
        return False
    groups = _merge_zero_pairs(groups)
    values = [g.value for g in groups]
    if len(groups) > 3 or any(v is None for v in values):
        return None
    if len(groups) == 1:
        v = values[0]
        return _day_alone(v, today) if v is not None and 1 <= v <= 31 and year_rel is None else None
    year: int | None
    if len(groups) == 3 and len(groups[0].digits) == 4:     # ISO order: 2026-03-31
        year, mo, d = values
    else:
        d, mo = values[0], values[1]
        year = year_rel
        if len(groups) == 3:
            if year_rel is not None:
                return None
            year = _year_of(groups[2], today)
            if year is None:
                return None
    if d is None or mo is None or not 1 <= mo <= 12 or not 1 <= d <= 31:
        return None
    return _date_from(d, mo, year, today)


def _weekday_date(tokens: list[str], today: date) -> date | None | bool:
    found = []
    for i, t in enumerate(tokens):
        if t in _WEEKDAYS:
            nxt = _next_content(tokens, i, 1)
            wd = _WEEKDAYS[t]
            if nxt in _PAST:
                found.append(today - timedelta(days=(today.weekday() - wd - 1) % 7 + 1))
            elif nxt in _NEXT:
                found.append(today + timedelta(days=(wd - today.weekday() - 1) % 7 + 1))
    if len(set(found)) > 1:
        raise _Conflict
    return found[0] if found else False


def _date_value(d: date | None) -> SlotValue | None:
    if d is None or not MIN_YEAR <= d.year <= MAX_YEAR:
        return None
    day = "premier" if d.day == 1 else _words(d.day)
    return SlotValue(d.isoformat(), f"le {day} {_MONTH_NAMES[d.month - 1]} {_words(d.year)}")


def _speech_date(text: str, today: date) -> SlotValue | None:
    tokens = _tokens(_fold(text))
    tokens, year_rel = _relative_year(tokens, today)
    tokens, rel_days = _phrases(tokens, _RELATIVE_DAY)
    if len(rel_days) > 1:
        return None
    relative = today + timedelta(days=rel_days.pop()) if rel_days else None
    weekday = _weekday_date(tokens, today)
    if weekday is not False:
        if relative is not None and relative != weekday:
            return None
        relative = weekday
        tokens = [t if t not in _PAST | _NEXT else "_" for t in tokens]
    explicit = _explicit_date(tokens, year_rel, today)
    if explicit is None:
        return None
    if explicit is False:
        found = relative
    elif relative is not None and explicit != relative:
        return None
    else:
        found = explicit
    return _date_value(found)


# ------------------------------------------------------------------ months

_RELATIVE_MONTH = [(("ce", "mois", "ci"), 0), (("ce", "mois"), 0), (("mois", "en", "cours"), 0),
                   (("mois", "actuel"), 0), (("mois", "dernier"), -1), (("mois", "passe"), -1),
                   (("mois", "precedent"), -1), (("mois", "prochain"), 1), (("mois", "suivant"), 1)]


def _month_shift(today: date, delta: int) -> tuple[int, int]:
    y, m = divmod(today.year * 12 + today.month - 1 + delta, 12)
    return y, m + 1


def _nearest_period(index: int, per_year: int, today_index: int, year: int) -> int:
    """The year in which period `index` (0-based) is nearest to today's (the past one on a tie)."""
    return min((year - 1, year, year + 1),
               key=lambda y: (abs(y * per_year + index - today_index), y * per_year + index > today_index))


def _month_value(y: int, m: int) -> SlotValue | None:
    if not (MIN_YEAR <= y <= MAX_YEAR and 1 <= m <= 12):
        return None
    return SlotValue(f"{y:04d}-{m:02d}", f"{_MONTH_NAMES[m - 1]} {_words(y)}")


def _speech_month(text: str, today: date) -> SlotValue | None:
    tokens = _tokens(_fold(text))
    tokens, year_rel = _relative_year(tokens, today)
    tokens, rel = _phrases(tokens, _RELATIVE_MONTH)
    months = {_MONTHS[t] for t in tokens if t in _MONTHS}
    groups = _without_times(tokens, _groups(tokens))
    current = today.year * 12 + today.month - 1
    found: set[tuple[int, int]] = set()
    if len(rel) > 1 or len(months) > 1:
        return None
    if rel:
        if groups or year_rel is not None:
            return None
        found.add(_month_shift(today, next(iter(rel))))
    if months:
        month = months.pop()
        m_at = next(i for i, t in enumerate(tokens) if t in _MONTHS)
        after = [g for g in groups if g.start > m_at]
        before = [g for g in groups if g.end <= m_at]
        # a day before the month ("le 31 mars") is allowed and ignored
        if len(after) > 1 or len(before) > 1 or (before and not (
                _only_connectors(tokens, before[0].end, m_at, _FILLERS)
                and before[0].value is not None and 1 <= before[0].value <= 31)):
            return None
        modifier = _next_content(tokens, m_at, 1)
        years: set[int] = set()
        if after:
            y = _year_of(after[0], today)
            if y is None or not _only_connectors(tokens, m_at + 1, after[0].start):
                return None
            years.add(y)
        if year_rel is not None:
            years.add(year_rel)
        if modifier in _PAST:      # "mars dernier": the latest March before this month
            years.add((current - 1 - (current - 1 - (month - 1)) % 12) // 12)
        elif modifier in _NEXT:    # "mars prochain": the first March after this month
            years.add((current + 1 + (month - 1 - (current + 1)) % 12) // 12)
        if len(years) > 1:
            return None
        year = years.pop() if years else _nearest_period(month - 1, 12, current, today.year)
        found.add((year, month))
    elif not rel:
        groups = _merge_zero_pairs(groups)
        if len(groups) != 2 or groups[0].value is None:
            return None
        y = _year_of(groups[1], today)
        if y is None or len(groups[1].digits) != 4:
            return None
        found.add((y, groups[0].value))
    if len(found) != 1:
        return None
    return _month_value(*found.pop())


# ------------------------------------------------------------------ quarters

_RELATIVE_QUARTER = [(("ce", "trimestre", "ci"), 0), (("ce", "trimestre"), 0),
                     (("trimestre", "en", "cours"), 0), (("trimestre", "actuel"), 0),
                     (("trimestre", "dernier"), -1), (("trimestre", "passe"), -1),
                     (("trimestre", "precedent"), -1), (("trimestre", "prochain"), 1),
                     (("trimestre", "suivant"), 1)]
_ORDINALS = {"premier": 1, "1er": 1, "deuxieme": 2, "second": 2, "2e": 2, "2eme": 2, "2nd": 2,
             "troisieme": 3, "3e": 3, "3eme": 3, "quatrieme": 4, "4e": 4, "4eme": 4}


def _quarter_value(y: int, q: int) -> SlotValue | None:
    if not (MIN_YEAR <= y <= MAX_YEAR and 1 <= q <= 4):
        return None
    return SlotValue(f"{y:04d}-Q{q}", f"le {_QUARTER_ORDINALS[q - 1]} trimestre {_words(y)}")


def _speech_quarter(text: str, today: date) -> SlotValue | None:
    tokens = _tokens(_fold(text))
    tokens, year_rel = _relative_year(tokens, today)
    tokens, rel = _phrases(tokens, _RELATIVE_QUARTER)
    current = today.year * 4 + (today.month - 1) // 3
    groups = _without_times(tokens, _groups(tokens))
    quarters: set[int] = set()
    used: set[int] = set()           # groups (by start) that name the quarter, not the year
    last_quarter = False             # "le dernier trimestre"
    for i, t in enumerate(tokens):
        if t == "trimestre":
            prev = _next_content(tokens, i, -1)
            if prev in _ORDINALS:
                quarters.add(_ORDINALS[prev])
            elif prev == "dernier":
                last_quarter = True
            nxt = next((g for g in groups if g.start > i), None)
            if nxt is not None and _only_connectors(tokens, i + 1, nxt.start, _FILLERS) \
                    and nxt.value is not None and 1 <= nxt.value <= 4 and len(nxt.digits) == 1:
                quarters.add(nxt.value)
                used.add(nxt.start)
        elif t in ("t", "q"):
            g = next((g for g in groups if g.start == i + 1 and not g.words), None)
            if g is not None and g.value is not None and 1 <= g.value <= 4 and len(g.digits) == 1:
                quarters.add(g.value)
                used.add(g.start)
    if "trimestre" in tokens:     # "le premier ou le deuxième trimestre": two ordinals, two quarters
        quarters |= {_ORDINALS[t] for t in tokens if t in _ORDINALS}
    months = {_MONTHS[t] for t in tokens if t in _MONTHS}
    if months:
        by_quarter = {(m - 1) // 3 + 1 for m in months}
        if len(months) < 2 or len(by_quarter) != 1:
            return None
        quarters |= by_quarter
    years = [g for g in groups if g.start not in used]
    if len(years) > 1 or len(rel) > 1 or len(quarters) > 1:
        return None
    year = year_rel
    if years:
        y = _year_of(years[0], today)
        if y is None or year is not None:
            return None
        year = y
    if last_quarter and not quarters:
        if year is not None:
            quarters.add(4)
        else:
            rel.add(-1)
    if rel:
        y, q0 = divmod(current + rel.pop(), 4)
        if (quarters and quarters != {q0 + 1}) or (year is not None and year != y):
            return None
        return _quarter_value(y, q0 + 1)
    if not quarters:
        return None
    q = quarters.pop()
    if year is None:
        year = _nearest_period(q - 1, 4, current, today.year)
    return _quarter_value(year, q)


# ------------------------------------------------------------------ yes / no

_YES = ["oui", "ouais", "ouai", "ouaip", "ouep", "yes", "yep", "exact", "exactement", "c'est ça",
        "c'est bien ça", "c'est exact", "c'est correct", "c'est juste", "c'est bon", "c'est cela",
        "tout à fait", "absolument", "bien sûr", "d'accord", "daccord", "ok", "o k", "okay", "parfait",
        "voilà", "affirmatif", "correct", "effectivement", "en effet", "je confirme", "confirmé",
        "certainement", "évidemment", "carrément", "volontiers", "ça marche", "entendu", "très bien",
        "impeccable", "nickel", "c'est ce que j'ai dit", "je pense que oui", "je crois que oui"]
_NO = ["non", "nan", "nope", "pas du tout", "absolument pas", "surtout pas", "certainement pas",
       "évidemment pas", "c'est pas ça", "c'est pas bon", "c'est pas correct", "c'est pas juste",
       "c'est pas exact", "c'est pas le bon", "ce n'est pas ça", "ce n'est pas bon", "ce n'est pas le bon",
       "ce n'est pas correct", "ce n'est pas exact", "ce n'est pas juste", "pas ça", "c'est faux", "faux",
       "incorrect", "inexact", "négatif", "erreur", "pas vraiment", "pas bon", "mauvais",
       "je ne crois pas", "je crois pas", "je ne pense pas", "je pense pas", "je pense que non",
       "je crois que non", "aucunement", "vous vous trompez", "mal compris", "pas le bon"]
_YES_NO = sorted([(tuple(_tokens(_fold(p))), True) for p in _YES]
                 + [(tuple(_tokens(_fold(p))), False) for p in _NO], key=lambda x: -len(x[0]))
_YES_NO_LEAD = _FILLERS | {"mais", "ah", "bien"}


def _speech_yes_no(text: str, today: date) -> SlotValue | None:
    tokens = _tokens(_fold(text))
    found: set[bool] = set()
    i = 0
    while i < len(tokens):
        for phrase, yes in _YES_NO:
            if tuple(tokens[i:i + len(phrase)]) == phrase:
                # "pas exactement", "pas tout à fait", "pas d'accord": a yes word denied
                found.add(yes and _tok(tokens, i - 1) != "pas")
                i += len(phrase)
                break
        else:
            i += 1
    content = [t for t in tokens if t not in _YES_NO_LEAD]
    if content[:1] == ["si"]:      # "si", "mais si": yes, to a question put in the negative
        found.add(True)
    if len(found) != 1:
        return None
    return _yes_no(found.pop())


def _yes_no(yes: bool) -> SlotValue:
    return SlotValue("oui", "oui") if yes else SlotValue("non", "non")


# ------------------------------------------------------------------ phone numbers

_PHONE_PREFIXES = frozenset("12345679")   # geographic, mobile, VoIP; not 08: premium rate, we would pay


def _phone(d: str) -> SlotValue | None:
    if len(d) != 10 or not d.isascii() or not d.isdigit() or d[0] != "0" or d[1] not in _PHONE_PREFIXES:
        return None
    pairs = [d[i:i + 2] for i in range(0, 10, 2)]
    return SlotValue(d, ", ".join(f"zéro {_DIGIT_WORDS[int(p[1])]}" if p[0] == "0" else _words(int(p))
                                  for p in pairs))


def _speech_phone(text: str, today: date) -> SlotValue | None:
    # "+" is no token: as a word it says the same as "plus trente-trois"
    tokens = _tokens(_fold(text[:MAX_CHARS].replace("+", " plus ")))
    groups = _without_times(tokens, _dictated_groups(tokens))
    if not groups:
        return None
    digits = "".join(g.digits for g in groups)[:64]
    if _next_content(tokens, groups[0].start, -1) == "plus":
        if not digits.startswith("33"):
            return None       # a foreign number: not ours to call back
        digits = digits[2:]
    elif digits.startswith("0033"):
        digits = digits[4:]
    else:
        return _phone(digits)
    # "+33 6 12 ..." drops the trunk zero; "+33 (0)6 12 ..." and "+33 06 ..." keep it
    return _phone(digits if digits.startswith("0") else "0" + digits)


# ------------------------------------------------------------------ callback time slots

_TIME_SLOT_SPOKEN = {"matin": "le matin", "apres_midi": "l'après-midi", "indifferent": "dès que possible"}
_OTHER_SLOT = {"matin": "apres_midi", "apres_midi": "matin"}
_SLOT_WORDS = {"matin": "matin", "matins": "matin", "matinee": "matin", "matinees": "matin",
               "aprem": "apres_midi", "aprems": "apres_midi", "apresmidi": "apres_midi"}
_SLOT_PHRASES = [(("debut", "de", "journee"), "matin"), (("fin", "de", "journee"), "apres_midi")]
_ANY_SLOT = [("importe",), ("egal",), ("indifferent",), ("indifferemment",), ("les", "deux"),
             ("quand", "vous", "voulez"), ("comme", "vous", "voulez"), ("quand", "vous", "pouvez"),
             ("quand", "vous", "le", "souhaitez"), ("quand", "ca", "vous", "arrange"),
             ("comme", "ca", "vous", "arrange"), ("pas", "de", "preference"), ("aucune", "preference"),
             ("sans", "preference"), ("toute", "la", "journee"), ("a", "tout", "moment"),
             ("des", "que", "possible"), ("le", "plus", "tot", "possible")]
_MIDDAY = frozenset({"midi", "midis", "dejeuner", "manger", "repas"})
_BEFORE_MIDDAY = frozenset({"le", "la", "l", "de", "d", "du", "pause"})   # "après la pause de midi"
_HOUR_RE = re.compile(r"([0-9]{1,2})h")
_NEGATIONS = frozenset({"pas", "jamais"})


def _slot_of_hour(hour: int, before: list[str]) -> str | None:
    """The slot an hour names: "vers 10 heures" is the morning, "après 14 heures" the
    afternoon; "après 10 heures" or "avant 15 heures" span both and name neither."""
    if "avant" in before:
        return "matin" if 8 <= hour <= 12 else None
    if "apres" in before or "partir" in before:
        return "apres_midi" if 12 <= hour <= 18 else None
    if 7 <= hour <= 11:
        return "matin"
    return "apres_midi" if 13 <= hour <= 19 else None


def _negated(tokens: list[str], start: int) -> bool:
    """"pas le matin", "je ne peux pas l'après-midi": a negation just before, within the clause."""
    window = tokens[max(0, start - 3):start]
    if PAUSE in window:
        window = window[len(window) - window[::-1].index(PAUSE):]
    return any(t in _NEGATIONS for t in window)


def _speech_time_slot(text: str, today: date) -> SlotValue | None:
    tokens = _tokens(_fold(text))
    found: set[str] = set()
    for i, t in enumerate(tokens):
        slot: str | None = None
        if t in _SLOT_WORDS:
            slot = _SLOT_WORDS[t]
        elif t in ("avant", "apres", "partir"):
            j = i + 1
            while _tok(tokens, j) in _BEFORE_MIDDAY and j < i + 4:
                j += 1
            if _tok(tokens, j) in _MIDDAY:
                slot = "matin" if t == "avant" else "apres_midi"
        else:
            slot = next((s for phrase, s in _SLOT_PHRASES if tuple(tokens[i:i + len(phrase)]) == phrase), None)
        if slot is not None:
            found.add(_OTHER_SLOT[slot] if _negated(tokens, i) else slot)
    hours = [(g.start, g.value) for g in _groups(tokens) if _tok(tokens, g.end) in ("h", "heure", "heures")]
    hours += [(i, int(m.group(1))) for i, t in enumerate(tokens) if (m := _HOUR_RE.fullmatch(t))]
    for start, hour in hours:
        slot = _slot_of_hour(hour, tokens[max(0, start - 2):start]) if hour is not None else None
        if slot is not None and not _negated(tokens, start):     # "pas avant 10 heures": not a slot
            found.add(slot)
    _, any_slot = _phrases(tokens, [(phrase, 0) for phrase in _ANY_SLOT])
    if len(found) == 1:
        return _time_slot(found.pop())
    # "le matin ou l'après-midi, peu importe" is indifferent; without "peu importe", unclear
    return _time_slot("indifferent") if any_slot else None


def _time_slot(slot: str) -> SlotValue:
    return SlotValue(slot, _TIME_SLOT_SPOKEN[slot])


# ------------------------------------------------------------------ dispatch

def _speech_siret(text: str, today: date) -> SlotValue | None:
    return _siret(dictated_digits(text))


def _speech_siren(text: str, today: date) -> SlotValue | None:
    return _siren(dictated_digits(text))


def _keypad(parser: str, keys: str, today: date) -> SlotValue | None:
    if "*" in keys:
        if parser != "amount":
            return None
        euros, _, cents = keys.partition("*")
        if not euros or not _is_digits(euros) or not _is_digits(cents) or len(cents) > 2 or len(euros) > 12:
            return None
        return _amount(int(euros) * 100 + int(cents.ljust(2, "0")))
    n = len(keys)
    if parser == "siret":
        return _siret(keys)
    if parser == "siren":
        return _siren(keys)
    if parser == "postcode":
        return _postcode(keys)
    if parser == "phone":
        return _phone(keys)
    if parser == "time_slot":
        return _time_slot(("matin", "apres_midi", "indifferent")[int(keys) - 1]) if keys in ("1", "2", "3") else None
    if parser == "amount":
        return _amount(int(keys) * 100) if n <= 12 else None
    if parser == "number":
        return _number_value(int(keys)) if n <= 15 else None
    if parser == "yes_no":
        return _yes_no(keys == "1") if keys in ("1", "2") else None
    if parser == "date":
        if n not in (4, 8):
            return None
        d = _date_from(int(keys[:2]), int(keys[2:4]), int(keys[4:]) if n == 8 else None, today) \
            if 1 <= int(keys[2:4]) <= 12 else None
        return _date_value(d)
    current = today.year * 12 + today.month - 1
    if parser == "month":
        if n in (1, 2):
            m = int(keys)
            return _month_value(_nearest_period(m - 1, 12, current, today.year), m) if 1 <= m <= 12 else None
        return _month_value(int(keys[2:]), int(keys[:2])) if n == 6 else None
    if parser == "quarter":
        if n == 1:
            return _quarter_value(today.year, int(keys))
        return _quarter_value(int(keys[1:]), int(keys[0])) if n == 5 else None
    return None


_SPEECH: dict[str, Callable[[str, date], SlotValue | None]] = {
    "siret": _speech_siret,
    "siren": _speech_siren,
    "postcode": _speech_postcode,
    "amount": _speech_amount,
    "date": _speech_date,
    "month": _speech_month,
    "quarter": _speech_quarter,
    "yes_no": _speech_yes_no,
    "number": _speech_number,
    "phone": _speech_phone,
    "time_slot": _speech_time_slot,
}
PARSERS: frozenset[str] = frozenset(_SPEECH)


def _check(parser: str) -> None:
    if parser not in PARSERS:
        raise ValueError(f"unknown slot parser {parser!r}; known: {', '.join(sorted(PARSERS))}")


def parse_speech(parser: str, text: str, *, today: date) -> SlotValue | None:
    """The value of slot type `parser` in a transcript, or None when none is found."""
    _check(parser)
    if not isinstance(text, str):
        return None
    try:
        return _SPEECH[parser](text, today)
    except _Conflict:
        return None


def parse_keypad(parser: str, keys: str, *, today: date) -> SlotValue | None:
    """The value of slot type `parser` typed on the keypad (without the final '#')."""
    _check(parser)
    if not isinstance(keys, str):
        return None
    keys = keys.strip()
    if not keys or len(keys) > MAX_KEYS or re.fullmatch(r"[0-9*]+", keys) is None:
        return None
    return _keypad(parser, keys, today)
