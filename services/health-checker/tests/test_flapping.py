"""The flap state machine, as tables: a run of results in, statuses and events out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from switchyard_health_checker.flapping import FlapState, Transition, incident_id, step
from switchyard_health_checker.targets import MAX_THRESHOLD, ProbeError, ProbeResult, Target

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FAIL = ProbeError("connection_refused", "refused")


def target(down: int = 3, up: int = 2) -> Target:
    return Target(7, "t", "http://svc/", failures_to_down=down, successes_to_up=up)


def result(n: int, ok: bool) -> ProbeResult:
    return ProbeResult(7, T0 + timedelta(seconds=n), 1.0, 200 if ok else None, None if ok else FAIL)


def play(
    outcomes: str, down: int = 3, up: int = 2, state: FlapState | None = None
) -> tuple[str, list[str], FlapState]:
    """Apply ``outcomes`` ("+" success, "-" failure): statuses after each, events."""
    state = state or FlapState()
    statuses, events = [], []
    for n, outcome in enumerate(outcomes):
        state, transition = step(state, target(down, up), result(n, outcome == "+"))
        statuses.append({"unknown": "?", "up": "u", "down": "D"}[state.status])
        if transition:
            events.append(transition.event.removeprefix("target."))
    return "".join(statuses), events, state


@pytest.mark.parametrize(
    ("outcomes", "down", "up", "statuses", "events"),
    [
        # statuses: ? unknown, u up, D down
        ("+", 3, 1, "u", []),  # unknown -> up announces nothing: there was no incident
        ("++", 3, 2, "?u", []),
        ("---", 3, 2, "??D", ["down"]),  # unknown -> down is announced
        ("++--+--", 3, 2, "?uuuuuu", []),  # two failures then a success: the run restarts
        ("++-----", 3, 2, "?uuuDDD", ["down"]),  # one announcement, however long it lasts
        ("---+-++", 3, 2, "??DDDDu", ["down", "up"]),  # a lone success does not end it
        ("---++---++", 3, 2, "??DDuuuDDu", ["down", "up", "down", "up"]),
        ("-+-+-+-+", 1, 1, "DuDuDuDu", ["down", "up"] * 4),  # no suppression asked for
        ("-+-+-+-+", 2, 2, "????????", []),  # flapping within the thresholds: no noise
    ],
)
def test_status_table(outcomes: str, down: int, up: int, statuses: str, events: list[str]) -> None:
    got_statuses, got_events, _ = play(outcomes, down, up)
    assert got_statuses == statuses
    assert got_events == events


def test_incidents_have_stable_ids_and_up_closes_the_open_one() -> None:
    state = FlapState()
    transitions: list[Transition] = []
    for n, ok in enumerate([False, False, True, False, False, True]):
        state, transition = step(state, target(2, 1), result(n, ok))
        if transition:
            transitions.append(transition)
    assert [(t.event, t.incident_id) for t in transitions] == [
        ("target.down", incident_id(7, 1)),
        ("target.up", incident_id(7, 1)),
        ("target.down", incident_id(7, 2)),
        ("target.up", incident_id(7, 2)),
    ]
    assert incident_id(7, 1) != incident_id(7, 2) != incident_id(8, 2)
    assert transitions[0].result.error == FAIL
    assert transitions[0].at == result(1, False).checked_at
    assert state.incidents == 2 and state.incident_id is None


def test_a_replica_continuing_from_stored_state_never_announces_twice() -> None:
    _, events, stored = play("---", 3, 2)  # replica A announced the incident, then died
    assert events == ["down"]
    revived = FlapState.from_json(stored.as_json())  # replica B reads it back
    assert revived == stored
    # B may see A's results again (redelivered): they change nothing.
    for n in range(3):
        assert step(revived, target(), result(n, False)) == (revived, None)
    state = revived
    later = [result(10 + n, False) for n in range(5)]
    for each in later:
        state, transition = step(state, target(), each)
        assert transition is None
    state, transition = step(state, target(), result(20, True))
    state, transition = step(state, target(), result(21, True))
    assert transition is not None and transition.incident_id == stored.incident_id


def test_two_replicas_stepping_the_same_state_name_the_same_incident() -> None:
    _, _, state = play("--", 3, 2)
    a = step(state, target(), result(5, False))[1]
    b = step(state, target(), result(6, False))[1]
    assert a is not None and b is not None and a.incident_id == b.incident_id


def test_counters_are_bounded_and_bad_stored_state_is_refused() -> None:
    _, _, state = play("-" * (MAX_THRESHOLD + 50), 3, 2)
    assert state.failures == MAX_THRESHOLD
    with pytest.raises(ValueError, match="status"):
        FlapState.from_json({"status": "sideways"})
