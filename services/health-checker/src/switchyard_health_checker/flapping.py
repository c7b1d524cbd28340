"""Flap suppression: a target's status, decided by runs of results, as a pure function.

:func:`step` takes a state and one probe result and returns the next state and, when the
status changed, at most one :class:`Transition`. It reads nothing else and changes
nothing, so whoever persists the state (PostgreSQL) decides when it counts:

- ``down`` after ``failures_to_down`` consecutive failures, ``up`` after
  ``successes_to_up`` consecutive successes (the target's values at each step); the
  first status is ``unknown``.
- Every ``down`` opens an incident: ``target.down`` carrying its id; the ``up`` that
  ends it is ``target.up`` with the same id. ``unknown -> up`` is a status change with no
  incident and announces nothing; ``unknown -> down`` announces like any ``down``.
- The incident id is computed, not random: :func:`incident_id` of (target, n-th
  incident). Two replicas stepping the same stored state to the same change name the
  same incident, so a unique key on (incident id, event) keeps the second out even if
  they race; storing the state and the event in one transaction (compare-and-set on the
  state read) makes the announcement exactly once.
- A result not newer than the last one applied is ignored (state unchanged, no event):
  replaying a result, or a late one from a replica that lost the target, does nothing.
- Counters stop at :data:`~.targets.MAX_THRESHOLD`: the state never grows.

Persisting only on a status change is enough for exactly-once announcements; persisting
the counters too makes a takeover continue a run of failures instead of restarting it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from switchyard_health_checker.targets import MAX_THRESHOLD, ProbeResult, Target

State = Literal["unknown", "up", "down"]
EventType = Literal["target.down", "target.up"]
_NAMESPACE = uuid.UUID("6f1c1b3e-8e0a-5d2e-9a51-7c1f3d2b9e10")


def incident_id(target_id: int, number: int) -> str:
    """The stable id of a target's ``number``-th incident (1-based)."""
    return str(uuid.uuid5(_NAMESPACE, f"target:{target_id}:incident:{number}"))


@dataclass(frozen=True, slots=True)
class FlapState:
    status: State = "unknown"
    failures: int = 0  # consecutive, up to MAX_THRESHOLD
    successes: int = 0
    incidents: int = 0  # opened so far, for this target
    incident_id: str | None = None  # the open one, while down
    since: datetime | None = None  # when status last changed
    last_checked_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "failures": self.failures,
            "successes": self.successes,
            "incidents": self.incidents,
            "incident_id": self.incident_id,
            "since": self.since.isoformat() if self.since else None,
            "last_checked_at": self.last_checked_at.isoformat() if self.last_checked_at else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FlapState:
        def when(key: str) -> datetime | None:
            value = data.get(key)
            return datetime.fromisoformat(value) if value else None

        status = data.get("status", "unknown")
        if status not in ("unknown", "up", "down"):
            raise ValueError(f"status: {status!r} is not unknown, up or down")
        return cls(
            status=status,
            failures=int(data.get("failures", 0)),
            successes=int(data.get("successes", 0)),
            incidents=int(data.get("incidents", 0)),
            incident_id=data.get("incident_id"),
            since=when("since"),
            last_checked_at=when("last_checked_at"),
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of status to announce, once."""

    event: EventType
    target_id: int
    incident_id: str
    at: datetime  # checked_at of the probe that decided it
    result: ProbeResult  # that probe (its error says why a target went down)


def step(
    state: FlapState, target: Target, result: ProbeResult
) -> tuple[FlapState, Transition | None]:
    """The state after ``result``, and the transition it causes, if any."""
    if state.last_checked_at is not None and result.checked_at <= state.last_checked_at:
        return state, None
    at = result.checked_at
    if result.error is not None:
        failures = min(state.failures + 1, MAX_THRESHOLD)
        new = replace(state, failures=failures, successes=0, last_checked_at=at)
        if state.status != "down" and failures >= target.failures_to_down:
            number = state.incidents + 1
            opened = incident_id(target.id, number)
            new = replace(new, status="down", incidents=number, incident_id=opened, since=at)
            return new, Transition("target.down", target.id, opened, at, result)
        return new, None
    successes = min(state.successes + 1, MAX_THRESHOLD)
    new = replace(state, failures=0, successes=successes, last_checked_at=at)
    if state.status != "up" and successes >= target.successes_to_up:
        closed = state.incident_id
        new = replace(new, status="up", incident_id=None, since=at)
        if closed is not None:
            return new, Transition("target.up", target.id, closed, at, result)
    return new, None
