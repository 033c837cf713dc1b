"""SQLite schema of the demo information system, and where its file lives."""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
from pathlib import Path

SCHEMA_VERSION = "1"
ROOT = Path(__file__).resolve().parents[3]

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
    ref           TEXT NOT NULL UNIQUE,      -- opaque reference handed to the dialogue
    siret         TEXT NOT NULL UNIQUE,
    siret_key     TEXT NOT NULL UNIQUE,      -- HMAC of the SIRET, joins identification_guard
    business_name TEXT NOT NULL,
    first_name    TEXT NOT NULL,
    last_name     TEXT NOT NULL,
    trade         TEXT NOT NULL,
    address_line  TEXT NOT NULL,
    postcode      TEXT NOT NULL,             -- second identification factor
    city          TEXT NOT NULL,
    activity      TEXT NOT NULL CHECK (activity IN ('sales', 'services', 'mixed', 'liberal')),
    regime        TEXT NOT NULL CHECK (regime IN ('micro', 'reel')),
    frequency     TEXT NOT NULL CHECK (frequency IN ('monthly', 'quarterly')),
    created_on    TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('up_to_date', 'declaration_missing', 'payment_rejected',
                                                  'suspended', 'address_unknown', 'debt_due', 'closed')),
    status_since  TEXT,
    closed_on     TEXT,
    online_space  INTEGER NOT NULL CHECK (online_space IN (0, 1)),
    demo_case     TEXT NOT NULL              -- which demo case the account illustrates
);

-- One row per turnover declaration made; a missing declaration is a missing row.
CREATE TABLE declarations (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts(id),
    period_start   TEXT NOT NULL,
    period_end     TEXT NOT NULL,
    declared_on    TEXT NOT NULL,
    sales_cents    INTEGER NOT NULL CHECK (sales_cents >= 0),
    services_cents INTEGER NOT NULL CHECK (services_cents >= 0),
    UNIQUE (account_id, period_start)
);

CREATE TABLE payments (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    paid_on      TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('received', 'rejected'))
);

-- Sums owed; unsettled ones make the amount due.
CREATE TABLE debts (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    due_on       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    settled_on   TEXT
);

-- Failed phone identifications per SIRET (known or not: keyed by HMAC so that unknown
-- SIRETs lock exactly like known ones and are not kept in clear).
CREATE TABLE identification_guard (
    siret_key    TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start TEXT NOT NULL,              -- UTC ISO time of the first failure counted
    locked_until TEXT                        -- UTC ISO time, NULL when not locked
);

CREATE TABLE attestation_requests (
    id           INTEGER PRIMARY KEY,
    request_id   TEXT NOT NULL UNIQUE,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    kind         TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    delivery     TEXT NOT NULL CHECK (delivery IN ('online', 'post')),
    deliver_by   TEXT NOT NULL,
    channel      TEXT NOT NULL               -- who recorded it: 'callbot'
);

CREATE INDEX declarations_account ON declarations(account_id, period_end);
CREATE INDEX payments_account ON payments(account_id, paid_on);
CREATE INDEX debts_account ON debts(account_id);
"""


def default_db_path(env: dict[str, str] | None = None) -> Path:
    """CALLBOT_DEMO_SI_DB, else demo-si.sqlite in CALLBOT_VAR_DIR (default var/)."""
    env = dict(os.environ) if env is None else env
    if env.get("CALLBOT_DEMO_SI_DB"):
        return Path(env["CALLBOT_DEMO_SI_DB"])
    return Path(env.get("CALLBOT_VAR_DIR") or ROOT / "var") / "demo-si.sqlite"


def connect(path: Path | str) -> sqlite3.Connection:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no demo SI database; run 'callbot demo-si init'")
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE where a read
    # decides a write, e.g. the failure counter).
    conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def siret_key(salt: str, siret: str) -> str:
    return hmac.new(salt.encode(), siret.encode(), hashlib.sha256).hexdigest()


def meta(conn: sqlite3.Connection, key: str) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise KeyError(f"demo SI database has no meta {key!r}: run 'callbot demo-si init'")
    return row["value"]
