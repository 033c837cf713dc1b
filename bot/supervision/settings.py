"""Settings of the supervisor console (CALLBOT_SUPERVISION_* variables)."""

from __future__ import annotations

from dataclasses import dataclass, field

from flows.offices import OFFICE_RULES


@dataclass(frozen=True)
class SupervisionSettings:
    # Bearer token Prometheus presents on /metrics; empty: /metrics answers 403 to everyone.
    metrics_token: str = field(default="", repr=False)
    # Which regional office a call belongs to: the identified account's (from the postcode
    # it was identified with), else the caller number's area; or only one of the two.
    office_rule: str = "account_then_number"
    page_size: int = 50                # calls per page of the list (at most 200 asked)
    reopen_window_h: float = 24.0      # a caller calling back within this was not resolved

    def __post_init__(self) -> None:
        if self.office_rule not in OFFICE_RULES:
            raise ValueError(f"supervision.office_rule must be one of {', '.join(OFFICE_RULES)}")
        if not 1 <= self.page_size <= 200:
            raise ValueError("supervision.page_size must be 1 to 200")
        if self.reopen_window_h <= 0:
            raise ValueError("supervision.reopen_window_h must be positive")
