"""What `make setup` provisioned, for the servers the tests start in a folder of their own."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def provisioned_var(var: Path) -> Path:
    """`var` (a test server's CALLBOT_VAR_DIR) with the router, retrieval index and turn
    completeness model `callbot models provision` built in var/router, rather than trained
    again for the test (about 50 s on 2 cores; training itself is tested in test_router.py)."""
    var.mkdir(parents=True, exist_ok=True)
    (var / "router").symlink_to(ROOT / "var" / "router")
    return var
