"""In CI (CI=true or 1) a test that would be skipped fails instead, with the skip's reason:
a missing model, data package or tool must not leave CI green without testing."""

from __future__ import annotations

import os
import secrets

import pytest

# The servers the tests start (in this process or as children) and the clients that talk to
# them (caller simulator, SIP gateway, action client) read their secrets from the
# environment, as in production: one random set per test session.
for _name in ("CALLBOT_ADMIN_TOKEN", "CALLBOT_GATEWAY_TOKEN", "CALLBOT_ACTIONS_SECRET"):
    os.environ.setdefault(_name, secrets.token_urlsafe(24))
# Agents answer at any hour in the tests (the default is business hours, Paris time): a
# test of the queue must not turn into a callback offer because CI runs at night. The
# opening-hours tests set their own calendar.
os.environ.setdefault("CALLBOT_AGENTS_OPENING_HOURS", "24/7")


# `make test` runs the calls in real time on two workers (pytest-xdist, --dist loadgroup;
# scripts/run-tests.sh). A module's tests stay on one worker (its server fixtures start
# once); the modules that use the fixed SIP ports of `callbot serve --sip` (5060, 5080) or
# start SIP peers share one worker, so that no two of them run at once.
SERIAL_GROUPS = {"sip": ("test_sip_", "test_serve_processes")}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.stem
        group = next((g for g, prefixes in SERIAL_GROUPS.items() if module.startswith(prefixes)), module)
        item.add_marker(pytest.mark.xdist_group(group))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def _fail_if_skipped(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail"):  # an expected failure stays one
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped in CI (CI={os.environ.get('CI')}), which counts as a failure: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if in_ci():
        _fail_if_skipped(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    report = yield
    if in_ci():
        _fail_if_skipped(report)
    return report


@pytest.fixture(scope="session")
def knowledge():
    """The dialogue data, loaded once (a module may define its own)."""
    from flows.knowledge import load_knowledge

    return load_knowledge()


@pytest.fixture(scope="session")
def router(knowledge):
    """The router `callbot models provision` trained, as the server uses it (training itself
    is tested in tests/test_router.py)."""
    from pathlib import Path

    from flows.router import RouterSettings, load_router

    return load_router(knowledge, RouterSettings(), Path(__file__).resolve().parent.parent / "var" / "router")
