"""The agent hub's accounts on the call store: users, roles, passwords and sign-in sessions.
No HTTP here (bot/agents/access.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import yaml
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from bot.agents.tables import User, UserSession
from bot.config import ROOT, AgentSettings
from bot.store import Store, as_utc, utc_now

log = logging.getLogger("callbot.agents.accounts")

ROLES = ("agent", "supervisor", "admin")


def _load_teams() -> tuple[str, ...]:
    # The routing teams are the ones the bot names to callers: the keys of team_names.
    with (ROOT / "flows" / "data" / "prompts.yaml").open(encoding="utf-8") as f:
        return tuple(yaml.safe_load(f)["team_names"])


TEAMS = _load_teams()
USERNAME = re.compile(r"[a-z0-9._-]{2,64}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024    # scrypt pre-hashes any length, but nobody needs more, and it bounds the work

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES, HASH_BYTES = 16, 32


def role_at_least(role: str, needed: str) -> bool:
    """Whether `role` may do what `needed` may (admin >= supervisor >= agent)."""
    if role not in ROLES or needed not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)


class AccountLocked(Exception):
    """Too many failed sign-ins in a row: no password is checked until `retry_after_s` passed."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"account locked for {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class UserInfo:
    username: str
    role: str
    teams: tuple[str, ...]
    sip_uri: str | None


@dataclass(frozen=True)
class SessionInfo(UserInfo):
    """A signed-in user; `csrf_token` must come back in X-CSRF-Token on state-changing requests."""

    csrf_token: str = field(repr=False)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """`scrypt$n$r$p$salt$hash` (base64). Blocking (~50 ms): call it off the event loop."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, n, r, p, HASH_BYTES)
    return "$".join(["scrypt", str(n), str(r), str(p), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str) -> bool:
    """Constant time over the digest. Blocking, like hash_password."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(expected)
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(want))
    except ValueError:  # malformed stored hash, or scrypt parameters it refuses
        return False
    return hmac.compare_digest(got, want)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # OpenSSL's default memory cap (32 MiB) is too tight for some valid parameters.
    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p,
                          dklen=length, maxmem=256 * n * r + 2**20)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# Checked against when the username is unknown, so that it costs the same scrypt work as a
# known one. Random digest: nothing matches it.
_DUMMY_HASH = "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                        _b64(secrets.token_bytes(SALT_BYTES)), _b64(secrets.token_bytes(HASH_BYTES))])




def _token_hash(token: str) -> str | None:
    if not token or len(token) > 256:
        return None
    try:
        return hashlib.sha256(token.encode("utf-8")).hexdigest()
    except UnicodeEncodeError:  # undecodable cookie bytes, kept as surrogates
        return None


def _info(user: User) -> UserInfo:
    return UserInfo(user.username, user.role, _split(user.teams), user.sip_uri)


def _split(teams: str) -> tuple[str, ...]:
    return tuple(t for t in teams.split(",") if t)


class Accounts:
    """Users and sessions on the store: every node sharing the database sees the same ones."""

    # Failed sign-ins under unknown names are counted too (in memory, per node), so that a
    # lockout does not tell which names exist. Bounded: the oldest are forgotten first.
    UNKNOWN_TRACKED = 10_000

    def __init__(self, store: Store, settings: AgentSettings) -> None:
        self.store = store
        self.settings = settings
        self._unknown_failures: OrderedDict[str, tuple[int, datetime | None]] = OrderedDict()

    async def add_user(self, username: str, role: str, password: str, teams: Iterable[str] = (),
                       sip_uri: str | None = None) -> UserInfo:
        teams = tuple(dict.fromkeys(teams))
        _check_username(username)
        _check_role(role)
        _check_teams(teams)
        _check_password(password)
        _check_sip(sip_uri)
        password_hash = await asyncio.to_thread(hash_password, password)
        try:
            async with self.store.session() as s, s.begin():
                if await s.get(User, username) is not None:
                    raise ValueError(f"user {username!r} already exists")
                user = User(username=username, role=role, teams=",".join(teams), sip_uri=sip_uri,
                            password_hash=password_hash, failed_logins=0)
                s.add(user)
        except IntegrityError as e:  # added at the same moment elsewhere
            raise ValueError(f"user {username!r} already exists") from e
        log.info("user %s added (%s)", username, role)
        return _info(user)

    async def set_password(self, username: str, password: str) -> None:
        """Also lifts a lockout and signs the user out everywhere: whoever knew the old
        password must not keep a session opened with it."""
        _check_password(password)
        password_hash = await asyncio.to_thread(hash_password, password)
        async with self.store.session() as s, s.begin():
            result = await s.execute(update(User).where(User.username == username).values(
                password_hash=password_hash, failed_logins=0, locked_until=None))
            if not result.rowcount:
                raise ValueError(f"unknown user {username!r}")
            await s.execute(delete(UserSession).where(UserSession.username == username))
        log.info("password of %s changed; their sessions closed", username)

    async def remove_user(self, username: str) -> None:
        async with self.store.session() as s, s.begin():
            result = await s.execute(delete(User).where(User.username == username))
            if not result.rowcount:
                raise ValueError(f"unknown user {username!r}")
            await s.execute(delete(UserSession).where(UserSession.username == username))
        log.info("user %s removed", username)

    async def list_users(self) -> list[UserInfo]:
        async with self.store.session() as s:
            return [_info(u) for u in await s.scalars(select(User).order_by(User.username))]

    async def get_user(self, username: str) -> UserInfo | None:
        async with self.store.session() as s:
            user = await s.get(User, username)
            return None if user is None else _info(user)

    async def login(self, username: str, password: str, remote: str | None = None) -> UserInfo | None:
        """The user when the password is theirs; None otherwise, whether the name exists or
        not. Raises AccountLocked after settings.max_failed_logins failures in a row."""
        username = username.strip().lower()
        async with self.store.session() as s:
            user = await s.get(User, username) if USERNAME.fullmatch(username) else None
        if user is None:
            await self._unknown_login(username, password, remote)
            return None
        now = utc_now()
        if user.locked_until is not None and as_utc(user.locked_until) > now:
            raise self._locked(username, as_utc(user.locked_until) - now, remote)
        # The scrypt work is done whatever the password's length, as for an unknown name.
        ok = await asyncio.to_thread(verify_password, password[:MAX_PASSWORD], user.password_hash)
        ok = ok and len(password) <= MAX_PASSWORD
        if ok:
            async with self.store.session() as s, s.begin():
                await s.execute(update(User).where(User.username == username).values(
                    failed_logins=0, locked_until=None))
            log.info("%s signed in from %s", username, remote or "?")
            return _info(user)
        await self._count_failure(username, remote)
        return None

    async def _count_failure(self, username: str, remote: str | None) -> None:
        async with self.store.session() as s, s.begin():
            # One UPDATE: concurrent failures on several nodes are all counted.
            await s.execute(update(User).where(User.username == username).values(
                failed_logins=User.failed_logins + 1))
            user = await s.get(User, username, populate_existing=True)
            if user is None:
                return
            failures = user.failed_logins
            if failures >= self.settings.max_failed_logins:
                # The count starts again once the lock is over.
                user.failed_logins, user.locked_until = 0, utc_now() + timedelta(seconds=self.settings.lockout_s)
        if failures >= self.settings.max_failed_logins:
            log.warning("%s locked for %.0f s after %d failed sign-ins (last from %s)", username,
                        self.settings.lockout_s, failures, remote or "?")
        else:
            log.warning("failed sign-in for %s from %s (%d in a row)", username, remote or "?", failures)

    async def _unknown_login(self, username: str, password: str, remote: str | None) -> None:
        now = utc_now()
        failures, locked_until = self._unknown_failures.get(username, (0, None))
        if locked_until is not None and locked_until > now:
            raise self._locked("an unknown name", locked_until - now, remote)
        await asyncio.to_thread(verify_password, password[:MAX_PASSWORD], _DUMMY_HASH)
        if not USERNAME.fullmatch(username):
            # No account can have this name, so no lock to imitate; not kept (unbounded size).
            log.warning("failed sign-in for an impossible name from %s", remote or "?")
            return
        failures += 1
        if failures >= self.settings.max_failed_logins:
            failures, locked_until = 0, now + timedelta(seconds=self.settings.lockout_s)
        else:
            locked_until = None
        self._unknown_failures[username] = (failures, locked_until)
        self._unknown_failures.move_to_end(username)
        while len(self._unknown_failures) > self.UNKNOWN_TRACKED:
            self._unknown_failures.popitem(last=False)
        # Not the name itself: a password typed in the wrong field must not reach the logs.
        log.warning("failed sign-in for an unknown name from %s", remote or "?")

    def _locked(self, who: str, left: timedelta, remote: str | None) -> AccountLocked:
        log.warning("sign-in refused for %s from %s: locked %.0f s more", who, remote or "?",
                    left.total_seconds())
        return AccountLocked(max(left.total_seconds(), 0.0))

    async def open_session(self, username: str) -> tuple[str, SessionInfo]:
        """A new session: the token for the cookie (only its hash is kept) and who it is."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        async with self.store.session() as s, s.begin():
            user = await s.get(User, username)
            if user is None:
                raise ValueError(f"unknown user {username!r}")
            s.add(UserSession(token_hash=_token_hash(token), username=username, csrf_token=csrf,
                              expires_at=utc_now() + timedelta(seconds=self.settings.session_ttl_s)))
            info = _info(user)
        return token, SessionInfo(info.username, info.role, info.teams, info.sip_uri, csrf)

    async def session(self, token: str | None) -> SessionInfo | None:
        """Who holds this token; None when unknown or expired. The role and teams are read
        now: a change applies to open sessions at once."""
        token_hash = _token_hash(token or "")
        if token_hash is None:
            return None
        async with self.store.session() as s:
            row = (await s.execute(select(UserSession, User).join(User, User.username == UserSession.username)
                                   .where(UserSession.token_hash == token_hash))).first()
        if row is None:
            return None
        session, user = row
        if as_utc(session.expires_at) <= utc_now():
            await self.close_session(token)
            return None
        return SessionInfo(user.username, user.role, _split(user.teams), user.sip_uri, session.csrf_token)

    async def close_session(self, token: str | None) -> None:
        token_hash = _token_hash(token or "")
        if token_hash is None:
            return
        async with self.store.session() as s, s.begin():
            await s.execute(delete(UserSession).where(UserSession.token_hash == token_hash))

    async def purge_expired_sessions(self) -> int:
        async with self.store.session() as s, s.begin():
            result = await s.execute(delete(UserSession).where(UserSession.expires_at <= utc_now()))
            return result.rowcount or 0


def _check_username(username: str) -> None:
    if not isinstance(username, str) or not USERNAME.fullmatch(username):
        raise ValueError(f"username {username!r}: 2 to 64 characters among a-z 0-9 . _ - (lowercase)")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")


def _check_teams(teams: tuple[str, ...]) -> None:
    unknown = [t for t in teams if t not in TEAMS]
    if unknown:
        raise ValueError(f"unknown team(s) {', '.join(map(repr, unknown))}: the teams are {', '.join(TEAMS)}")


def _check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValueError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"the password must have at most {MAX_PASSWORD} characters")


def _check_sip(sip_uri: str | None) -> None:
    if sip_uri is not None and (not sip_uri.startswith("sip:") or len(sip_uri) > 255 or len(sip_uri) < 5
                                or any(c.isspace() for c in sip_uri)):
        raise ValueError(f"SIP address {sip_uri!r}: expected sip:user@host")
