"""Background jobs: the catalogue of types, the state in PostgreSQL, leader election.

* :mod:`.types` — job types and their payload models (validated at enqueue).
* :mod:`.records` — the records the store hands out.
* :mod:`.store` — the API's side: enqueue, read, cancel, retry, replay, schedules.
* :mod:`.lifecycle` — the worker's side: claim, heartbeat, finish, release, requeue,
  and the leader's duties.
* :mod:`.leader` — :class:`~.leader.LeaderLease`, a lease with a fencing token.

The state machine and the reasons are in ``services/job-worker/DESIGN.md``.
"""
