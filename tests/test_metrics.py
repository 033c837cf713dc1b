"""/metrics: the Prometheus text exposition computed from a real store, checked against
values counted by hand, and against the text format's grammar (prometheus_client is not a
dependency of the project, so a strict parser of the format lives here)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from bot.agents.tables import Callback, QueueEntry
from bot.store import Store
from bot.supervision.metrics import metrics_text

CALLER_NUMBER = "+33612345678"
SAID = "mon numéro fiscal est 1234567890123"


@pytest.fixture
async def store(tmp_path):
    s = Store(f"sqlite+aiosqlite:///{tmp_path / 'calls.sqlite3'}")
    await s.create_schema()
    yield s
    await s.close()


async def _call(store: Store, channel: str, outcome: str | None) -> str:
    call_id = await store.open_call(channel, caller=CALLER_NUMBER)
    if outcome is not None:
        await store.close_call(call_id, outcome=outcome, team="seuils")
    return call_id


@pytest.fixture
async def seeded(store):
    c1 = await _call(store, "webrtc", "completed")
    c2 = await _call(store, "webrtc", "completed")
    c3 = await _call(store, "webrtc", "handoff")
    c4 = await _call(store, "sip", "error")
    c5 = await _call(store, "sip", None)

    for i in range(3):
        await store.add_turn(c1, index=i, speaker="caller", text=SAID)
    # A caller turn never carries the reply latency; one that did must not be counted.
    await store.add_turn(c2, index=0, speaker="caller", text=SAID, total_ms=100, stt_ms=100)
    await store.add_turn(c3, index=9, speaker="agent", text="bonjour, je suis conseillère")
    #                     stt   dialogue  tts   total
    latencies = [(200, 100, 300, 600),
                 (250, 500, 250, 1000),      # exactly on a bucket's bound: counted in it
                 (100, 50, 100, 250),
                 (900, 2000, 1200, 4100),
                 (None, 3500, 2500, 7000),   # over every bound but +Inf; no stt time
                 (None, None, None, None)]   # a prerecorded greeting: no latency at all
    for i, (stt, dialogue, tts, total) in enumerate(latencies):
        await store.add_turn(c1, index=10 + i, speaker="bot", text="réponse", stt_ms=stt, dialogue_ms=dialogue,
                             tts_ms=tts, total_ms=total)

    await store.add_event(c3, 10, "handoff", {"team": "seuils", "reason": "asked"})
    await store.add_event(c1, 10, "handoff", {"team": "seuils", "reason": "asked"})
    await store.add_event(c2, 10, "handoff", {"team": "difficultes", "reason": "distress"})
    await store.add_event(c3, 20, "queued", {"team": "seuils", "reason": "asked"})
    await store.add_event(c4, 10, "error", {"media_stream": "bad token"})
    await store.add_event(c5, 10, "error", {"media_stream": "bad token"})
    for call_id in (c1, c2, c5):
        await store.add_event(call_id, 30, "turns_merged", {"merged": True})
    for call_id in (c1, c2):
        await store.add_event(call_id, 40, "fallback", {"backend": "extractive", "outcome": "extractive"})

    async with store.session() as s, s.begin():
        for i, (team, state) in enumerate([("seuils", "waiting"), ("seuils", "waiting"),
                                           ("difficultes", "waiting"), ("seuils", "accepted"),
                                           ("difficultes", "abandoned"), ("seuils", "closed")]):
            s.add(QueueEntry(call_id=f"q{i}", channel="sip", team=team, reason="asked", state=state))
        for i in range(3):
            s.add(Callback(call_id=c1, team="seuils", phone=CALLER_NUMBER, time_slot="matin", topic=SAID,
                           done_at=datetime.now(UTC) if i == 0 else None, done_by="agent1" if i == 0 else None))
    return store


# --- a strict parser of the text exposition format 0.0.4 -----------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
SAMPLE = re.compile(rf"^({NAME})(?:\{{(.*)\}})? (\S+)$")
VALUE = re.compile(r"^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], value)


def _labels(block: str) -> tuple[tuple[str, str], ...]:
    labels, pos = [], 0
    while pos < len(block):
        m = LABEL.match(block, pos)
        assert m, f"bad label at {block[pos:]!r}"
        labels.append((m.group(1), _unescape(m.group(2))))
        pos = m.end()
        if pos < len(block):
            assert block[pos] == ",", f"labels not separated by a comma: {block!r}"
            pos += 1
    names = [k for k, _ in labels]
    assert len(names) == len(set(names)), f"label repeated: {block!r}"
    return tuple(sorted(labels))


def parse(text: str) -> dict[str, dict]:
    """Families by name: {"type", "help", "samples": {(sample name, labels): value}}. Fails
    on any line out of the grammar, a sample outside its family, or a repeated series."""
    assert text.endswith("\n") and not text.endswith("\n\n")
    families: dict[str, dict] = {}
    current: str | None = None
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert re.fullmatch(NAME, name) and name not in families, line
            assert not re.search(r"\\[^\\n]", help_text), line
            families[name] = {"help": help_text, "type": None, "samples": {}}
            current = name
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name == current and kind in TYPES and families[name]["type"] is None, line
            families[name]["type"] = kind
        else:
            m = SAMPLE.match(line)
            assert m and current is not None and families[current]["type"], f"bad line {line!r}"
            name, block, value = m.groups()
            suffixes = ("_bucket", "_sum", "_count") if families[current]["type"] == "histogram" else ("",)
            assert name in [current + s for s in suffixes], f"{name} outside family {current}"
            assert VALUE.match(value), f"bad value {line!r}"
            key = (name, _labels(block or ""))
            assert key not in families[current]["samples"], f"repeated series {line!r}"
            families[current]["samples"][key] = float(value)
    for name, family in families.items():
        if family["type"] == "histogram":
            _check_histogram(name, family["samples"])
    return families


def _check_histogram(name: str, samples: dict) -> None:
    series: dict[tuple, list[tuple[float, float]]] = {}
    for (sample, labels), value in samples.items():
        if sample == name + "_bucket":
            rest = tuple(kv for kv in labels if kv[0] != "le")
            series.setdefault(rest, []).append((float(dict(labels)["le"]), value))
    assert series, f"{name}: no buckets"
    for rest, buckets in series.items():
        buckets.sort()
        assert buckets[-1][0] == float("inf"), f"{name}{rest}: no +Inf bucket"
        counts = [n for _, n in buckets]
        assert counts == sorted(counts), f"{name}{rest}: buckets not cumulative"
        assert counts[-1] == samples[(name + "_count", rest)]
        assert (name + "_sum", rest) in samples


def value(families: dict, sample: str, **labels: str) -> float:
    family = next(f for n, f in families.items() if sample in (n, n + "_bucket", n + "_sum", n + "_count"))
    return family["samples"][(sample, tuple(sorted(labels.items())))]


def series(families: dict, name: str) -> dict:
    return {labels: v for (_, labels), v in families[name]["samples"].items()}


# --- the tests ----------------------------------------------------------------------------

async def test_counters_are_the_stores_counts(seeded):
    m = parse(await metrics_text(seeded))
    assert series(m, "callbot_calls_total") == {
        (("channel", "sip"), ("outcome", "error")): 1,
        (("channel", "sip"), ("outcome", "ongoing")): 1,
        (("channel", "webrtc"), ("outcome", "completed")): 2,
        (("channel", "webrtc"), ("outcome", "handoff")): 1,
    }
    assert series(m, "callbot_turns_total") == {
        (("speaker", "agent"),): 1, (("speaker", "bot"),): 6, (("speaker", "caller"),): 4}
    assert series(m, "callbot_handoffs_total") == {
        (("reason", "asked"), ("team", "seuils")): 2, (("reason", "distress"), ("team", "difficultes")): 1}
    assert value(m, "callbot_errors_total") == 3          # 2 error events + 1 call ended in error
    assert value(m, "callbot_turn_merges_total") == 3
    assert value(m, "callbot_fallback_answers_total") == 2
    assert series(m, "callbot_callbacks_total") == {(("state", "booked"),): 3, (("state", "done"),): 1}
    assert m["callbot_calls_total"]["type"] == "counter"
    assert m["callbot_queue_waiting"]["type"] == m["callbot_calls_active"]["type"] == "gauge"


async def test_gauges_come_from_the_store_unless_given(seeded):
    m = parse(await metrics_text(seeded))
    assert series(m, "callbot_queue_waiting") == {(("team", "difficultes"),): 1, (("team", "seuils"),): 2}
    assert value(m, "callbot_calls_active") == 1

    m = parse(await metrics_text(seeded, queue_waiting={"seuils": 7}, active_calls=4))
    assert series(m, "callbot_queue_waiting") == {(("team", "seuils"),): 7}
    assert value(m, "callbot_calls_active") == 4


async def test_latency_histograms_are_cumulative_over_the_bot_turns(seeded):
    text = await metrics_text(seeded)
    m = parse(text)
    reply = "callbot_reply_latency_seconds"
    assert m[reply]["type"] == "histogram"
    buckets = {le: value(m, reply + "_bucket", le=le)
               for le in ("0.25", "0.5", "0.75", "1.0", "1.5", "2.0", "3.0", "5.0", "+Inf")}
    assert list(buckets.values()) == [1, 1, 2, 3, 3, 3, 3, 4, 5]
    assert value(m, reply + "_count") == 5                # the bot turns with a latency
    assert value(m, reply + "_sum") == pytest.approx(12.95)
    assert f"{reply}_sum 12.95\n" in text

    stage = "callbot_stage_latency_seconds"
    expected = {"stt": ([3, 3, 3, 4, 4, 4, 4, 4, 4], 1.45),
                "dialogue": ([2, 3, 3, 3, 3, 4, 4, 5, 5], 6.15),
                "tts": ([2, 3, 3, 3, 4, 4, 5, 5, 5], 4.35)}
    for name, (counts, total) in expected.items():
        got = [value(m, stage + "_bucket", stage=name, le=le)
               for le in ("0.25", "0.5", "0.75", "1.0", "1.5", "2.0", "3.0", "5.0", "+Inf")]
        assert got == counts, name
        assert value(m, stage + "_count", stage=name) == counts[-1]
        assert value(m, stage + "_sum", stage=name) == pytest.approx(total)


async def test_an_empty_store_still_exposes_every_family(store):
    m = parse(await metrics_text(store))
    assert value(m, "callbot_reply_latency_seconds_bucket", le="+Inf") == 0
    assert value(m, "callbot_reply_latency_seconds_sum") == 0
    assert value(m, "callbot_calls_active") == 0 and value(m, "callbot_errors_total") == 0
    assert set(m) == {
        "callbot_calls_total", "callbot_turns_total", "callbot_reply_latency_seconds",
        "callbot_stage_latency_seconds", "callbot_handoffs_total", "callbot_errors_total",
        "callbot_turn_merges_total", "callbot_fallback_answers_total", "callbot_queue_waiting",
        "callbot_calls_active", "callbot_callbacks_total"}


async def test_label_values_are_escaped(store):
    call_id = await store.open_call("webrtc")
    team = 'a"b\\c\nd'
    await store.add_event(call_id, 0, "handoff", {"team": team, "reason": "asked"})
    text = await metrics_text(store, queue_waiting={team: 1})
    assert 'callbot_handoffs_total{team="a\\"b\\\\c\\nd",reason="asked"} 1\n' in text
    assert 'callbot_queue_waiting{team="a\\"b\\\\c\\nd"} 1\n' in text
    m = parse(text)
    assert series(m, "callbot_handoffs_total") == {(("reason", "asked"), ("team", team)): 1}


async def test_no_personal_data_in_the_exposition(seeded):
    text = await metrics_text(seeded)
    assert CALLER_NUMBER not in text and "33612345678" not in text
    assert SAID not in text and "1234567890123" not in text and "réponse" not in text


@pytest.mark.parametrize("bad", [
    "# HELP x a\n# TYPE x counter\nx{a=\"b\"c\"} 1\n",     # unescaped quote
    "# HELP x a\n# TYPE x counter\nx 1.2.3\n",             # not a number
    "# HELP x a\n# TYPE x counter\ny 1\n",                 # sample outside its family
    ("# HELP x a\n# TYPE x histogram\nx_bucket{le=\"1.0\"} 2\nx_bucket{le=\"+Inf\"} 1\n"
     "x_sum 1\nx_count 1\n"),                               # not cumulative
])
def test_the_format_check_rejects_malformed_text(bad):
    with pytest.raises(AssertionError):
        parse(bad)
