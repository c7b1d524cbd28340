"""Health-checker targets (seed 001, SPEC section 9): register, read with current status,
last check and uptime over 24 h, change, delete, and read the history of checks.

Every write goes through :mod:`switchyard.targets.store`, which notifies the checker
replicas in the same transaction, so a change is probed within a second.
"""
