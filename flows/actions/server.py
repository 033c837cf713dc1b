"""The action server: rasa-sdk's webhook app for flows.actions.actions, behind a shared secret.

    CALLBOT_ACTIONS_SECRET=... python -m flows.actions.server --port 5055 [--host 127.0.0.1]

(with .venv-actions' python, PYTHONPATH = the repository root). It differs from
`python -m rasa_sdk` in what it trusts:

- It listens on 127.0.0.1 unless `--host` or CALLBOT_ACTIONS_HOST says otherwise
  (rasa-sdk's SANIC_HOST, default 0.0.0.0, is not read).
- Every request but GET /health must carry CALLBOT_ACTIONS_SECRET, either as
  `Authorization: Bearer <secret>` (flows/action_client.py) or as `?token=<secret>` (what
  Rasa sends for `action_endpoint: {url: ..., token: ...}` in endpoints.yml); otherwise
  401. Without the secret in the environment the server does not start (exit code 2).
- One process, no Sanic workers: the per-call identification failure counts live in it.
- No access log: Rasa's token travels in the query string.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os
import sys

from rasa_sdk.endpoint import create_app
from rasa_sdk.executor import ActionExecutor
from sanic import Sanic, response
from sanic.exceptions import NotFound
from sanic.request import Request
from sanic.response import HTTPResponse

ACTIONS_PACKAGE = "flows.actions.actions"
SECRET_ENV = "CALLBOT_ACTIONS_SECRET"
HOST_ENV = "CALLBOT_ACTIONS_HOST"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5055
OPEN_PATHS = frozenset({"/health"})
EXIT_NO_SECRET = 2

log = logging.getLogger("callbot.actions.server")


def presented_secrets(request: Request) -> list[str]:
    """The secrets a request presents: its Bearer credentials and Rasa's `token` parameter."""
    found = []
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        found.append(credentials.strip())
    found += [value for value in request.args.getlist("token", []) if value]
    return found


def is_authorized(request: Request, secret: str) -> bool:
    expected = secret.encode()
    # Every candidate is compared, in constant time each: how far a guess matched stays hidden.
    matches = [hmac.compare_digest(candidate.encode("utf-8", "replace"), expected)
               for candidate in presented_secrets(request)]
    return any(matches)


def build_app(secret: str) -> Sanic:
    """rasa-sdk's app for ACTIONS_PACKAGE, every route but /health behind `secret`."""
    if not secret:
        raise ValueError(f"{SECRET_ENV} is empty")
    executor = ActionExecutor()
    executor.register_package(ACTIONS_PACKAGE)
    # Our callers are servers, never browsers: no cross-origin access.
    app = create_app(executor, cors_origins=None)
    app.config.ACCESS_LOG = False

    # Ahead of rasa-sdk's CORS middleware, which answers any OPTIONS request itself.
    @app.on_request(priority=100)
    async def require_secret(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS or is_authorized(request, secret):
            return None
        log.warning("refused %s %s from %s: missing or wrong secret", request.method, request.path[:100], request.ip)
        return response.json({"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": "Bearer"})

    # rasa-sdk's catch-all handler would make an unknown path a 500 with a traceback.
    @app.exception(NotFound)
    async def not_found(request: Request, exception: NotFound) -> HTTPResponse:
        return response.json({"error": "not found"}, status=404)

    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m flows.actions.server", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default=os.environ.get(HOST_ENV) or DEFAULT_HOST,
                        help=f"address to listen on (default: ${HOST_ENV} or {DEFAULT_HOST})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        print(f"error: {SECRET_ENV} is not set: the action server refuses to start without the secret "
              "its clients must present (Authorization: Bearer, or Rasa's endpoints.yml token)",
              file=sys.stderr)
        return EXIT_NO_SECRET
    app = build_app(secret)
    log.info("action server on http://%s:%d (%s)", args.host, args.port, ACTIONS_PACKAGE)
    app.run(host=args.host, port=args.port, single_process=True, access_log=False, motd=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
