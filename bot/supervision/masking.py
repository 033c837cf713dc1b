"""Masking of personal identifiers in what the supervisor console shows of a call, and the
WebVTT export of its turns.

Rules of `mask_text` (each hidden character becomes MASK, separators stay in place, so a
supervisor can tell two numbers apart and follow the dialogue without reading them):

- A run of digits, with single spaces, dots or dashes between digits or groups, or a comma
  after a group of 3 digits at most (a pause Whisper wrote in a dictation) ("732 829 320
  00074", "7 3 2 8 ...", "06.12.34.56.78", "+33 6 12 34 56 78", "06, 12, 34, 56, 78"), that
  holds 9 digits or more is an identifier, whatever its checksum (a misheard SIRET is still
  someone's): SIRET, SIREN, NIR, phone, account numbers. Its last 2 digits stay visible.
- The same run said in words, as Whisper sometimes writes it and as the bot reads every
  code back ("sept trois deux, huit deux neuf, ...", "zéro six, douze, trente-quatre, ..."),
  counted with the dictation parser of flows/slots.py (the one the dialogue reads codes
  with): each hidden word becomes one MASK; the words of the last 2 digits stay.
- A NIR whose department is 2A or 2B (Corsica), which the letters cut in two runs.
- An IBAN of any country ("FR76 3000 6000 0112 3456 7890 189", spaced or not): the country
  code and the last 2 characters stay.
- An e-mail address, written or spoken ("jean point dupont arobase gmail point com"): the
  first character of the local part and the domain's TLD stay ("j•••@•••.fr").
- With `postcode=True` (the turns where a postcode was asked for and read back, see
  `postcode_turns`), runs of 5 digits or more, in digits or in words, are masked too.

Deliberately not masked: amounts, percentages, dates, years, durations and the helpline's
short number ("77 700 €", "12,3 %", "1 200 euros", "le 15 mars 2025", "39 57", "2024",
"3 trimestres"): they are what the calls are about, all fewer than 9 digits. A run followed
by a currency or percent sign ends with an amount written the French way ("2024, 77 700 €",
"12 000 000 000 €"): that amount is kept and only what precedes it is judged.
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

from flows.knowledge import load_knowledge
from flows.slots import dictated_digits
from flows.slow_wording import slow_wording

__all__ = ["MASK", "mask_call", "mask_digits", "mask_text", "postcode_turns", "webvtt"]

MASK = "•"
VISIBLE = 2              # trailing digits left readable, to tell two numbers apart
IDENTIFIER_DIGITS = 9    # a SIREN, the shortest identifier; amounts and dates have fewer digits
POSTCODE_DIGITS = 5


def mask_digits(value: str, visible: int = VISIBLE) -> str:
    """Every digit but the last `visible` ones hidden, separators kept: a number can be
    checked against what the caller reads out, or told from another, without being shown."""
    digits = [i for i, c in enumerate(value) if c.isdigit()]
    hidden = set(digits[:-visible] if visible else digits)
    return "".join(MASK if i in hidden else c for i, c in enumerate(value))


def _mask_code(value: str, keep_head: int = 0) -> str:
    """Letters and digits hidden but the first `keep_head` and the last VISIBLE (IBAN, NIR)."""
    positions = [i for i, c in enumerate(value) if c.isalnum()]
    hidden = set(positions[keep_head:-VISIBLE])
    return "".join(MASK if i in hidden else c for i, c in enumerate(value))


# ------------------------------------------------------------------ patterns

_DOT = r"(?:\.|\s(?:point|dot)\s)"
_AT = r"(\s?@\s?|\s(?:arobase|arrobase|arobas)\s)"
# Written ("jean.dupont") or spoken ("jean point dupont"); one way to split it, and a few
# parts at most, so that words that are no address fail at once, even in a long text.
_LOCAL = r"\w[\w.+-]*(?:\s(?:point|tiret|underscore)\s[\w.+-]+){0,4}"
_EMAIL = re.compile(rf"(?<![\w.+-])({_LOCAL}){_AT}\w[\w-]*(?:{_DOT}\w[\w-]*){{0,4}}({_DOT})([a-z]{{2,}})\b",
                    re.IGNORECASE)

# Uppercase only: in lower case, words of a sentence would pass for the letters of a BBAN.
_IBAN = re.compile(r"(?<![0-9A-Za-z])[A-Z]{2}[0-9]{2}(?:[ -]?[0-9A-Z]{4}){2,7}(?:[ -]?[0-9A-Z]{1,4})?(?![0-9A-Za-z])")

_S = r"[ .\-\u00a0\u202f]?"
_NIR = re.compile(rf"(?<![0-9A-Za-z])[12](?:{_S}[0-9]){{4}}{_S}(?:[0-9]{_S}[0-9]|2{_S}[AB])(?:{_S}[0-9]){{8}}"
                  r"(?![0-9])", re.IGNORECASE)

_NUMBER_WORD = (r"(?:z[ée]ro|une?|deux|trois|quatre|cinq|six|sept|huit|neuf|dix|onze|douze|treize|quatorze"
                r"|quinze|seize|vingts?|trente|quarante|cinquante|soixante|septante|huitante|octante|nonante"
                r"|cents?|mille|double|triple)")
_LETTER = r"[^\W\d_]"
# "soixante et onze" is one number: its last words alone would read as another ("onze").
_TOKEN = (rf"(?:[0-9]+(?![0-9])"
          rf"|(?<!{_LETTER}){_NUMBER_WORD}(?:-{_NUMBER_WORD})*(?: et (?:une?|onze))?(?!{_LETTER}))")
_TOKEN_RE = re.compile(_TOKEN, re.IGNORECASE)
# Thin and no-break spaces: French typography, in the bot's texts ("77\u202f700 €"). A comma
# is a pause in a dictation ("06, 12, 34") but also separates the figures of a list ("en
# 2024, 2025"): it joins groups of 3 digits at most, the way codes are dictated.
_RUN = re.compile(rf"(?<![0-9]){_TOKEN}(?:(?:[ .\-\u00a0\u202f]|(?<![0-9]{{4}}),[ \u00a0]){_TOKEN})*",
                  re.IGNORECASE)
_THOUSANDS_SEP = frozenset(" .\u00a0\u202f")
_CURRENCY_AFTER = re.compile(r"(?:,[0-9]+)?[ \u00a0\u202f]?(?:€|euros?\b|eur\b|%|pour ?cent\b)", re.IGNORECASE)


def mask_text(text: str, *, postcode: bool = False) -> str:
    """`text` with the identifiers of the module's rules hidden; the rest unchanged."""
    text = _EMAIL.sub(_mask_email, text)
    text = _IBAN.sub(_mask_iban, text)
    text = _NIR.sub(lambda m: _mask_code(m.group()), text)
    threshold = POSTCODE_DIGITS if postcode else IDENTIFIER_DIGITS
    return _RUN.sub(lambda m: _mask_run(m, threshold), text)


def _mask_email(m: re.Match[str]) -> str:
    local, at, dot, tld = m.group(1), m.group(2), m.group(3), m.group(4)
    return f"{local[0]}{MASK * 3}{at}{MASK * 3}{dot}{tld}"


def _mask_iban(m: re.Match[str]) -> str:
    iban = m.group()
    # An uppercase reference without enough digits is a code of a form, not an account.
    return _mask_code(iban, keep_head=2) if sum(c.isdigit() for c in iban) >= IDENTIFIER_DIGITS else iban


def _mask_run(m: re.Match[str], threshold: int) -> str:
    run = m.group()
    tokens = list(_TOKEN_RE.finditer(run))
    if any(not t.group()[0].isdigit() for t in tokens):
        return _hide(run, tokens) if len(dictated_digits(run)) >= threshold else run
    judged = tokens[:_amount_start(tokens, run)] if _CURRENCY_AFTER.match(m.string, m.end()) else tokens
    if sum(len(t.group()) for t in judged) < threshold:
        return run
    end = judged[-1].end()
    return _hide(run[:end], judged) + run[end:]


def _amount_start(tokens: list[re.Match[str]], run: str) -> int:
    """Index of the first group of the amount that ends the run: its last group, and the
    groups before it while they read as thousands ("1 200 000", "77 700")."""
    i = len(tokens) - 1
    while (i > 0 and len(tokens[i].group()) == 3 and len(tokens[i - 1].group()) <= 3
           and run[tokens[i - 1].end():tokens[i].start()] in _THOUSANDS_SEP):
        i -= 1
    return i


def _hide(run: str, tokens: list[re.Match[str]]) -> str:
    """Each word or digit hidden, but those saying the last VISIBLE digits."""
    keep, pieces, pos = VISIBLE, [], len(run)
    for t in reversed(tokens):
        pieces.append(run[t.end():pos])
        word = t.group()
        if word.isdigit():
            shown = min(keep, len(word))
            pieces.append(mask_digits(word, shown))
            keep -= shown
        elif 0 < (said := len(dictated_digits(word))) <= keep:
            pieces.append(word)
            keep -= said
        else:
            pieces.append(MASK)
            keep = 0
        pos = t.start()
    pieces.append(run[:pos])
    return "".join(reversed(pieces))


# ------------------------------------------------------------------ calls

def _norm(text: str) -> str:
    return " ".join(text.split())


@functools.cache
def _postcode_step() -> tuple[tuple[tuple[str, ...], ...], tuple[re.Pattern[str], ...]]:
    """From the flows data, what the bot says when it asks for a postcode (each text as
    said, and as the slow-speech mode cuts it in sentences) and its read-back templates."""
    knowledge = load_knowledge()
    repeat = knowledge.prompts["slow_speech"]["repeat"]
    asks: list[tuple[str, ...]] = []
    read_backs: list[re.Pattern[str]] = []
    for flow in knowledge.flows.values():
        for step in flow.steps:
            if step.parser != "postcode":
                continue
            for text in (step.prompt, *step.retry, step.keypad):
                if text:
                    asks += [(_norm(text),), tuple(_norm(s) for s in slow_wording([text], repeat))]
            if step.confirm:
                for template in (step.confirm, " ".join(slow_wording([step.confirm], repeat))):
                    parts = re.split(r"\{\w+\}", _norm(template))
                    read_backs.append(re.compile(r"\s*(.+?)\s*".join(
                        r"\s+".join(map(re.escape, part.split())) for part in parts)))
    return tuple(asks), tuple(read_backs)


def postcode_turns(call: dict[str, Any]) -> set[int]:
    """Indexes of the turns that hold a postcode given as the identification's second
    factor: the bot's read-back of it, and the caller turns answering the bot's request or
    its read-back (a caller who says no often says the right postcode with it)."""
    asks, read_backs = _postcode_step()
    found: set[int] = set()
    answering = False
    for turn in sorted(call.get("turns") or [], key=lambda t: t["index"]):
        text = _norm(str(turn.get("text") or ""))
        if turn.get("speaker") == "caller":
            if answering:
                found.add(turn["index"])
            continue
        reads_back = turn.get("speaker") == "bot" and any(p.search(text) for p in read_backs)
        if reads_back:
            found.add(turn["index"])
        answering = reads_back or (turn.get("speaker") == "bot"
                                   and any(all(s in text for s in ask) for ask in asks))
    return found


def mask_call(call: dict[str, Any]) -> dict[str, Any]:
    """A copy of a call record (Store.get_call) with every identifier masked: turn texts
    (postcodes in `postcode_turns` too), the caller's number (its last 2 digits kept) and
    every string inside the events' data. The input is left as it was."""
    masked = copy.deepcopy(call)
    postcodes = postcode_turns(call)
    for turn in masked.get("turns") or []:
        if isinstance(turn.get("text"), str):
            turn["text"] = mask_text(turn["text"], postcode=turn.get("index") in postcodes)
    if isinstance(masked.get("caller"), str):
        masked["caller"] = mask_digits(masked["caller"])
    for event in masked.get("events") or []:
        # Keys typed on the keypad are values asked by a flow: a postcode as often as not.
        event["data"] = _mask_value(event.get("data"), postcode=event.get("kind") == "dtmf")
    return masked


def _mask_value(value: Any, *, postcode: bool) -> Any:
    if isinstance(value, str):
        return mask_text(value, postcode=postcode)
    if isinstance(value, dict):
        return {k: _mask_value(v, postcode=postcode) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask_value(v, postcode=postcode) for v in value)
    return value


# ------------------------------------------------------------------ WebVTT

VOICES = {"caller": "Appelant", "bot": "Callbot", "agent": "Conseiller"}
LAST_CUE_MS = 2000       # a last turn stored without its end (the bot's are) shows this long


def webvtt(call: dict[str, Any]) -> str:
    """The call's turns as WebVTT subtitles, one cue per turn with a start time (turns
    without one are left out), in order of time. A turn stored without its end time ends
    when the next one starts. Exports the call as given: mask it first unless unmasked
    text is wanted."""
    timed = sorted((t for t in call.get("turns") or []
                    if isinstance(t.get("start_ms"), int) and str(t.get("text") or "").strip()),
                   key=lambda t: (t["start_ms"], t["index"]))
    lines = ["WEBVTT", ""]
    for i, turn in enumerate(timed):
        start, end = turn["start_ms"], turn.get("end_ms")
        if not isinstance(end, int) or end <= start:
            end = next((u["start_ms"] for u in timed[i + 1:] if u["start_ms"] > start), start + LAST_CUE_MS)
        voice = VOICES.get(turn.get("speaker"), str(turn.get("speaker")))
        lines += [f"turn-{turn['index']}", f"{_timestamp(start)} --> {_timestamp(end)}",
                  f"<v {_escape(voice)}>{_escape(str(turn['text']))}", ""]
    return "\n".join(lines)


def _timestamp(ms: int) -> str:
    seconds, ms = divmod(max(ms, 0), 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}"


def _escape(text: str) -> str:
    """Cue text on one line (a blank line would end the cue), markup characters escaped:
    "-->" cannot survive, its ">" is."""
    text = re.sub(r"[\r\n]+", " ", text).strip()
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
