"""`callbot bench supervision`: does a supervisor find a call in seconds? A store of N
calls over 90 days (turns written the way callers and the bot talk, identifiers included,
events, a tenth transferred) is built in a temporary SQLite file, then each console query
is timed over many runs: the list's first page, a words search over everything, a search
with filters, one call masked, and the indicators of 30 days."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.agents.hours import OpeningHours
from bot.bench import percentile
from bot.store import Call, Event, Store, Turn
from bot.supervision.calls import CallFilter, call_detail, list_calls
from bot.supervision.indicators import compute_indicators
from bot.supervision.settings import SupervisionSettings
from flows.schema import TEAMS

QUESTIONS = (
    "Bonjour, je voudrais savoir comment obtenir une attestation de vigilance pour un client.",
    "Je suis auto-entrepreneur depuis deux ans et j'ai reçu une mise en demeure, je comprends pas.",
    "Euh oui bonjour, c'est quoi le plafond de chiffre d'affaires en micro cette année ?",
    "J'ai oublié mon mot de passe et je n'arrive plus à me connecter à mon espace.",
    "Je voudrais déclarer mon chiffre d'affaires du trimestre mais le site me met une erreur.",
    "Mon SIRET c'est le 732 829 320 00074, vous avez bien reçu mon virement de mardi ?",
)
REPLIES = (
    "L'attestation de vigilance se télécharge dans votre espace en ligne. Avez-vous une autre question ?",
    "J'ai noté : sept trois deux, huit deux neuf, trois deux zéro, zéro zéro zéro sept quatre. Est-ce exact ?",
    "Le plafond est de 77 700 euros pour les prestations de services. Avez-vous une autre question ?",
)
OUTCOMES = ("completed", "caller_hung_up", "transferred", "handoff")


async def build_store(path: Path, calls: int, seed: int = 7) -> Store:
    store = Store(f"sqlite+aiosqlite:///{path}")
    await store.create_schema()
    rng = random.Random(seed)
    now = datetime.now(UTC)
    for start in range(0, calls, 1000):
        async with store.session() as s, s.begin():
            for _ in range(min(1000, calls - start)):
                began = now - timedelta(seconds=rng.uniform(0, 90 * 86400))
                outcome = rng.choice(OUTCOMES)
                call = Call(channel=rng.choice(("sip", "webrtc", "text")), caller=f"06{rng.randrange(10**8):08d}",
                            started_at=began, ended_at=began + timedelta(seconds=rng.uniform(20, 600)),
                            outcome=outcome, team=rng.choice(TEAMS))
                s.add(call)
                await s.flush()
                at = 0
                for index in range(rng.randrange(2, 10)):
                    speaker = "caller" if index % 2 else "bot"
                    text = rng.choice(QUESTIONS if speaker == "caller" else REPLIES)
                    s.add(Turn(call_id=call.id, index=index, speaker=speaker, text=text, start_ms=at,
                               end_ms=at + 3000, total_ms=rng.randrange(600, 2500) if speaker == "bot" else None))
                    at += 4000
                if outcome in ("transferred", "handoff"):
                    s.add(Event(call_id=call.id, at_ms=at, kind="handoff",
                                data={"team": call.team, "reason": "asked_human"}))
    return store


async def _timed(runs: int, query: Callable[[], Awaitable[Any]]) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await query()
        times.append(1000 * (time.perf_counter() - started))
    return times


async def run(calls: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        built = time.perf_counter()
        store = await build_store(Path(tmp) / "bench.sqlite3", calls)
        built_s = time.perf_counter() - built
        one = (await list_calls(store, CallFilter(page_size=1)))["calls"][0]["id"]
        hours = OpeningHours.parse("lun-ven 08:30-17:30")
        end = datetime.now(UTC)
        queries = {
            "list, first page (50)": lambda: list_calls(store, CallFilter()),
            "search 'mise en demeure' (all calls)": lambda: list_calls(store, CallFilter(q="mise en demeure")),
            "search + team + last 7 days": lambda: list_calls(store, CallFilter(
                q="attestation", team="attestations", start=end - timedelta(days=7))),
            "sort by duration, page 3": lambda: list_calls(store, CallFilter(sort="duration", page=3)),
            "one call, masked": lambda: call_detail(store, one),
            "indicators, 30 days": lambda: compute_indicators(store, end - timedelta(days=30), end, hours=hours,
                                                              settings=SupervisionSettings()),
        }
        results = {}
        for name, query in queries.items():
            times = await _timed(runs, query)
            results[name] = {"p50_ms": statistics.median(times), "p95_ms": percentile(times, 0.95)}
        await store.close()
    return {"calls": calls, "runs": runs, "store_built_s": round(built_s, 1), "queries": results}


def main(*, calls: int = 20_000, runs: int = 10, as_json: bool = False) -> int:
    report = asyncio.run(run(calls, runs))
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"supervisor console on {report['calls']} calls over 90 days (SQLite, {report['runs']} runs each; "
          f"store built in {report['store_built_s']} s)")
    print(f"  {'query':<40}{'p50 ms':>10}{'p95 ms':>10}")
    for name, r in report["queries"].items():
        print(f"  {name:<40}{r['p50_ms']:>10.0f}{r['p95_ms']:>10.0f}")
    return 0
