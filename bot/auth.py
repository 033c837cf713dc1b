"""Who may use which route: bearer tokens from the environment (the admin token for call
records, the gateway token on the media stream) and Twilio's request signature for a
CPaaS media stream. The agent-hub's users and roles build on `require_admin`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

log = logging.getLogger("callbot.auth")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant time; an unset expected token matches nothing."""
    if not expected or not presented:
        return False
    try:
        return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))
    except UnicodeEncodeError:  # undecodable header bytes, kept as surrogates by aiohttp
        return False


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """Twilio's X-Twilio-Signature: HMAC-SHA1 over the full URL then each POST parameter
    (name and value, sorted by name), base64. A media-stream WebSocket upgrade is a GET:
    the URL alone."""
    payload = url + "".join(f"{k}{v}" for k, v in sorted((params or {}).items()))
    digest = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def twilio_signature_ok(request: web.Request, auth_token: str, public_url: str | None = None) -> bool:
    """Whether the request carries Twilio's signature for this URL. Behind a proxy the
    URL Twilio signed is the public one (`public_url`), not what this server sees."""
    presented = request.headers.get("X-Twilio-Signature")
    if not auth_token or not presented:
        return False
    return token_matches(presented, twilio_signature(auth_token, public_url or str(request.url)))


def require_admin(token: Callable[[web.Request], str]) -> Callable[[Handler], Handler]:
    """Decorator: the route answers only a request carrying `Authorization: Bearer <admin
    token>`; 401 without credentials, 403 with wrong ones or when no token is configured
    (then nobody reads these routes)."""

    def decorate(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            expected = token(request)
            presented = bearer_token(request)
            if presented is None:
                raise web.HTTPUnauthorized(reason="credentials required (Authorization: Bearer <admin token>)",
                                           headers={"WWW-Authenticate": 'Bearer realm="callbot"'})
            if not token_matches(presented, expected):
                log.warning("refused %s %s from %s: wrong or unconfigured admin token",
                            request.method, request.path, request.remote)
                raise web.HTTPForbidden(reason="not allowed" if expected else
                                        "call records are closed: no CALLBOT_ADMIN_TOKEN is configured")
            return await handler(request)

        guarded.__name__ = handler.__name__
        guarded.__doc__ = handler.__doc__
        return guarded

    return decorate
