"""Who may use which route: bearer tokens from the environment (the admin token for call
records, the gateway token on the media stream) and Twilio's request signature for a
CPaaS media stream. Users, roles and sessions are in bot/agents/access.py."""

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
