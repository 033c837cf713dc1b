"""Demo information system: synthetic accounts in SQLite behind the SI REST API.

`callbot demo-si init` builds the database, `callbot demo-si serve` serves it,
`callbot demo-si list` prints the demo accounts by case (generator.CASES). Tests pick
accounts with `demo_accounts(db_path)[case]`. Stdlib only: usable from either virtualenv.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from flows.actions.demo_si.db import connect, default_db_path
from flows.actions.demo_si.generator import CASES, SEED, generate

__all__ = ["CASES", "DemoAccount", "build_database", "default_db_path", "demo_accounts"]


@dataclass(frozen=True)
class DemoAccount:
    case: str
    siret: str
    postcode: str
    ref: str
    name: str
    trade: str
    activity: str
    regime: str
    status: str
    online_space: bool

    @property
    def wrong_postcode(self) -> str:
        """A valid-looking postcode that is not this account's."""
        return f"{(int(self.postcode) + 1111) % 100000:05d}"


def build_database(path: Path | str, today: date | None = None, seed: int = SEED) -> int:
    """(Re)creates the demo database at `path`; returns the number of accounts.

    Built aside then renamed over the old file: a running demo SI, which opens the file
    per request, never sees a half-built database."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".demo-si-", suffix=".sqlite", dir=path.parent)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            count = generate(conn, today or date.today(), seed)
        finally:
            conn.close()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def demo_accounts(path: Path | str) -> dict[str, list[DemoAccount]]:
    """Demo accounts by case, in a stable order."""
    conn = connect(path)
    try:
        rows = conn.execute("SELECT * FROM accounts ORDER BY id").fetchall()
    finally:
        conn.close()
    accounts: dict[str, list[DemoAccount]] = {case: [] for case in CASES}
    for r in rows:
        accounts.setdefault(r["demo_case"], []).append(DemoAccount(
            case=r["demo_case"], siret=r["siret"], postcode=r["postcode"], ref=r["ref"],
            name=r["business_name"], trade=r["trade"], activity=r["activity"], regime=r["regime"],
            status=r["status"], online_space=bool(r["online_space"]),
        ))
    return accounts
