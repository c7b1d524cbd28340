"""Exponential backoff with full jitter, the one formula every retry loop uses."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float = 0.1, cap: float = 30.0) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    Full jitter (uniform between 0 and the exponential ceiling) spreads retries of many
    clients that failed together, so they do not return together.
    """
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return random.uniform(0, ceiling)
