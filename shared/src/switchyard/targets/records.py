"""What the targets store hands out: plain frozen records, no ORM objects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

TargetStatus = Literal["unknown", "up", "down"]
CheckStatus = Literal["up", "down"]
NOTIFY_CHANNEL = "switchyard_targets"  # payload: the target id that changed
DEFAULT_INTERVAL_SECONDS = 30
DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_FAILURES_TO_DOWN = 3
DEFAULT_SUCCESSES_TO_UP = 2


@dataclass(frozen=True)
class TargetSpec:
    """What a user declares (API body, or a file applied with ``switchyard targets``)."""

    name: str
    url: str
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    expected_status: int | None = None  # None: any 2xx
    failures_to_down: int = DEFAULT_FAILURES_TO_DOWN
    successes_to_up: int = DEFAULT_SUCCESSES_TO_UP


@dataclass(frozen=True)
class TargetRow:
    id: int
    name: str
    url: str
    interval_seconds: int
    timeout_seconds: float
    expected_status: int | None
    failures_to_down: int
    successes_to_up: int
    shard: int
    version: int
    status: TargetStatus
    consecutive_failures: int
    consecutive_successes: int
    incident_id: str | None
    status_changed_at: datetime | None
    last_checked_at: datetime | None
    last_latency_ms: float | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    def spec(self) -> TargetSpec:
        return TargetSpec(
            self.name,
            self.url,
            self.interval_seconds,
            self.timeout_seconds,
            self.expected_status,
            self.failures_to_down,
            self.successes_to_up,
        )


@dataclass(frozen=True)
class Check:
    id: str
    target_id: int
    checked_at: datetime
    status: CheckStatus
    latency_ms: float | None
    status_code: int | None
    error: str | None


@dataclass(frozen=True)
class Progress:
    """A target's counters and last check, as the checker saves them (in batches)."""

    target_id: int
    shard: int
    consecutive_failures: int
    consecutive_successes: int
    checked_at: datetime
    latency_ms: float | None
    status_code: int | None
    error: str | None


@dataclass(frozen=True)
class Change:
    """A change of a target's status the checker wants announced (once)."""

    target_id: int
    shard: int
    status: Literal["up", "down"]
    incident_id: str  # opened by `down`, closed by the `up` that follows
    checked_at: datetime
    error: str | None
    consecutive: int  # failures (down) or successes (up) that decided it
