"""The agent hub's accounts and access: users, passwords, lockout, sessions, roles per
route, the CSRF header, the bearer-token alternative, and `callbot users`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.agents.access import (
    SESSION_COOKIE,
    accounts_key,
    add_access_routes,
    current_user,
    require_role,
)
from bot.agents.accounts import (
    TEAMS,
    AccountLocked,
    Accounts,
    role_at_least,
)
from bot.agents.tables import User
from bot.config import AgentSettings
from bot.server import json_errors
from bot.store import Store

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"
MACHINE_TOKEN = "machine-token-for-tests-0123456789"


@require_role("agent")
async def agent_thing(request: web.Request) -> web.Response:
    """An agent's route."""
    return web.json_response({"user": request["user"].username})


@require_role("supervisor")
async def supervisor_thing(request: web.Request) -> web.Response:
    return web.json_response({"user": request["user"].username})


@require_role("supervisor", token=lambda request: MACHINE_TOKEN)
async def call_record(request: web.Request) -> web.Response:
    user = request["user"]
    return web.json_response({"id": request.match_info["call_id"], "user": user and user.username})


@require_role("agent")
async def agent_page(request: web.Request) -> web.Response:
    return web.Response(text="console", content_type="text/html")


def make_app(db: Path, settings: AgentSettings) -> web.Application:
    app = web.Application(middlewares=[json_errors])

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        store = Store(f"sqlite+aiosqlite:///{db}")
        await store.create_schema()
        app[accounts_key] = Accounts(store, settings)
        yield
        await store.close()

    app.cleanup_ctx.append(lifecycle)
    add_access_routes(app)
    app.router.add_get("/api/agent-thing", agent_thing)
    app.router.add_post("/api/agent-thing", agent_thing)
    app.router.add_get("/api/supervisor-thing", supervisor_thing)
    app.router.add_get("/api/calls/{call_id}", call_record)
    app.router.add_get("/console", agent_page)
    return app


@asynccontextmanager
async def hub(tmp_path: Path, **agents) -> AsyncIterator[tuple[TestClient, Accounts]]:
    settings = AgentSettings(**{"lockout_s": 900.0, "session_ttl_s": 3600.0, **agents})
    async with TestClient(TestServer(make_app(tmp_path / "hub.sqlite3", settings))) as client:
        accounts = client.app[accounts_key]
        await accounts.add_user("alice", "agent", PASSWORD, teams=("declaration",))
        await accounts.add_user("sam", "supervisor", PASSWORD, sip_uri="sip:sam@pbx.example")
        yield client, accounts


async def sign_in(client: TestClient, username: str, password: str = PASSWORD):
    return await client.post("/api/login", json={"username": username, "password": password})


def cookie_header(response) -> str:
    return next(v for v in response.headers.getall("Set-Cookie") if v.startswith(SESSION_COOKIE + "="))


def test_roles_are_ordered():
    assert role_at_least("admin", "agent") and role_at_least("supervisor", "supervisor")
    assert not role_at_least("agent", "supervisor") and not role_at_least("nobody", "agent")
    assert "declaration" in TEAMS and "accueil" in TEAMS
    with pytest.raises(ValueError):
        require_role("boss")


async def test_add_user_validation(tmp_path):
    async with hub(tmp_path) as (_, accounts):
        bad = [
            {"username": "A", "role": "agent"},                           # too short, uppercase
            {"username": "bob smith", "role": "agent"},
            {"username": "bob", "role": "manager"},
            {"username": "bob", "role": "agent", "teams": ("nowhere",)},
            {"username": "bob", "role": "agent", "password": "short"},
            {"username": "bob", "role": "agent", "sip_uri": "tel:+33100000000"},
            {"username": "alice", "role": "agent"},                       # exists
        ]
        for case in bad:
            with pytest.raises(ValueError):
                await accounts.add_user(**{"password": PASSWORD, **case})
        assert [u.username for u in await accounts.list_users()] == ["alice", "sam"]
        sam = await accounts.get_user("sam")
        assert sam is not None and sam.role == "supervisor" and sam.sip_uri == "sip:sam@pbx.example"
        assert await accounts.get_user("bob") is None


async def test_password_is_hashed(tmp_path):
    async with hub(tmp_path) as (_, accounts):
        async with accounts.store.session() as s:
            stored = await s.scalar(select(User.password_hash).where(User.username == "alice"))
        assert stored.startswith("scrypt$16384$8$1$") and PASSWORD not in stored
        assert PASSWORD.encode() not in (tmp_path / "hub.sqlite3").read_bytes()
        await accounts.set_password("alice", "another long password")
        assert await accounts.login("alice", PASSWORD) is None
        assert (await accounts.login("alice", "another long password")).username == "alice"


async def test_login_sets_a_strict_cookie(tmp_path):
    async with hub(tmp_path) as (client, _):
        response = await sign_in(client, "alice")
        assert response.status == 200
        body = await response.json()
        assert body["username"] == "alice" and body["role"] == "agent" and body["teams"] == ["declaration"]
        assert len(body["csrf_token"]) >= 32
        cookie = cookie_header(response)
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert "Max-Age=3600" in cookie and "Secure" not in cookie
        me = await client.get("/api/me")
        assert me.status == 200 and await me.json() == body


async def test_secure_cookie_behind_tls(tmp_path):
    async with hub(tmp_path, cookie_secure=True) as (client, _):
        assert "Secure" in cookie_header(await sign_in(client, "alice"))


async def test_bad_credentials_look_alike(tmp_path):
    async with hub(tmp_path) as (client, _):
        wrong = await sign_in(client, "alice", "not the password")
        unknown = await sign_in(client, "mallory", "not the password")
        assert wrong.status == unknown.status == 401
        assert await wrong.json() == await unknown.json() == {"error": "identifiant ou mot de passe incorrect"}
        assert SESSION_COOKIE not in wrong.cookies
        for body in ({"username": "alice"}, {"username": "alice", "password": 3}, ["alice"]):
            assert (await client.post("/api/login", json=body)).status == 400
        malformed = await client.post("/api/login", data="{", headers={"Content-Type": "application/json"})
        assert malformed.status == 400
        form = await client.post("/api/login", data={"username": "alice", "password": PASSWORD})
        assert form.status == 415


async def test_lockout(tmp_path):
    async with hub(tmp_path, max_failed_logins=5, lockout_s=1.0) as (client, accounts):
        for _ in range(4):
            assert (await sign_in(client, "alice", "not the password")).status == 401
        assert (await sign_in(client, "alice")).status == 200     # a success resets the count
        for _ in range(5):
            assert (await sign_in(client, "alice", "not the password")).status == 401
        locked = await sign_in(client, "alice")
        assert locked.status == 429 and int(locked.headers["Retry-After"]) == 1
        assert "error" in await locked.json()
        with pytest.raises(AccountLocked) as raised:
            await accounts.login("alice", PASSWORD)
        assert 0 < raised.value.retry_after_s <= 1.0
        # Unknown names lock the same way: a lockout does not tell which names exist.
        for _ in range(5):
            assert (await sign_in(client, "mallory", "not the password")).status == 401
        assert (await sign_in(client, "mallory", "not the password")).status == 429
        await asyncio.sleep(1.1)
        assert (await sign_in(client, "alice")).status == 200


async def test_session_expires(tmp_path):
    async with hub(tmp_path, session_ttl_s=0.5) as (client, accounts):
        token, session = await accounts.open_session("alice")
        assert (await accounts.session(token)) == session
        response = await sign_in(client, "alice")
        assert (await client.get("/api/me")).status == 200
        await asyncio.sleep(0.6)
        assert await accounts.session(token) is None
        assert (await client.get("/api/me")).status == 401
        assert response.status == 200
        await accounts.open_session("sam")
        await asyncio.sleep(0.6)
        assert await accounts.purge_expired_sessions() == 1
        assert await accounts.session(None) is None and await accounts.session("x" * 1000) is None


async def test_logout_kills_the_session(tmp_path):
    async with hub(tmp_path) as (client, accounts):
        csrf = (await (await sign_in(client, "alice")).json())["csrf_token"]
        token = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
        assert (await client.post("/api/logout")).status == 403                # no CSRF header
        response = await client.post("/api/logout", headers={"X-CSRF-Token": csrf})
        assert response.status == 204
        assert 'callbot_session=""' in cookie_header(response) or "Max-Age=0" in cookie_header(response)
        assert await accounts.session(token) is None
        # The old cookie, kept by a client that ignores the clearing, opens nothing either.
        client.session.cookie_jar.update_cookies({SESSION_COOKIE: token})
        assert (await client.get("/api/me")).status == 401


async def test_csrf_on_state_changes(tmp_path):
    async with hub(tmp_path) as (client, _):
        assert (await client.post("/api/agent-thing")).status == 401
        csrf = (await (await sign_in(client, "alice")).json())["csrf_token"]
        assert (await client.get("/api/agent-thing")).status == 200
        refused = await client.post("/api/agent-thing")
        assert refused.status == 403 and "X-CSRF-Token" in (await refused.json())["error"]
        assert (await client.post("/api/agent-thing", headers={"X-CSRF-Token": csrf + "x"})).status == 403
        allowed = await client.post("/api/agent-thing", headers={"X-CSRF-Token": csrf})
        assert allowed.status == 200 and await allowed.json() == {"user": "alice"}


async def test_roles_per_route(tmp_path):
    async with hub(tmp_path) as (client, _):
        assert (await client.get("/api/supervisor-thing")).status == 401
        await sign_in(client, "alice")
        assert (await client.get("/api/supervisor-thing")).status == 403
        await sign_in(client, "sam")
        assert (await client.get("/api/supervisor-thing")).status == 200
        assert await (await client.get("/api/agent-thing")).json() == {"user": "sam"}
        me = await (await client.get("/api/me")).json()
        assert me["username"] == "sam" and me["role"] == "supervisor"


async def test_bearer_token_alternative(tmp_path):
    async with hub(tmp_path) as (client, _):
        ok = await client.get("/api/calls/c1", headers={"Authorization": f"Bearer {MACHINE_TOKEN}"})
        assert ok.status == 200 and await ok.json() == {"id": "c1", "user": None}
        wrong = await client.get("/api/calls/c1", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 403
        assert (await client.get("/api/calls/c1")).status == 401
        # A route without a token alternative ignores the header: a session is needed.
        assert (await client.get("/api/agent-thing",
                                 headers={"Authorization": f"Bearer {MACHINE_TOKEN}"})).status == 401
        await sign_in(client, "sam")
        assert await (await client.get("/api/calls/c1")).json() == {"id": "c1", "user": "sam"}


async def test_pages_ask_to_sign_in(tmp_path):
    async with hub(tmp_path) as (client, _):
        page = await client.get("/console?x=1", allow_redirects=False)
        assert page.status == 401 and page.content_type == "text/html"
        assert "/login?next=%2Fconsole%3Fx%3D1" in await page.text()
        api = await client.get("/api/me")
        assert api.status == 401 and "error" in await api.json()
        await sign_in(client, "alice")
        assert (await client.get("/console")).status == 200
        assert await current_user(_FakeRequest(client)) is None  # no cookie on that one
        login = await client.get("/login")
        assert login.status == (200 if (ROOT / "bot" / "static" / "login.html").is_file() else 404)


class _FakeRequest:
    def __init__(self, client: TestClient) -> None:
        self.app = client.app
        self.cookies: dict[str, str] = {}


def test_guarded_routes_declare_their_role():
    for handler, role in ((agent_thing, "agent"), (supervisor_thing, "supervisor"), (call_record, "supervisor")):
        assert handler.required_role == role
    assert agent_thing.__name__ == "agent_thing" and agent_thing.__doc__ == "An agent's route."


def run_cli(tmp_path: Path, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBOT_")}
    env.update(CALLBOT_VAR_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    if password is not None:
        env["CALLBOT_NEW_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "bot.cli", "users", *args], cwd=ROOT, env=env, check=False,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


def test_users_command(tmp_path):
    added = run_cli(tmp_path, "add", "alice", "--role", "agent", "--teams", "declaration,paiement",
                    "--sip", "sip:alice@pbx.example", password=PASSWORD)
    assert added.returncode == 0, added.stderr
    assert PASSWORD not in added.stdout + added.stderr
    listed = run_cli(tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith("alice"))
    assert line.split() == ["alice", "agent", "declaration,paiement", "sip:alice@pbx.example"]
    assert "scrypt" not in listed.stdout
    no_password = run_cli(tmp_path, "add", "bob", "--role", "agent")
    assert no_password.returncode == 2 and "CALLBOT_NEW_PASSWORD" in no_password.stderr


async def test_remove_user_closes_their_sessions(tmp_path):
    async with hub(tmp_path) as (_, accounts):
        token, _ = await accounts.open_session("alice")
        await accounts.remove_user("alice")
        assert await accounts.session(token) is None and await accounts.get_user("alice") is None
        with pytest.raises(ValueError):
            await accounts.remove_user("alice")
        token, _ = await accounts.open_session("sam")
        await accounts.set_password("sam", "a brand new password")   # signed out everywhere
        assert await accounts.session(token) is None
