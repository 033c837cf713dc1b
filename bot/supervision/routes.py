"""The supervisor console over HTTP: the calls list and call pages (supervisor role), the
recording and exports (audited), unmasking (admin role, with a reason, audited), the
indicators page and its JSON, and /metrics for Prometheus (bearer token).

Every call record leaves these routes masked unless an admin gave a reason; every
listening, export and unmasking is in the audit log, with who and when."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.agents.access import NO_STORE, STATIC, require_role
from bot.agents.hours import OpeningHours
from bot.auth import bearer_token, token_matches
from bot.store import Store
from bot.supervision.audit import AuditLog
from bot.supervision.calls import CallFilter, call_detail, list_calls
from bot.supervision.indicators import compute_indicators
from bot.supervision.indicators_page import indicators_html
from bot.supervision.masking import webvtt
from bot.supervision.metrics import CONTENT_TYPE, metrics_text
from bot.supervision.settings import SupervisionSettings

log = logging.getLogger("callbot.supervision")

MAX_REASON = 500
MAX_RANGE_DAYS = 366
LISTEN_AUDIT_EVERY_S = 600.0   # the player asks for the recording in ranges: one entry per listening
DEFAULT_DAYS = 7


@dataclass
class Supervision:
    """What the console's routes need, set by the server's lifecycle."""

    store: Store
    settings: SupervisionSettings
    hours: OpeningHours
    recordings_dir: Path
    audit: AuditLog = field(init=False)
    _listened: dict[tuple[str, str], float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.audit = AuditLog(self.store)

    async def audit_listen(self, username: str, role: str, call_id: str) -> None:
        key, now = (username, call_id), time.monotonic()
        if now - self._listened.get(key, -LISTEN_AUDIT_EVERY_S) >= LISTEN_AUDIT_EVERY_S:
            # Listenings older than the window are forgotten: the map stays as small as the
            # number of recordings being listened to now.
            self._listened = {k: t for k, t in self._listened.items() if now - t < LISTEN_AUDIT_EVERY_S}
            self._listened[key] = now
            await self.audit.record(username=username, role=role, action="listen", call_id=call_id)


supervision_key = web.AppKey("supervision", Supervision)


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(reason=message)


def _day(raw: str | None, name: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise _bad(f"{name} : date attendue au format AAAA-MM-JJ") from None


def _range(request: web.Request, zone: ZoneInfo, *, default_days: int | None) -> tuple[date | None, date | None,
                                                                                        datetime | None, datetime | None]:
    """The [from, to] days asked (to included), and the same as UTC instants [start, end)."""
    first, last = _day(request.query.get("from"), "from"), _day(request.query.get("to"), "to")
    if default_days is not None:
        last = last or datetime.now(zone).date()
        first = first or last - timedelta(days=default_days - 1)
    if first and last and (last < first or (last - first).days >= MAX_RANGE_DAYS):
        raise _bad(f"période invalide : from <= to, {MAX_RANGE_DAYS} jours au plus")
    start = datetime.combine(first, clock(), zone) if first else None
    end = datetime.combine(last + timedelta(days=1), clock(), zone) if last else None
    return first, last, start, end


def _flag(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name, "")
    if raw in ("", "all"):
        return None
    if raw in ("1", "true", "oui"):
        return True
    if raw in ("0", "false", "non"):
        return False
    raise _bad(f"{name} : attendu 1 ou 0")


def _int(request: web.Request, name: str, default: int) -> int:
    try:
        return int(request.query.get(name, default))
    except ValueError:
        raise _bad(f"{name} : nombre entier attendu") from None


@require_role("supervisor")
async def calls_api(request: web.Request) -> web.Response:
    """GET /api/supervisor/calls?q=&from=&to=&channel=&outcome=&team=&question_type=
    &transferred=&slow=&office=&sort=date|duration&order=desc|asc&page=&page_size="""
    sup = request.app[supervision_key]
    q = request.query
    _, _, start, end = _range(request, ZoneInfo(sup.hours.timezone), default_days=None)
    try:
        f = CallFilter(start=start, end=end, channel=q.get("channel") or None, outcome=q.get("outcome") or None,
                       team=q.get("team") or None, question_type=q.get("question_type") or None,
                       transferred=_flag(request, "transferred"), slow=_flag(request, "slow"),
                       office=q.get("office") or None, q=q.get("q", "")[:200], sort=q.get("sort", "date"),
                       descending=q.get("order", "desc") != "asc", page=_int(request, "page", 1),
                       page_size=_int(request, "page_size", sup.settings.page_size))
    except ValueError as e:
        raise _bad(str(e)) from None
    return web.json_response(await list_calls(sup.store, f), headers=NO_STORE)


async def _call_or_404(sup: Supervision, call_id: str, *, masked: bool = True) -> dict[str, Any]:
    call = await call_detail(sup.store, call_id, masked=masked)
    if call is None:
        raise web.HTTPNotFound(reason="appel inconnu")
    return call


@require_role("supervisor")
async def call_api(request: web.Request) -> web.Response:
    """A call's record, masked, with its timeline; the opening is audited ("view")."""
    sup, user = request.app[supervision_key], request["user"]
    call = await _call_or_404(sup, request.match_info["call_id"])
    await sup.audit.record(username=user.username, role=user.role, action="view", call_id=call["id"])
    return web.json_response(call, headers=NO_STORE)


@require_role("supervisor")
async def recording_api(request: web.Request) -> web.StreamResponse:
    """The call's stereo WAV (caller left, bot right; sample 0 is the record's t0, so a
    turn's start_ms is its place in the file). Listening is audited."""
    sup, user = request.app[supervision_key], request["user"]
    call_id = request.match_info["call_id"]
    record = await sup.store.get_call(call_id)
    path = Path(record["recording"]).resolve() if record and record["recording"] else None
    if path is None or not path.is_relative_to(sup.recordings_dir.resolve()) or not path.is_file():
        raise web.HTTPNotFound(reason="pas d'enregistrement pour cet appel")
    await sup.audit_listen(user.username, user.role, call_id)
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", **NO_STORE})


async def _export(request: web.Request, fmt: str) -> web.Response:
    """The masked call as a file to keep (JSON or WebVTT subtitles), audited."""
    sup, user = request.app[supervision_key], request["user"]
    call = await _call_or_404(sup, request.match_info["call_id"])
    await sup.audit.record(username=user.username, role=user.role, action="export", call_id=call["id"], detail=fmt)
    attachment = {"Content-Disposition": f'attachment; filename="appel-{call["id"]}.{fmt}"', **NO_STORE}
    if fmt == "vtt":
        return web.Response(text=webvtt(call), content_type="text/vtt", charset="utf-8", headers=attachment)
    return web.Response(text=json.dumps(call, ensure_ascii=False, indent=1), content_type="application/json",
                        headers=attachment)


@require_role("supervisor")
async def export_json_api(request: web.Request) -> web.Response:
    return await _export(request, "json")


@require_role("supervisor")
async def export_vtt_api(request: web.Request) -> web.Response:
    return await _export(request, "vtt")


async def _reason(request: web.Request) -> str:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise _bad("corps JSON invalide") from None
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise _bad(f"un motif est obligatoire ({MAX_REASON} caractères au plus)")
    return reason.strip()


@require_role("admin")
async def unmask_api(request: web.Request) -> web.Response:
    """POST {"reason"}: the call unmasked, for admins only; the reason is in the audit log
    before anything is shown."""
    sup, user = request.app[supervision_key], request["user"]
    reason = await _reason(request)
    call = await _call_or_404(sup, request.match_info["call_id"], masked=False)
    await sup.audit.record(username=user.username, role=user.role, action="unmask", call_id=call["id"],
                           reason=reason)
    log.info("call %s unmasked by %s", call["id"], user.username)
    return web.json_response(call, headers=NO_STORE)


@require_role("admin")
async def audit_api(request: web.Request) -> web.Response:
    """The audit log (newest first), optionally for one call."""
    sup = request.app[supervision_key]
    entries = await sup.audit.entries(call_id=request.query.get("call_id") or None,
                                      limit=max(1, min(_int(request, "limit", 200), 1000)))
    return web.json_response({"entries": entries}, dumps=lambda o: json.dumps(o, default=str), headers=NO_STORE)


async def _indicators(request: web.Request) -> tuple[dict[str, Any], date, date]:
    sup = request.app[supervision_key]
    first, last, start, end = _range(request, ZoneInfo(sup.hours.timezone), default_days=DEFAULT_DAYS)
    assert first and last and start and end
    return await compute_indicators(sup.store, start, end, hours=sup.hours, settings=sup.settings), first, last


@require_role("supervisor")
async def indicators_api(request: web.Request) -> web.Response:
    """GET /api/supervisor/indicators?from=&to= (local days, both included; the last 7 by default)."""
    indicators, first, last = await _indicators(request)
    return web.json_response({"from": first.isoformat(), "to": last.isoformat(), **indicators},
                             dumps=lambda o: json.dumps(o, default=str), headers=NO_STORE)


@require_role("supervisor")
async def indicators_page(request: web.Request) -> web.Response:
    indicators, first, last = await _indicators(request)
    return web.Response(text=indicators_html(indicators, start=first, end=last), content_type="text/html",
                        headers=NO_STORE)


@require_role("supervisor")
async def calls_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "supervisor.html", headers=NO_STORE)


@require_role("supervisor")
async def call_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "supervisor-call.html", headers=NO_STORE)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format, for the scraper holding the bearer token (no session)."""
    sup = request.app[supervision_key]
    if not token_matches(bearer_token(request), sup.settings.metrics_token):
        log.warning("refused /metrics from %s: wrong or unconfigured bearer token", request.remote)
        return web.Response(status=403, text="jeton d'accès refusé\n")
    return web.Response(body=(await metrics_text(sup.store)).encode("utf-8"),
                        headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})


def add_supervision_routes(app: web.Application) -> None:
    """The app sets app[supervision_key] in its lifecycle."""
    app.router.add_get("/supervisor", calls_page)
    app.router.add_get("/supervisor/calls/{call_id}", call_page)
    app.router.add_get("/supervisor/indicators", indicators_page)
    app.router.add_get("/api/supervisor/calls", calls_api)
    app.router.add_get("/api/supervisor/calls/{call_id}", call_api)
    app.router.add_get("/api/supervisor/calls/{call_id}/recording", recording_api)
    app.router.add_get("/api/supervisor/calls/{call_id}/export", export_json_api)
    app.router.add_get("/api/supervisor/calls/{call_id}/transcript.vtt", export_vtt_api)
    app.router.add_post("/api/supervisor/calls/{call_id}/unmask", unmask_api)
    app.router.add_get("/api/supervisor/audit", audit_api)
    app.router.add_get("/api/supervisor/indicators", indicators_api)
    app.router.add_get("/metrics", metrics)
