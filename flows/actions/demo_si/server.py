"""HTTP server of the demo information system: the REST API of SI_API.md over SQLite.

Stdlib only (ThreadingHTTPServer), so it runs in either virtualenv. One SQLite
connection per request; the failure counter is updated inside BEGIN IMMEDIATE
transactions, so concurrent calls cannot both slip under the limit.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import sqlite3
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from flows.actions.demo_si import service
from flows.actions.demo_si.db import connect

log = logging.getLogger("callbot.demo_si")
MAX_BODY = 16 * 1024
_ACCOUNT = re.compile(r"^/v1/accounts/([A-Za-z0-9_-]{1,64})/(summary|status|turnover|attestation-requests)$")


class DemoSiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], db_path: Path, token: str | None = None) -> None:
        super().__init__(address, Handler)
        self.db_path = Path(db_path)
        self.token = token or None


class Handler(BaseHTTPRequestHandler):
    server: DemoSiServer
    server_version = "callbot-demo-si/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # Paths hold only opaque account references; bodies (SIRET, postcode) are never logged.
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _authorized(self) -> bool:
        if not self.server.token:
            return True
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.server.token}".encode())

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise service.BadRequest("bad Content-Length") from None
        if length > MAX_BODY:
            raise service.BadRequest("body too large")
        raw = self.rfile.read(length) if length > 0 else b"{}"
        try:
            body = json.loads(raw)
        except ValueError:
            raise service.BadRequest("body is not JSON") from None
        if not isinstance(body, dict):
            raise service.BadRequest("body is not a JSON object")
        return body

    def _handle(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        if method == "GET" and path == "/v1/health":
            self._send(HTTPStatus.OK, {"ok": True})
            return
        if not self._authorized():
            self._send(HTTPStatus.UNAUTHORIZED, {"error": "unauthorized"})
            return
        now = datetime.now(UTC)
        today = now.astimezone().date()
        try:
            conn = connect(self.server.db_path)
        except (FileNotFoundError, sqlite3.Error) as e:
            log.error("demo SI database unusable: %s", e)
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "database_unavailable"})
            return
        try:
            match = _ACCOUNT.match(path)
            if method == "POST" and path == "/v1/identifications":
                body = self._body()
                answer = service.identify(conn, body.get("siret"), body.get("postcode"), now)
                self._send(HTTPStatus.OK, answer)
            elif match and method == "GET" and match[2] in ("summary", "status", "turnover"):
                handler = {"summary": service.summary, "status": service.status, "turnover": service.turnover}
                self._send(HTTPStatus.OK, handler[match[2]](conn, match[1], today))
            elif match and method == "POST" and match[2] == "attestation-requests":
                body = self._body()
                answer = service.request_attestation(conn, match[1], body.get("kind"), now)
                self._send(HTTPStatus.CREATED if answer["recorded"] else HTTPStatus.OK, answer)
            else:
                self._send(HTTPStatus.NOT_FOUND, {"error": "no_such_route"})
        except service.BadRequest as e:
            self._send(HTTPStatus.BAD_REQUEST, {"error": "bad_request", "detail": str(e)})
        except service.NotFound:
            self._send(HTTPStatus.NOT_FOUND, {"error": "unknown_account"})
        except (sqlite3.Error, KeyError) as e:
            log.error("demo SI error on %s %s: %s", method, path, type(e).__name__)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal"})
        finally:
            conn.close()

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")


def make_server(db_path: Path, host: str = "127.0.0.1", port: int = 5056,
                token: str | None = None) -> DemoSiServer:
    return DemoSiServer((host, port), db_path, token if token is not None else os.environ.get("CALLBOT_SI_TOKEN"))


def serve(db_path: Path, host: str = "127.0.0.1", port: int = 5056) -> None:
    server = make_server(db_path, host, port)
    log.info("demo SI on http://%s:%d (database %s)", host, server.server_address[1], db_path)
    try:
        server.serve_forever()
    finally:
        server.server_close()
