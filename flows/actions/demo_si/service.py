"""What the demo information system answers, over its SQLite database.

Each function takes a connection and the current time, and returns the JSON-ready dict
of the REST API (flows/actions/SI_API.md); the HTTP layer only routes and encodes.
"""

from __future__ import annotations

import hmac
import sqlite3
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flows.actions.demo_si.db import meta, siret_key
from flows.actions.demo_si.periods import Period, deadline, next_period, period_containing
from flows.actions.information_system import ATTESTATION_KINDS
from flows.identifiers import postcode_is_valid, siret_is_valid

MAX_FAILURES = 3
FAILURE_WINDOW = timedelta(hours=24)
LOCK_DURATION = timedelta(hours=24)
ONLINE_DELAY_HOURS = 48
POST_DELAY_HOURS = 10 * 24
# An attestation of vigilance certifies declarations and payments are up to date.
VIGILANCE_BLOCKED_BY = ("declaration_missing", "payment_rejected", "closed")


class BadRequest(ValueError):
    """The request itself is malformed (HTTP 400)."""


class NotFound(LookupError):
    """No such account reference (HTTP 404)."""


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds")


def identify(conn: sqlite3.Connection, siret: Any, postcode: Any, now: datetime) -> dict[str, Any]:
    """SIRET plus postcode of the business address. A wrong postcode and an unknown SIRET
    get the same answer and count the same way; 3 failures within 24 h lock phone
    identification for that SIRET for 24 h, even with the right postcode."""
    if not (isinstance(siret, str) and siret_is_valid(siret) and isinstance(postcode, str)
            and postcode_is_valid(postcode)):
        raise BadRequest("siret (14 digits, checksum) and postcode (5 digits) are required")
    key = siret_key(meta(conn, "siret_salt"), siret)
    conn.execute("BEGIN IMMEDIATE")
    try:
        guard = conn.execute("SELECT * FROM identification_guard WHERE siret_key = ?", (key,)).fetchone()
        if guard and guard["locked_until"] and datetime.fromisoformat(guard["locked_until"]) > now:
            conn.execute("COMMIT")
            return {"outcome": "locked"}
        account = conn.execute("SELECT ref, postcode FROM accounts WHERE siret_key = ?", (key,)).fetchone()
        # Compare against a dummy when the SIRET is unknown: same work either way.
        expected = account["postcode"] if account else "\x00" * 5
        if hmac.compare_digest(expected.encode(), postcode.encode()) and account:
            conn.execute("DELETE FROM identification_guard WHERE siret_key = ?", (key,))
            conn.execute("COMMIT")
            return {"outcome": "verified", "account_ref": account["ref"]}
        failures, window_start = 1, now
        if guard and now - datetime.fromisoformat(guard["window_start"]) < FAILURE_WINDOW:
            failures, window_start = guard["failures"] + 1, datetime.fromisoformat(guard["window_start"])
        locked_until = now + LOCK_DURATION if failures >= MAX_FAILURES else None
        conn.execute(
            "INSERT INTO identification_guard (siret_key, failures, window_start, locked_until)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (siret_key) DO UPDATE SET failures = excluded.failures,"
            " window_start = excluded.window_start, locked_until = excluded.locked_until",
            (key, failures, _iso(window_start), _iso(locked_until) if locked_until else None),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return {"outcome": "locked" if locked_until else "refused"}


def _account(conn: sqlite3.Connection, ref: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM accounts WHERE ref = ?", (ref,)).fetchone()
    if row is None:
        raise NotFound(ref)
    return row


def _period(row: sqlite3.Row | None) -> Period | None:
    if row is None:
        return None
    return date.fromisoformat(row["period_start"]), date.fromisoformat(row["period_end"])


def _next_deadline(conn: sqlite3.Connection, account: sqlite3.Row, today: date) -> dict[str, Any] | None:
    """The first period not declared after the last declared one, and its deadline."""
    if account["status"] == "closed":
        return None
    last = conn.execute(
        "SELECT period_start, period_end FROM declarations WHERE account_id = ? ORDER BY period_end DESC LIMIT 1",
        (account["id"],),
    ).fetchone()
    last_period = _period(last)
    if last_period is None:
        period = period_containing(account["frequency"], date.fromisoformat(account["created_on"]))
    else:
        period = next_period(account["frequency"], last_period)
    due = deadline(period)
    return {"date": due.isoformat(), "period_start": period[0].isoformat(),
            "period_end": period[1].isoformat(), "overdue": due < today}


def _debt(conn: sqlite3.Connection, account_id: int) -> tuple[int, str | None]:
    row = conn.execute(
        "SELECT COALESCE(SUM(amount_cents), 0) AS total, MIN(due_on) AS due FROM debts"
        " WHERE account_id = ? AND settled_on IS NULL", (account_id,),
    ).fetchone()
    return int(row["total"]), row["due"]


def summary(conn: sqlite3.Connection, ref: str, today: date) -> dict[str, Any]:
    account = _account(conn, ref)
    amount, due = _debt(conn, account["id"])
    decl = conn.execute(
        "SELECT * FROM declarations WHERE account_id = ? ORDER BY period_end DESC LIMIT 1", (account["id"],)
    ).fetchone()
    pay = conn.execute(
        "SELECT amount_cents, paid_on FROM payments WHERE account_id = ? AND outcome = 'received'"
        " ORDER BY paid_on DESC, id DESC LIMIT 1", (account["id"],),
    ).fetchone()
    return {
        "amount_due_cents": amount,
        "due_date": due,
        "last_declaration": {
            "period_start": decl["period_start"], "period_end": decl["period_end"],
            "declared_on": decl["declared_on"], "turnover_cents": decl["sales_cents"] + decl["services_cents"],
        } if decl else None,
        "last_payment": {"amount_cents": pay["amount_cents"], "received_on": pay["paid_on"]} if pay else None,
        "next_deadline": _next_deadline(conn, account, today),
    }


def status(conn: sqlite3.Connection, ref: str, today: date) -> dict[str, Any]:
    account = _account(conn, ref)
    state = account["status"]
    answer: dict[str, Any] = {
        "status": state, "since": account["status_since"], "missing_period": None,
        "rejected_payment": None, "debt": None, "closed_on": account["closed_on"],
        "online_space": bool(account["online_space"]),
    }
    if state == "declaration_missing":
        answer["missing_period"] = _next_deadline(conn, account, today)
    elif state == "payment_rejected":
        rejected = conn.execute(
            "SELECT amount_cents, paid_on FROM payments WHERE account_id = ? AND outcome = 'rejected'"
            " ORDER BY paid_on DESC LIMIT 1", (account["id"],),
        ).fetchone()
        if rejected:
            answer["rejected_payment"] = {"amount_cents": rejected["amount_cents"], "rejected_on": rejected["paid_on"]}
    amount, due = _debt(conn, account["id"])
    if amount:
        answer["debt"] = {"amount_cents": amount, "due_date": due}
    return answer


def turnover(conn: sqlite3.Connection, ref: str, today: date) -> dict[str, Any]:
    """Turnover declared for the periods of this calendar year so far, and of last year."""
    account = _account(conn, ref)

    def year(y: int) -> dict[str, Any]:
        row = conn.execute(
            "SELECT COALESCE(SUM(sales_cents), 0) AS sales, COALESCE(SUM(services_cents), 0) AS services,"
            " COUNT(*) AS n FROM declarations WHERE account_id = ? AND period_start >= ? AND period_start <= ?",
            (account["id"], f"{y}-01-01", f"{y}-12-31"),
        ).fetchone()
        return {"year": y, "sales_cents": row["sales"], "services_cents": row["services"],
                "periods_declared": row["n"]}

    return {"regime": account["regime"], "activity": account["activity"],
            "current_year": year(today.year), "previous_year": year(today.year - 1)}


def request_attestation(conn: sqlite3.Connection, ref: str, kind: Any, now: datetime) -> dict[str, Any]:
    if kind not in ATTESTATION_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(ATTESTATION_KINDS)}")
    account = _account(conn, ref)
    state = account["status"]
    # The attestation shows the business address: it cannot be issued to one known wrong.
    if state == "address_unknown" or (kind == "vigilance" and state in VIGILANCE_BLOCKED_BY):
        return {"recorded": False, "kind": kind, "refusal": state}
    online = bool(account["online_space"]) and state != "suspended"
    delay = ONLINE_DELAY_HOURS if online else POST_DELAY_HOURS
    conn.execute("BEGIN IMMEDIATE")
    try:
        row_id = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM attestation_requests").fetchone()[0]
        request_id = f"ATT-{now:%Y%m%d}-{row_id:06d}"
        conn.execute(
            "INSERT INTO attestation_requests (id, request_id, account_id, kind, requested_at, delivery,"
            " deliver_by, channel) VALUES (?, ?, ?, ?, ?, ?, ?, 'callbot')",
            (row_id, request_id, account["id"], kind, _iso(now), "online" if online else "post",
             _iso(now + timedelta(hours=delay))),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return {"recorded": True, "kind": kind, "request_id": request_id,
            "delivery": "online" if online else "post", "delay_hours": delay}
