"""Switchyard dev tooling, kept out of the runtime library and out of every image.

Guarantee: nothing under ``shared/`` or ``services/*/src`` imports this package; it
depends on them, never the other way round. Sub-packages: :mod:`.stack` (``switchyard
dev``, the supervisor and embedded servers), :mod:`.bench` (``switchyard bench``),
:mod:`.load` (``switchyard load``) and :mod:`.testing` (the pytest plugin).
"""
