"""What the actions need from the information system (SI), and a client of its REST API.

The API is documented in flows/actions/SI_API.md; the demo SI (flows/actions/demo_si)
implements it over SQLite, a production SI implements it in front of the real one.
Stdlib only: this module runs in the action server's virtualenv (rasa-sdk) and in the
bot's.

Settings come from the environment only: CALLBOT_SI_URL (default
http://127.0.0.1:5056), CALLBOT_SI_TOKEN (bearer token, optional), CALLBOT_SI_TIMEOUT_S
(default 2). The dialogue engine waits 3 s for an action: one SI call per action keeps
inside that.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

log = logging.getLogger("callbot.actions.si")

DEFAULT_SI_URL = "http://127.0.0.1:5056"
ATTESTATION_KINDS = ("vigilance", "chiffre_affaires", "formation")


class InformationSystemError(RuntimeError):
    """Base of what the SI connector raises."""


class SiUnavailable(InformationSystemError):
    """The SI could not be reached or gave no usable answer: the caller hears that the
    information is not available right now, never a guess."""


class UnknownAccount(InformationSystemError):
    """The account reference is not (or no longer) known: identify again."""


@dataclass(frozen=True)
class IdentityResult:
    outcome: str                    # "verified", "refused" (never says why) or "locked"
    account_ref: str | None = None  # opaque, only when verified

    @property
    def verified(self) -> bool:
        return self.outcome == "verified" and bool(self.account_ref)


@dataclass(frozen=True)
class Declaration:
    period_start: date
    period_end: date
    declared_on: date
    turnover_cents: int


@dataclass(frozen=True)
class Payment:
    amount_cents: int
    received_on: date


@dataclass(frozen=True)
class Deadline:
    date: date
    period_start: date
    period_end: date
    overdue: bool


@dataclass(frozen=True)
class AccountSummary:
    amount_due_cents: int
    due_date: date | None
    last_declaration: Declaration | None
    last_payment: Payment | None
    next_deadline: Deadline | None   # None once the business has ceased


@dataclass(frozen=True)
class RejectedPayment:
    amount_cents: int
    rejected_on: date


@dataclass(frozen=True)
class Debt:
    amount_cents: int
    due_date: date


@dataclass(frozen=True)
class AccountStatus:
    # up_to_date, declaration_missing, payment_rejected, suspended, address_unknown,
    # debt_due, closed
    status: str
    since: date | None
    missing_period: Deadline | None
    rejected_payment: RejectedPayment | None
    debt: Debt | None
    closed_on: date | None
    online_space: bool


@dataclass(frozen=True)
class YearTurnover:
    year: int
    sales_cents: int
    services_cents: int
    periods_declared: int

    @property
    def total_cents(self) -> int:
        return self.sales_cents + self.services_cents


@dataclass(frozen=True)
class Turnover:
    regime: str          # "micro" or "reel"
    activity: str        # "sales", "services", "mixed" or "liberal"
    current_year: YearTurnover
    previous_year: YearTurnover


@dataclass(frozen=True)
class AttestationReceipt:
    recorded: bool
    kind: str
    request_id: str | None = None
    delivery: str | None = None          # "online" or "post"
    delay_hours: int | None = None
    refusal: str | None = None           # why not recorded: an account status


class InformationSystem(Protocol):
    async def identify(self, siret: str, postcode: str) -> IdentityResult: ...

    async def account_summary(self, account_ref: str) -> AccountSummary: ...

    async def account_status(self, account_ref: str) -> AccountStatus: ...

    async def turnover(self, account_ref: str) -> Turnover: ...

    async def request_attestation(self, account_ref: str, kind: str) -> AttestationReceipt: ...


def _day(value: Any) -> date:
    return date.fromisoformat(str(value))


def _day_or_none(value: Any) -> date | None:
    return None if value is None else _day(value)


def _deadline(d: dict[str, Any] | None) -> Deadline | None:
    if not d:
        return None
    return Deadline(date=_day(d["date"]), period_start=_day(d["period_start"]),
                    period_end=_day(d["period_end"]), overdue=bool(d["overdue"]))


def _year(d: dict[str, Any]) -> YearTurnover:
    return YearTurnover(year=int(d["year"]), sales_cents=int(d["sales_cents"]),
                        services_cents=int(d["services_cents"]),
                        periods_declared=int(d["periods_declared"]))


class HttpInformationSystem:
    """Client of the SI REST API (SI_API.md). Blocking urllib in a worker thread: the
    action server's event loop keeps serving other calls meanwhile."""

    def __init__(self, base_url: str = DEFAULT_SI_URL, *, token: str | None = None,
                 timeout_s: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token or None
        self._timeout = timeout_s
        host = urllib.parse.urlsplit(self.base_url).hostname or ""
        # A local SI is never reached through an HTTP proxy set in the environment.
        local = host in ("localhost", "127.0.0.1", "::1")
        self._opener = urllib.request.build_opener(
            *([urllib.request.ProxyHandler({})] if local else []))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> HttpInformationSystem:
        env = dict(os.environ) if env is None else env
        try:
            timeout = float(env.get("CALLBOT_SI_TIMEOUT_S", "2"))
        except ValueError:
            timeout = 2.0
        return cls(env.get("CALLBOT_SI_URL") or DEFAULT_SI_URL,
                   token=env.get("CALLBOT_SI_TOKEN"), timeout_s=timeout)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        route = path.rsplit("/", 1)[-1]   # for logs: never the account reference
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise UnknownAccount("unknown account reference") from None
            # 401/403 (token), 400 (our request), 5xx: nothing the caller can act on.
            raise SiUnavailable(f"{method} {route}: HTTP {e.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", e)
            raise SiUnavailable(f"{method} {route}: {type(reason).__name__}") from None
        try:
            answer = json.loads(payload)
        except ValueError:
            raise SiUnavailable(f"{method} {route}: answer is not JSON") from None
        if not isinstance(answer, dict):
            raise SiUnavailable(f"{method} {route}: answer is not a JSON object")
        return answer

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self._call, method, path, body)

    @staticmethod
    def _account_path(account_ref: str, tail: str) -> str:
        return f"/v1/accounts/{urllib.parse.quote(account_ref, safe='')}/{tail}"

    async def identify(self, siret: str, postcode: str) -> IdentityResult:
        answer = await self._request("POST", "/v1/identifications", {"siret": siret, "postcode": postcode})
        outcome = answer.get("outcome")
        if outcome not in ("verified", "refused", "locked"):
            raise SiUnavailable("identification: unexpected outcome")
        ref = answer.get("account_ref") if outcome == "verified" else None
        if outcome == "verified" and not (isinstance(ref, str) and ref):
            raise SiUnavailable("identification: verified without an account reference")
        return IdentityResult(outcome=outcome, account_ref=ref)

    async def account_summary(self, account_ref: str) -> AccountSummary:
        a = await self._request("GET", self._account_path(account_ref, "summary"))
        try:
            decl, pay = a.get("last_declaration"), a.get("last_payment")
            return AccountSummary(
                amount_due_cents=int(a["amount_due_cents"]),
                due_date=_day_or_none(a.get("due_date")),
                last_declaration=Declaration(
                    period_start=_day(decl["period_start"]), period_end=_day(decl["period_end"]),
                    declared_on=_day(decl["declared_on"]), turnover_cents=int(decl["turnover_cents"]),
                ) if decl else None,
                last_payment=Payment(amount_cents=int(pay["amount_cents"]),
                                     received_on=_day(pay["received_on"])) if pay else None,
                next_deadline=_deadline(a.get("next_deadline")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise SiUnavailable(f"summary: malformed answer ({type(e).__name__})") from None

    async def account_status(self, account_ref: str) -> AccountStatus:
        a = await self._request("GET", self._account_path(account_ref, "status"))
        try:
            rejected, debt = a.get("rejected_payment"), a.get("debt")
            return AccountStatus(
                status=str(a["status"]),
                since=_day_or_none(a.get("since")),
                missing_period=_deadline(a.get("missing_period")),
                rejected_payment=RejectedPayment(int(rejected["amount_cents"]), _day(rejected["rejected_on"]))
                if rejected else None,
                debt=Debt(int(debt["amount_cents"]), _day(debt["due_date"])) if debt else None,
                closed_on=_day_or_none(a.get("closed_on")),
                online_space=bool(a.get("online_space")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise SiUnavailable(f"status: malformed answer ({type(e).__name__})") from None

    async def turnover(self, account_ref: str) -> Turnover:
        a = await self._request("GET", self._account_path(account_ref, "turnover"))
        try:
            return Turnover(regime=str(a["regime"]), activity=str(a["activity"]),
                            current_year=_year(a["current_year"]), previous_year=_year(a["previous_year"]))
        except (KeyError, TypeError, ValueError) as e:
            raise SiUnavailable(f"turnover: malformed answer ({type(e).__name__})") from None

    async def request_attestation(self, account_ref: str, kind: str) -> AttestationReceipt:
        a = await self._request("POST", self._account_path(account_ref, "attestation-requests"), {"kind": kind})
        try:
            if a.get("recorded"):
                return AttestationReceipt(recorded=True, kind=str(a["kind"]), request_id=str(a["request_id"]),
                                          delivery=str(a["delivery"]), delay_hours=int(a["delay_hours"]))
            return AttestationReceipt(recorded=False, kind=str(a.get("kind", kind)), refusal=str(a["refusal"]))
        except (KeyError, TypeError, ValueError) as e:
            raise SiUnavailable(f"attestation: malformed answer ({type(e).__name__})") from None
