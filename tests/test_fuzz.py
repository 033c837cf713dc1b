"""Fuzzing of the bot's own surfaces (issue 11, point 7): the HTTP API against its OpenAPI
description (bot/openapi.py), raw HTTP, the text channel, keypad and words into the
dialogue, media-stream messages and data-channel messages. Nothing may crash (no 5xx, no
exception but the protocol's own), every API answer matches the description, the bot
answers in French, and nothing reaches one caller from another caller's call.

Bounded: the profile comes from HYPOTHESIS_PROFILE, "ci" by default (about a minute on 2
cores, corpus included); "long" hunts twenty times as long, "smoke" is a quick look.

Kept corpus: every file under tests/fuzz_corpus/<surface>/ (README there) is replayed on
every run; Hypothesis' own database under var/hypothesis/ brings back what failed before.

The action server is not started: the dialogue must answer when it cannot be reached
(it says so), and its own answers are not what is fuzzed here.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from pipecat.clocks.system_clock import SystemClock
from pipecat.frames.frames import (
    ErrorFrame,
    InputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
    TTSSpeakFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.tests.utils import run_test
from pipecat.utils.asyncio.task_manager import TaskManager

from bot.call_log import CallLog
from bot.config import load_settings
from bot.media_stream import EVENTS, MediaStreamSerializer, ProtocolError, parse_message
from bot.openapi import openapi_spec
from bot.processors.dialogue import DialogueProcessor
from bot.processors.frames import CallConnectedFrame
from bot.server import chat_key, create_app, services_key
from bot.services import BotServices
from flows.engine import Conversation, State

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"

settings.register_profile(
    "ci",
    max_examples=50,
    deadline=None,   # a real server and router: seconds of jitter on a loaded 2-core machine
    database=DirectoryBasedExampleDatabase(ROOT / "var" / "hypothesis"),
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("long", settings.get_profile("ci"), max_examples=800)
settings.register_profile("smoke", settings.get_profile("ci"), max_examples=8)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def examples(weight: float) -> int:
    """This test's share of the profile's budget: cheap surfaces get more examples."""
    return max(1, round(settings.default.max_examples * weight))


def corpus(surface: str) -> list[Path]:
    return sorted(p for p in (CORPUS / surface).iterdir() if p.is_file())


def corpus_param(path: Path, *values: Any, prefix: str = "") -> Any:
    return pytest.param(path, *values, id=f"{prefix}{path.parent.name}/{path.name}")


def corpus_params(surface: str) -> list[Any]:
    return [corpus_param(path) for path in corpus(surface)]


# ------------------------------------------------------------------ the description as a checker

SPEC = openapi_spec()
JSON_TYPE = "application/json"
_CHECKED = {"type", "nullable", "properties", "required", "additionalProperties", "items", "enum",
            "minItems", "minLength", "maxLength", "pattern", "minimum", "$ref"}
_ANNOTATIONS = {"description", "default", "format"}
_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def checked_keywords(schema: dict[str, Any], where: str) -> None:
    """The schema and those inside it use only what `conforms` checks, and refs resolve."""
    schema = resolve(schema)
    unknown = set(schema) - _CHECKED - _ANNOTATIONS
    assert not unknown, f"{where}: schema keywords this checker does not know: {unknown}"
    for name, inner in schema.get("properties", {}).items():
        checked_keywords(inner, f"{where}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            checked_keywords(schema[key], f"{where}.{key}")


def conforms(schema: dict[str, Any], value: Any, where: str = "$") -> None:
    """The subset of OpenAPI 3.0 schemas bot/openapi.py uses; a keyword outside it fails
    here rather than being silently unchecked."""
    schema = resolve(schema)
    unknown = set(schema) - _CHECKED - _ANNOTATIONS
    assert not unknown, f"{where}: schema keywords this checker does not know: {unknown}"
    if value is None:
        assert schema.get("nullable"), f"{where}: null where the description does not allow it"
        return
    kind = schema.get("type")
    if kind is not None:
        assert _TYPES[kind](value), f"{where}: {value!r:.80} is not {kind}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r:.80} not in {schema['enum']}"
    if isinstance(value, str):
        assert len(value) >= schema.get("minLength", 0), f"{where}: shorter than minLength"
        assert len(value) <= schema.get("maxLength", len(value)), f"{where}: longer than maxLength"
        if "pattern" in schema:
            assert re.search(schema["pattern"], value), f"{where}: {value!r:.80} does not match {schema['pattern']}"
    if isinstance(value, (int, float)) and "minimum" in schema:
        assert value >= schema["minimum"], f"{where}: {value} below {schema['minimum']}"
    if isinstance(value, list):
        assert len(value) >= schema.get("minItems", 0), f"{where}: fewer items than minItems"
        for i, item in enumerate(value):
            conforms(schema.get("items", {}), item, f"{where}[{i}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        missing = set(schema.get("required", ())) - set(value)
        assert not missing, f"{where}: missing {missing}"
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                conforms(properties[key], item, f"{where}.{key}")
            elif extra is False:
                raise AssertionError(f"{where}: {key!r} is not in the description")
            elif isinstance(extra, dict):
                conforms(extra, item, f"{where}.{key}")


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes
    json: Any = None


async def call_api(client: TestClient, method: str, path: str, **kwargs: Any) -> Answer:
    async with client.request(method, path, allow_redirects=False, **kwargs) as resp:
        body = await resp.read()
        answer = Answer(resp.status, resp.content_type, body)
    if answer.content_type == JSON_TYPE and body:
        answer.json = json.loads(body)
    return answer


def check_against_spec(answer: Answer, method: str, path: str, template: str | None) -> None:
    """What any request to the API must get: no 5xx but a described 503 (a refusal by
    design: voice off on this server, lines or sessions full); under /api/, JSON matching
    the description of that operation and status (an error for a method it has not)."""
    operation = SPEC["paths"].get(template or "", {}).get("get" if method == "HEAD" else method.lower())
    refusal = answer.status == 503 and operation is not None and "503" in operation["responses"]
    assert answer.status < 500 or refusal, f"{method} {path}: {answer.status} {answer.body[:300]!r}"
    if not path.startswith("/api/") and (operation is None or answer.status != 200):
        return   # outside the API aiohttp's own plain-text errors are fine
    if operation is None:
        assert answer.status in (404, 405), f"{method} {path}: {answer.status}, no such operation"
        response = {"content": {JSON_TYPE: {"schema": {"$ref": "#/components/schemas/Error"}}}}
    else:
        assert str(answer.status) in operation["responses"], \
            f"{method} {path}: {answer.status} is not described ({sorted(operation['responses'])})"
        response = operation["responses"][str(answer.status)]
    if method == "HEAD":
        assert not answer.body
        return
    (content_type, media), = response["content"].items()
    assert answer.content_type == content_type, f"{method} {path}: {answer.content_type}, described {content_type}"
    if content_type == JSON_TYPE:
        conforms(media["schema"], answer.json, f"{method} {path} {answer.status}")


# ------------------------------------------------------------------ what the bot says

_FRENCH = frozenset({
    "le", "la", "les", "l", "de", "des", "du", "d", "un", "une", "et", "est", "en", "à", "au", "aux", "vous",
    "votre", "vos", "je", "j", "ne", "n", "pas", "que", "qu", "qui", "pour", "sur", "dans", "avec", "ce",
    "cette", "c", "il", "on", "mon", "ma", "mes", "ou", "plus", "tapez", "dites", "merci", "oui", "non",
})


def assert_french(texts: list[str], context: object = "") -> None:
    """Non-empty, and French: French function words, which the bot's every sentence has."""
    assert texts and all(isinstance(t, str) and t.strip() for t in texts), f"empty reply to {context!r:.200}"
    words = re.findall(r"[a-zàâçéèêëîïôûùüÿœ]+", " ".join(texts).lower())
    assert any(w in _FRENCH for w in words), f"not French: {texts!r:.300} (to {context!r:.200})"


# ------------------------------------------------------------------ strategies

ADMIN_TOKEN = secrets.token_urlsafe(24)
KEYS = "0123456789*#"
FRENCH_SEEDS = [
    "je voudrais déclarer mon chiffre d'affaires", "oui", "non", "conseiller", "au revoir", "répétez",
    "parlez plus lentement", "j'ai oublié mon mot de passe", "je voudrais une attestation de vigilance",
    "combien je dois payer", "je voudrais connaître le solde de mon compte", "mon numéro siret c'est le",
    "le code postal c'est", "c'est quand la prochaine échéance", "je veux fermer mon entreprise",
]
CORPUS_TEXTS = [p.read_text("utf-8") for p in corpus("text")]
CORPUS_KEYS = [p.read_text("utf-8") for p in corpus("dtmf")]
CORPUS_BODIES = [p.read_bytes() for p in corpus("http")]

# JSON as json.loads gives it back (NaN, lone surrogates and all): what a peer can send.
json_scalars = (st.none() | st.booleans() | st.integers() | st.floats()
                | st.text(st.characters(codec=None), max_size=30))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")  # ensure_ascii: lone surrogates travel as \\udxxx escapes


# Short: the router's e5 costs about 1 s of CPU per 100 tokens on this machine, and a turn
# is read up to 512 tokens twice (whole and question clause); the corpus has the long ones.
caller_texts = st.one_of(
    st.text(st.characters(codec=None), max_size=120),        # any code point, surrogates included
    st.sampled_from(CORPUS_TEXTS).map(lambda t: t[:160]),
    st.tuples(st.sampled_from(FRENCH_SEEDS), st.text(max_size=25)).map(" ".join),
    st.from_regex(r"[0-9 .-]{1,60}", fullmatch=True),
)
# About the text channel's 2000-character limit, mostly over it (refused before routing).
long_texts = st.tuples(st.text(min_size=1, max_size=12), st.integers(1990, 2100)).map(lambda t: (t[0] * 2100)[:t[1]])
keypad_strings = st.one_of(
    st.text(KEYS, min_size=1, max_size=32),
    st.text(KEYS + "aAD -é\u0661\uff11", max_size=600),
    st.sampled_from(CORPUS_KEYS),
)
chat_bodies = st.one_of(
    caller_texts.map(lambda t: dumps({"text": t})),
    long_texts.map(lambda t: dumps({"text": t})),
    keypad_strings.map(lambda k: dumps({"dtmf": k})),
    st.fixed_dictionaries({}, optional={"text": json_values, "dtmf": json_values, "x": json_values}).map(dumps),
    json_values.map(dumps),
    st.binary(max_size=200),
    st.sampled_from(CORPUS_BODIES),
)

LIVE = "<live>"   # a path parameter filled, in the test, with one of the fuzz's own sessions or calls
_header_chars = st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("éàüÿ\u00a0")
header_text = st.text(_header_chars, max_size=60)
authorizations = st.one_of(
    st.none(), header_text, header_text.map(lambda t: f"Bearer {t}"), st.just(f"Bearer {ADMIN_TOKEN}"),
    st.just(f"Bearer {ADMIN_TOKEN[:-1]}"), st.just(f"Token {ADMIN_TOKEN}"), st.just(ADMIN_TOKEN),
    st.just("Basic " + base64.b64encode(f"admin:{ADMIN_TOKEN}".encode()).decode()),
)
path_values = st.one_of(
    st.just(LIVE), st.text(max_size=40), st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
    st.sampled_from(["..", "%2e%2e", "../../../etc/passwd", "0" * 300, "' OR 1=1 --", "null", "\u0000"]),
)
OPERATIONS = sorted((path, method.upper()) for path, item in SPEC["paths"].items() for method in item)
OTHER_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]


@dataclass
class ApiRequest:
    method: str
    template: str | None          # None: a path the description does not have
    params: dict[str, str]
    raw_path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


@st.composite
def api_requests(draw: st.DrawFn) -> ApiRequest:
    if draw(st.integers(0, 9)) == 0:
        # One segment (no '/' or '.': no dot segments for the client to fold); it may spell a route.
        raw_path = "/api/" + quote(draw(st.text(st.characters(exclude_characters="/."), max_size=40)), safe="")
        template = next((t for t in SPEC["paths"] if t == unquote(raw_path)), None)
        method = draw(st.sampled_from(OTHER_METHODS))
        params: dict[str, str] = {}
    else:
        template, spec_method = draw(st.sampled_from(OPERATIONS))
        method = draw(st.sampled_from([spec_method] * 4 + OTHER_METHODS))
        params = {name: draw(path_values) for name in re.findall(r"\{(\w+)\}", template)}
        raw_path = ""
    headers = {}
    auth = draw(authorizations)
    if auth is not None:
        headers["Authorization"] = auth
    content_type = draw(st.none() | st.just(JSON_TYPE) | header_text)
    if content_type is not None:
        headers["Content-Type"] = content_type
    if draw(st.booleans()):
        headers[draw(st.from_regex(r"X-[A-Za-z0-9-]{1,20}", fullmatch=True))] = draw(header_text)
    body = draw(st.none() | chat_bodies | st.sampled_from(CORPUS_BODIES)
                | st.fixed_dictionaries({"sdp": json_values | st.text(max_size=200), "type": json_values}).map(dumps))
    return ApiRequest(method, template, params, raw_path, headers, body)


# ------------------------------------------------------------------ the server

VICTIM_NAME = "Kerbrat"
VICTIM_SIRET = "81158116481316"   # valid (Luhn), in no corpus file
VICTIM_POSTCODE = "29200"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    var = tmp_path_factory.mktemp("fuzz-var")
    provisioned = ROOT / "var" / "router"
    if provisioned.is_dir():
        # The trained router and its embedding cache (`callbot models provision`): training
        # them again takes minutes on 2 cores; without them the server trains at start.
        shutil.copytree(provisioned, var / "router")
    return var


@pytest.fixture(scope="module")
async def client(var_dir: Path):
    settings_ = load_settings(env={"CALLBOT_ADMIN_TOKEN": ADMIN_TOKEN}, var_dir=var_dir,
                              actions_url=f"http://127.0.0.1:{closed_port()}")
    async with TestClient(TestServer(create_app(settings_, voice=False))) as c:
        yield c


@pytest.fixture(scope="module")
def services(client: TestClient) -> BotServices:
    return client.server.app[services_key]


async def open_session(client: TestClient) -> dict:
    answer = await call_api(client, "POST", "/api/chat")
    check_against_spec(answer, "POST", "/api/chat", "/api/chat")
    assert answer.status == 201
    assert_french(answer.json["replies"], "greeting")
    return answer.json


def conversation_of(client: TestClient, session_id: str) -> Conversation:
    return client.server.app[chat_key].sessions[session_id].conversation


@dataclass
class Live:
    """Ids the fuzz may use in paths: its own session and call."""

    session_id: str
    call_id: str


@pytest.fixture(scope="module")
async def live(client: TestClient) -> Live:
    opened = await open_session(client)
    return Live(opened["session_id"], opened["call_id"])


@dataclass
class Victim:
    session_id: str
    call_id: str
    markers: list[str]


@pytest.fixture(scope="module")
async def victim(client: TestClient) -> Victim:
    """A caller who gave their name, typed their SIRET and postcode, and heard them read back."""
    opened = await open_session(client)
    url = f"/api/chat/{opened['session_id']}/messages"
    said: list[str] = []
    for message in ({"text": f"Bonjour, je suis Gwendoline {VICTIM_NAME}, je voudrais connaître le solde de mon compte"},
                    {"dtmf": f"{VICTIM_SIRET}#"}, {"text": "oui"}, {"dtmf": f"{VICTIM_POSTCODE}#"}):
        answer = await call_api(client, "POST", url, json=message)
        assert answer.status == 200, answer.body
        said += answer.json["replies"]
    readback = next((t for t in said if t.startswith("J'ai noté")), None)
    assert readback is not None, f"the SIRET was not read back: {said}"
    assert conversation_of(client, opened["session_id"]).slots.get("siret") == VICTIM_SIRET
    record = await call_api(client, "GET", f"/api/calls/{opened['call_id']}",
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert record.status == 200 and VICTIM_NAME in record.body.decode() and VICTIM_SIRET in record.body.decode()
    spoken = readback.split(":", 1)[1].split(".")[0].strip()   # "huit un un, cinq huit un, ..."
    return Victim(opened["session_id"], opened["call_id"],
                  [VICTIM_NAME, VICTIM_SIRET, spoken, opened["session_id"], opened["call_id"]])


def assert_no_leak(victim: Victim, body: bytes, context: object) -> None:
    text = body.decode("utf-8", "replace").lower()
    for marker in victim.markers:
        assert marker.lower() not in text, f"the victim's {marker!r} reached another caller: {context!r:.200}"


# ------------------------------------------------------------------ (a) the HTTP API


def test_description_covers_every_route() -> None:
    """Every API route of the app is described and every described operation exists;
    every schema uses only what `conforms` checks."""
    app = create_app(load_settings(env={}), voice=False)
    routes = {(r.resource.canonical, r.method) for r in app.router.routes()
              if r.method != "HEAD" and r.resource is not None
              and (r.resource.canonical.startswith("/api/") or r.resource.canonical == "/health")}
    assert routes == set(OPERATIONS)
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                for media in response["content"].values():
                    checked_keywords(media["schema"], f"{method} {path} {status}")
    assert SPEC["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "CALLBOT_ADMIN_TOKEN"}


async def test_the_description_is_served(client: TestClient) -> None:
    answer = await call_api(client, "GET", "/api/openapi.json")
    check_against_spec(answer, "GET", "/api/openapi.json", "/api/openapi.json")
    assert answer.json == SPEC


async def test_call_records_match_the_description(client: TestClient, live: Live) -> None:
    """The 200 answers the random requests rarely reach: a record with turns and events."""
    url = f"/api/chat/{live.session_id}/messages"
    for message in ({"text": "je voudrais une attestation de vigilance"}, {"dtmf": "0"}):
        check_against_spec(await call_api(client, "POST", url, json=message), "POST", url,
                           "/api/chat/{session_id}/messages")
    path = f"/api/calls/{live.call_id}"
    answer = await call_api(client, "GET", path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    check_against_spec(answer, "GET", path, "/api/calls/{call_id}")
    assert answer.status == 200 and answer.json["turns"] and answer.json["events"]
    answer = await call_api(client, "GET", path + "/recording", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    check_against_spec(answer, "GET", path + "/recording", "/api/calls/{call_id}/recording")
    assert answer.status == 404   # a text session has no recording


@settings(max_examples=examples(3))
@given(req=api_requests())
async def test_api_answers_every_request_as_described(client: TestClient, live: Live, req: ApiRequest) -> None:
    path = req.raw_path
    if req.template is not None:
        ids = {"session_id": live.session_id, "call_id": live.call_id, "callback_id": "1"}
        path = re.sub(r"\{(\w+)\}", lambda m: ids[m[1]] if req.params[m[1]] == LIVE
                      else quote(req.params[m[1]], safe=""), req.template)
    answer = await call_api(client, req.method, path, headers=req.headers, data=req.body)
    check_against_spec(answer, req.method, path, req.template)
    health = await call_api(client, "GET", "/health")
    check_against_spec(health, "GET", "/health", "/health")
    assert health.status == 200


POST_ROUTES = ("/api/chat", "/api/chat/{session_id}/messages", "/api/offer")


@pytest.mark.parametrize(("path", "template"), [
    corpus_param(path, template, prefix=f"{template}:") for path in corpus("http") for template in POST_ROUTES])
async def test_corpus_bodies_on_every_post_route(client: TestClient, path: Path, template: str) -> None:
    url = template
    if "{session_id}" in template:
        url = template.format(session_id=(await open_session(client))["session_id"])
    answer = await call_api(client, "POST", url, data=path.read_bytes(), headers={"Content-Type": JSON_TYPE})
    check_against_spec(answer, "POST", url, template)
    assert (await call_api(client, "GET", "/health")).status == 200


# ------------------------------------------------------------------ raw HTTP (bytes aiohttp's client will not send)

_no_crlf = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@st.composite
def raw_requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"OPTIONS"]) | _no_crlf)
    path = draw(st.sampled_from([b"/api/calls/x", b"/api/calls/x/recording", b"/api/chat", b"/health",
                                 b"/api/offer", b"/api/openapi.json"]) | _no_crlf.map(lambda b: b"/api/" + b))
    lines = [b"%s %s HTTP/1.1" % (method, path), b"Host: fuzz"]
    auth = draw(st.none() | _no_crlf.map(lambda b: b"Bearer " + b) | _no_crlf)
    if auth is not None:
        lines.append(b"Authorization: " + auth)
    for _ in range(draw(st.integers(0, 3))):
        lines.append(draw(_no_crlf) + b": " + draw(_no_crlf))
    body = draw(st.binary(max_size=100))
    lines += [b"Content-Length: %d" % len(body), b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def send_raw(client: TestClient, request: bytes) -> int:
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            response = await reader.read()
    finally:
        writer.close()
    status_line = response.split(b"\r\n", 1)[0]
    assert re.match(rb"HTTP/1\.[01] \d{3}", status_line), f"no HTTP answer to {request[:200]!r}: {response[:200]!r}"
    return int(status_line.split()[1])


@settings(max_examples=examples(1.5))
@given(request_bytes=raw_requests())
@example(request_bytes=b"GET /api/calls/x HTTP/1.1\r\nHost: fuzz\r\nAuthorization: Bearer caf\xc3\xa9\r\n"
                       b"Connection: close\r\n\r\n")
async def test_raw_requests_never_get_a_server_error(client: TestClient, request_bytes: bytes) -> None:
    status = await send_raw(client, request_bytes)
    assert status < 500, f"{status} for {request_bytes[:300]!r}"


@pytest.mark.parametrize("path", corpus_params("raw"))
async def test_corpus_raw_requests(client: TestClient, path: Path) -> None:
    request = path.read_bytes()
    status = await send_raw(client, request)
    assert status < 500, f"{status} for {request[:300]!r}"


# ------------------------------------------------------------------ the text channel


async def post_turn(client: TestClient, session_id: str, body: bytes) -> Answer:
    """One message, checked: 200 with a French reply (or a silence the dialogue explains),
    or a described 4xx; never a 5xx."""
    url = f"/api/chat/{session_id}/messages"
    conversation = conversation_of(client, session_id)
    finished = conversation.state in (State.ENDED, State.WITH_AGENT)
    answer = await call_api(client, "POST", url, data=body, headers={"Content-Type": JSON_TYPE})
    check_against_spec(answer, "POST", url, "/api/chat/{session_id}/messages")
    assert answer.status in (200, 400, 413), (answer.status, answer.json, body[:200])
    if answer.status == 200:
        replies = answer.json["replies"]
        if replies:
            assert_french(replies, body)
        else:
            # Silence: after the end, while an agent has the call, or while keys are collected up to '#'.
            assert finished or conversation.keys, f"no reply to {body[:200]!r} in state {conversation.state}"
    return answer


@settings(max_examples=examples(1))
@given(turns=st.lists(chat_bodies, min_size=1, max_size=4))
async def test_text_channel_answers_in_french_or_refuses(client: TestClient, turns: list[bytes]) -> None:
    session = await open_session(client)
    for body in turns:
        await post_turn(client, session["session_id"], body)


@pytest.mark.parametrize("path", corpus_params("text"))
async def test_corpus_texts_on_the_text_channel(client: TestClient, path: Path) -> None:
    session = await open_session(client)
    await post_turn(client, session["session_id"], dumps({"text": path.read_text("utf-8")}))


@pytest.mark.parametrize("path", corpus_params("dtmf"))
async def test_corpus_keys_on_the_text_channel(client: TestClient, path: Path) -> None:
    session = await open_session(client)
    await post_turn(client, session["session_id"], dumps({"dtmf": path.read_text("utf-8")}))


# ------------------------------------------------------------------ nothing leaks between calls

_not_victims = st.one_of(
    st.tuples(st.just("say"), chat_bodies),
    st.tuples(st.just("guess_session"), st.sampled_from(["flip", "upper", "truncate", "extend", "call_id", "pad"]),
              st.integers(0, 31)),
    st.tuples(st.just("read_call"), st.sampled_from(["", "/recording"]), authorizations.filter(
        lambda a: a is None or a.partition(" ")[2].strip() != ADMIN_TOKEN or a.partition(" ")[0].lower() != "bearer")),
    st.tuples(st.just("read_own_call"), st.just(""), st.just("")),
)


def guess(victim: Victim, how: str, at: int) -> str:
    """An id near the victim's session id that is not it."""
    sid = victim.session_id
    if how == "flip":
        return sid[:at] + ("0" if sid[at] != "0" else "1") + sid[at + 1:]
    return {"upper": sid.upper() if sid.upper() != sid else sid[:-1], "truncate": sid[:at],
            "extend": sid + "0", "call_id": victim.call_id, "pad": f" {sid}"}[how]


@settings(max_examples=examples(1))
@given(actions=st.lists(_not_victims, min_size=1, max_size=4))
async def test_nothing_leaks_from_another_call(client: TestClient, victim: Victim, actions: list[tuple]) -> None:
    """Another caller, whatever they send, guess or ask for, never gets the victim's name,
    SIRET (typed or read back) or ids; the victim's record is closed to them."""
    if said_it_themselves([a[1] for a in actions if a[0] == "say"]):
        return
    mine = await open_session(client)
    for action in actions:
        kind = action[0]
        if kind == "say":
            answer = await post_turn(client, mine["session_id"], action[1])
        elif kind == "guess_session":
            url = f"/api/chat/{quote(guess(victim, action[1], action[2]), safe='')}/messages"
            answer = await call_api(client, "POST", url, json={"text": "répétez s'il vous plaît"})
            check_against_spec(answer, "POST", url, "/api/chat/{session_id}/messages")
            assert answer.status == 404, (url, answer.status)
        elif kind == "read_call":
            url = f"/api/calls/{victim.call_id}{action[1]}"
            headers = {} if action[2] is None else {"Authorization": action[2]}
            answer = await call_api(client, "GET", url, headers=headers)
            check_against_spec(answer, "GET", url, "/api/calls/{call_id}" + action[1])
            assert answer.status in (401, 403), (url, headers, answer.status)
        else:
            url = f"/api/calls/{mine['call_id']}"
            answer = await call_api(client, "GET", url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            check_against_spec(answer, "GET", url, "/api/calls/{call_id}")
            assert answer.status == 200
        assert_no_leak(victim, answer.body, action)
    assert conversation_of(client, victim.session_id).slots.get("siret") == VICTIM_SIRET


# ------------------------------------------------------------------ (c) keys and words into the dialogue

dialogue_events = st.lists(st.one_of(
    st.tuples(st.just("text"), caller_texts),
    st.tuples(st.just("dtmf"), keypad_strings),
    st.just(("no_input", "")),
), min_size=1, max_size=6)


async def drive(conversation: Conversation, kind: str, value: str, victim: Victim | None = None) -> None:
    """One event; the reply is French, or a silence the dialogue explains; and nothing of
    the victim's call (another conversation on the same services) is in it."""
    finished = conversation.state in (State.ENDED, State.WITH_AGENT)
    if kind == "text":
        reply = await conversation.on_text(value)
    elif kind == "dtmf":
        reply = await conversation.on_dtmf(value)
    else:
        reply = await conversation.on_no_input()
    texts = await reply.collect()
    if victim is not None:
        assert_no_leak(victim, " ".join(texts).encode(), (kind, value))
    if texts:
        assert_french(texts, (kind, value))
    else:
        # waiting for an agent, silence is answered by the queue's own news, not the dialogue
        waiting = kind == "no_input" and conversation.queued
        assert finished or waiting or (kind == "dtmf" and conversation.keys), \
            f"silence after {kind} {value!r:.100} in state {conversation.state}"


def said_it_themselves(inputs: list[str | bytes]) -> bool:
    """The victim's SIRET or name in another caller's own input: hearing it back is no leak."""
    said = b" ".join(i if isinstance(i, bytes) else i.encode("utf-8", "surrogatepass") for i in inputs)
    return VICTIM_SIRET.encode() in re.sub(rb"\D", b"", said) or VICTIM_NAME.lower().encode() in said.lower()


@settings(max_examples=examples(1.5))
@given(events=dialogue_events)
async def test_dialogue_answers_keys_and_words_in_french(client: TestClient, services: BotServices, victim: Victim,
                                                         events: list[tuple[str, str]]) -> None:
    watched = None if said_it_themselves([v for _, v in events]) else victim
    conversation = services.conversation("fuzz")
    assert_french(conversation.start().texts)
    for kind, value in events:
        await drive(conversation, kind, value, watched)
    assert conversation_of(client, victim.session_id).slots.get("siret") == VICTIM_SIRET


@pytest.mark.parametrize("path", corpus_params("dtmf") + corpus_params("text"))
async def test_corpus_into_the_dialogue(services: BotServices, path: Path) -> None:
    """Each input at the first question and inside a flow that waits for typed digits."""
    value = path.read_text("utf-8")
    kind = "dtmf" if path.parent.name == "dtmf" else "text"
    conversation = services.conversation("corpus")
    conversation.start()
    await drive(conversation, kind, value)
    conversation = services.conversation("corpus-flow")
    conversation.start()
    await drive(conversation, "text", "je voudrais connaître le solde de mon compte")
    assert conversation.state is State.FLOW and conversation.flow is not None and conversation.flow.keypad_entry
    await drive(conversation, kind, value)
    await drive(conversation, "dtmf", "#")


# ------------------------------------------------------------------ (b) media-stream messages

b64_text = st.binary(max_size=400).map(lambda b: base64.b64encode(b).decode())
twilio_like = st.fixed_dictionaries(
    {"event": st.sampled_from(sorted(EVENTS)) | json_values},
    optional={
        "media": st.fixed_dictionaries({}, optional={"payload": b64_text | json_values | st.text(max_size=40),
                                                     "track": st.sampled_from(["inbound", "outbound"]) | json_values,
                                                     "chunk": json_values, "timestamp": json_values}) | json_values,
        "dtmf": st.fixed_dictionaries({}, optional={"digit": st.text(max_size=3) | json_values}) | json_values,
        "start": st.fixed_dictionaries({}, optional={"streamSid": json_values, "customParameters": json_values})
        | json_values,
        "transfer": st.fixed_dictionaries({}, optional={"status": st.sampled_from(["bridged", "failed"]) | json_values,
                                                        "team": json_values}) | json_values,
        "streamSid": json_values, "sequenceNumber": json_values,
    },
)
media_messages = st.one_of(
    twilio_like.map(json.dumps),
    json_values.map(json.dumps),
    st.text(st.characters(codec=None), max_size=200),
    twilio_like.map(json.dumps).flatmap(lambda s: st.integers(0, len(s)).map(lambda n: s[:n])),   # truncated
    st.sampled_from([p.read_text("utf-8") for p in corpus("media")]),
)


@pytest.fixture(scope="module")
async def serializer() -> MediaStreamSerializer:
    """The next layer after the parse, set up as a pipeline sets it up."""
    serializer = MediaStreamSerializer("MZfuzz")
    await serializer.setup(FrameProcessorSetup(clock=SystemClock(), task_manager=TaskManager(),
                                               pipeline_worker=PipelineWorker(Pipeline([]))))
    return serializer


async def parse_then_deserialize(serializer: MediaStreamSerializer, raw: str) -> None:
    """parse_message returns the message or raises ProtocolError, nothing else; what it
    lets through, the serializer turns into a frame (or nothing) without an error."""
    try:
        message = parse_message(raw)
    except ProtocolError:
        return
    assert isinstance(message, dict) and message["event"] in EVENTS
    await serializer.deserialize(raw)


@settings(max_examples=examples(10))
@given(raw=media_messages)
async def test_media_stream_messages_parse_or_are_refused(serializer: MediaStreamSerializer, raw: str) -> None:
    await parse_then_deserialize(serializer, raw)


@pytest.mark.parametrize("path", corpus_params("media"))
async def test_corpus_media_messages(serializer: MediaStreamSerializer, path: Path) -> None:
    await parse_then_deserialize(serializer, path.read_text("utf-8"))


# ------------------------------------------------------------------ (d) data-channel messages

# What the caller page sends (bot/static/caller.js sendKey) and anything else a peer may:
# pipecat parses the channel's JSON and hands every message to the dialogue processor.
datachannel_messages = st.one_of(
    st.fixed_dictionaries({"type": st.just("dtmf"), "keys": keypad_strings | json_values},
                          optional={"label": st.just("rtvi-ai") | json_values}),
    json_values,
)


async def through_the_dialogue_processor(services: BotServices, messages: list[Any]) -> None:
    """The messages into a DialogueProcessor after the greeting: no error frame, and all it
    says is French."""
    call = CallLog(services.store, await services.store.open_call("webrtc"))
    processor = DialogueProcessor(conversation=services.conversation("datachannel"), call=call)
    frames = [CallConnectedFrame(), *(InputTransportMessageFrame(message=m) for m in messages)]
    async with asyncio.timeout(30):
        down, up = await run_test(processor, frames_to_send=frames)
    errors = [f for f in up + down if isinstance(f, ErrorFrame)]
    assert not errors, f"{errors} for {messages!r:.300}"
    spoken = [f.text for f in down if isinstance(f, TTSSpeakFrame)]
    assert spoken, f"not even the greeting for {messages!r:.300}"
    for text in spoken:
        assert_french([text], messages)
    for f in down:
        if isinstance(f, OutputTransportMessageUrgentFrame):
            assert f.message.get("type") == "transcript" and isinstance(f.message.get("text"), str)
            json.dumps(f.message)   # it goes back over the data channel


@settings(max_examples=examples(0.5))
@given(messages=st.lists(datachannel_messages, min_size=1, max_size=4))
async def test_data_channel_messages_reach_the_dialogue_safely(services: BotServices, messages: list[Any]) -> None:
    await through_the_dialogue_processor(services, messages)


@pytest.mark.parametrize("path", corpus_params("datachannel"))
async def test_corpus_data_channel_messages(services: BotServices, path: Path) -> None:
    await through_the_dialogue_processor(services, [json.loads(path.read_text("utf-8"))])
