"""The supervisor's stop-signal counter: copies of one stop request count once.

A signal to the process group of ``make dev`` reaches the supervisor directly and again
forwarded by ``uv run`` (and ``make``), milliseconds apart; only a signal well after the
last one counted is a second request (a person pressing Ctrl-C again).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from switchyard_devtools.stack.supervisor import Signals

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD)


@pytest.fixture
def signals() -> Iterator[Signals]:
    saved = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    installed = Signals(repeat_after=0.3).install()
    try:
        yield installed
    finally:
        signal.set_wakeup_fd(-1)
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def _deliver(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.01)  # let the handler run


def test_copies_arriving_together_count_once(signals: Signals) -> None:
    _deliver(signal.SIGTERM)
    _deliver(signal.SIGTERM)
    _deliver(signal.SIGINT)
    assert signals.count == 1
    assert signals.copies == 2


def test_a_signal_well_after_the_first_is_a_second_request(signals: Signals) -> None:
    _deliver(signal.SIGINT)
    time.sleep(0.4)
    _deliver(signal.SIGINT)
    assert signals.count == 2
    signals.drain()
