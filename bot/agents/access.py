"""Who may use the agent hub over HTTP: the session cookie, roles per route, the CSRF
header on state-changing requests, and the sign-in routes (/api/login, /api/logout,
/api/me, /login)."""

from __future__ import annotations

import hmac
import html
import json
import logging
import math
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from bot.agents.accounts import ROLES, AccountLocked, Accounts, SessionInfo, role_at_least
from bot.auth import bearer_token, token_matches

log = logging.getLogger("callbot.agents.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

accounts_key = web.AppKey("accounts", Accounts)
SESSION_COOKIE = "callbot_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
STATIC = Path(__file__).resolve().parent.parent / "static"
BAD_CREDENTIALS = "identifiant ou mot de passe incorrect"
NO_STORE = {"Cache-Control": "no-store"}
MAX_LOGIN_BODY = 4096   # the answers carry the CSRF token


async def current_user(request: web.Request) -> SessionInfo | None:
    """The signed-in user of this request's session cookie, if any."""
    return await request.app[accounts_key].session(request.cookies.get(SESSION_COOKIE))


def require_role(role: str, *, token: Callable[[web.Request], str] | None = None) -> Callable[[Handler], Handler]:
    """Decorator: the route answers a signed-in user of `role` or above (request["user"]);
    401 without a valid session, 403 when the role is too low or when a state-changing
    request lacks the session's X-CSRF-Token. With `token`, a machine client presenting
    `Authorization: Bearer <token(request)>` is admitted instead (request["user"] is None);
    a wrong bearer token is 403."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            if token is not None and (presented := bearer_token(request)) is not None:
                expected = token(request)
                if not token_matches(presented, expected):
                    log.warning("refused %s %s from %s: wrong or unconfigured bearer token",
                                request.method, request.path, request.remote)
                    raise _forbidden(request, "jeton d'accès refusé" if expected else
                                     "jeton d'accès refusé (aucun jeton configuré sur le serveur)")
                request["user"] = None
                return await handler(request)
            user = await current_user(request)
            if user is None:
                raise _unauthorized(request)
            if not role_at_least(user.role, role):
                log.warning("refused %s %s to %s (%s): needs %s", request.method, request.path,
                            user.username, user.role, role)
                raise _forbidden(request, f"accès réservé au rôle {role} ou au-dessus")
            if request.method not in SAFE_METHODS and not _csrf_ok(request, user):
                log.warning("refused %s %s to %s: missing or wrong %s", request.method, request.path,
                            user.username, CSRF_HEADER)
                raise _forbidden(request, f"en-tête {CSRF_HEADER} manquant ou invalide")
            request["user"] = user
            return await handler(request)

        guarded.required_role = role  # type: ignore[attr-defined]  (read by the route audit test)
        return guarded

    return decorate


def _csrf_ok(request: web.Request, user: SessionInfo) -> bool:
    presented = request.headers.get(CSRF_HEADER, "")
    try:
        return bool(presented) and hmac.compare_digest(presented.encode("utf-8"), user.csrf_token.encode("utf-8"))
    except UnicodeEncodeError:
        return False


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def _unauthorized(request: web.Request) -> web.HTTPUnauthorized:
    if _is_api(request):
        return web.HTTPUnauthorized(reason="connexion requise (session absente ou expirée)")
    login = "/login?next=" + quote(request.rel_url.path_qs, safe="")
    return web.HTTPUnauthorized(text=_page("Connexion requise", "Votre session est absente ou a expiré.",
                                           login, "Se connecter"), content_type="text/html")


def _forbidden(request: web.Request, reason: str) -> web.HTTPForbidden:
    if _is_api(request):
        return web.HTTPForbidden(reason=reason)
    return web.HTTPForbidden(text=_page("Accès refusé", reason[0].upper() + reason[1:] + ".", "/login",
                                        "Changer de compte"), content_type="text/html")


def _page(title: str, message: str, link: str, link_text: str) -> str:
    return (f'<!doctype html>\n<html lang="fr"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1"></head>\n'
            f"<body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
            f'<p><a href="{html.escape(link)}">{html.escape(link_text)}</a></p></body></html>\n')


def _me(user: SessionInfo) -> dict:
    return {"username": user.username, "role": user.role, "teams": list(user.teams),
            "csrf_token": user.csrf_token}


async def login_api(request: web.Request) -> web.Response:
    """Sign in: {"username", "password"} -> the user and their CSRF token, and the session cookie."""
    # JSON only: a cross-site form cannot send this content type (no sign-in by a forged form).
    if request.content_type != "application/json":
        return _json_error(415, "corps JSON attendu (Content-Type: application/json)")
    raw = await request.content.read(MAX_LOGIN_BODY + 1)
    if len(raw) > MAX_LOGIN_BODY:
        return _json_error(413, "corps trop long")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):   # not JSON, not UTF-8, nested too deep
        return _json_error(400, "corps JSON invalide")
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("username", "password")):
        return _json_error(400, 'attendu : {"username": "...", "password": "..."}')
    accounts = request.app[accounts_key]
    try:
        user = await accounts.login(body["username"], body["password"], remote=request.remote)
    except AccountLocked as e:
        retry = max(1, math.ceil(e.retry_after_s))
        # Returned, not raised: the error middleware would drop Retry-After.
        return web.json_response({"error": f"trop d'essais infructueux : réessayez dans {retry} s",
                                  "retry_after_s": retry}, status=429, headers={"Retry-After": str(retry)})
    if user is None:
        return _json_error(401, BAD_CREDENTIALS)
    await accounts.close_session(request.cookies.get(SESSION_COOKIE))   # this browser's previous one
    token, session = await accounts.open_session(user.username)
    response = web.json_response(_me(session), headers=NO_STORE)
    settings = accounts.settings
    response.set_cookie(SESSION_COOKIE, token, max_age=max(1, math.ceil(settings.session_ttl_s)), path="/",
                        httponly=True, samesite="Strict", secure=settings.cookie_secure or None)
    return response


@require_role("agent")
async def logout_api(request: web.Request) -> web.Response:
    """Sign out: the session is closed and the cookie cleared."""
    accounts = request.app[accounts_key]
    await accounts.close_session(request.cookies.get(SESSION_COOKIE))
    log.info("%s signed out", request["user"].username)
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict",
                        secure=accounts.settings.cookie_secure or None)
    return response


@require_role("agent")
async def me_api(request: web.Request) -> web.Response:
    """Who is signed in, with the CSRF token the page sends back on changes."""
    return web.json_response(_me(request["user"]), headers=NO_STORE)


async def login_page(request: web.Request) -> web.StreamResponse:
    page = STATIC / "login.html"
    if not page.is_file():
        raise web.HTTPNotFound(text="login.html is missing")
    return web.FileResponse(page, headers=NO_STORE)


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=NO_STORE)


def add_access_routes(app: web.Application) -> None:
    """The sign-in routes; the app sets app[accounts_key] in its lifecycle."""
    app.router.add_post("/api/login", login_api)
    app.router.add_post("/api/logout", logout_api)
    app.router.add_get("/api/me", me_api)
    app.router.add_get("/login", login_page)
