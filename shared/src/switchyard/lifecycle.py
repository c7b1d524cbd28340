"""Graceful stop: SIGTERM and SIGINT set one event that every loop of a process watches."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from switchyard.logging import get_logger

log = get_logger(__name__)


class StopSignal:
    """Set once the process was asked to stop; loops poll :meth:`is_set` or :meth:`wait`."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def install(self) -> StopSignal:
        """Route SIGTERM and SIGINT here (main thread only)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        return self

    def _on_signal(self, signum: int, _: FrameType | None) -> None:
        if self._event.is_set():
            log.warning("second stop signal; still shutting down", signal=signum)
        else:
            log.info("stop requested", signal=signal.Signals(signum).name)
        self._event.set()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)
