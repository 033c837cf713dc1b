"""`python -m flows.actions.demo_si init|serve|list` (also `callbot demo-si ...`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from flows.actions.demo_si import CASES, build_database, default_db_path, demo_accounts
from flows.actions.demo_si.server import serve


def init(db: Path) -> int:
    count = build_database(db)
    print(f"demo SI: {count} synthetic accounts in {db}")
    return 0


def serve_command(db: Path, host: str, port: int) -> int:
    if not db.is_file():
        init(db)
    try:
        serve(db, host, port)
    except OSError as e:
        print(f"error: demo SI cannot listen on {host}:{port}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def list_command(db: Path) -> int:
    if not db.is_file():
        print(f"error: {db} is missing: run 'callbot demo-si init'", file=sys.stderr)
        return 1
    print("Synthetic demo accounts (made-up people and numbers). Identify with SIRET + postcode.")
    for case, accounts in demo_accounts(db).items():
        print(f"\n{case}: {CASES.get(case, '')}")
        for a in accounts:
            print(f"  {a.siret}  {a.postcode}  {a.activity:<8} {a.regime:<5} {a.status:<19} {a.name} ({a.trade})")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["init", "serve", "list"])
    parser.add_argument("--db", type=Path, default=None,
                        help="database file (default: $CALLBOT_DEMO_SI_DB or var/demo-si.sqlite)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5056)


def run(args: argparse.Namespace) -> int:
    db = args.db or default_db_path()
    if args.action == "init":
        return init(db)
    if args.action == "serve":
        return serve_command(db, args.host, args.port)
    return list_command(db)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo-si", description="demo information system")
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
