"""Health-checker targets: the state in PostgreSQL, shared by the API and the checker.

* :mod:`.records` — what the store hands out.
* :mod:`.store` — the API's side: create, read, change, delete, history, apply a file.
* :mod:`.shards` — :class:`~.shards.ShardLeases`: which replica probes which targets.
* :mod:`.state` — the checker's side: load its targets, save progress, record a change
  of status exactly once (fenced by the shard's lease token, with its outbox event).

The design is in ``services/health-checker/README.md``.
"""
