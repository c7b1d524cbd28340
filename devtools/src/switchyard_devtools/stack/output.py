"""Foreman-style console: every line prefixed with the name of the process that wrote it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TextIO

SYSTEM = "dev"
# Cyan, yellow, green, magenta, blue, then the bright variants: distinguishable on dark
# and light terminals alike; red is kept for the supervisor's own warnings.
_PALETTE = (36, 33, 32, 35, 34, 96, 93, 92, 95, 94)
_MAX_PARTIAL = 64 * 1024


class Console:
    """Writes prefixed lines to one stream; colours only when a person is watching."""

    def __init__(
        self, names: Iterable[str], stream: TextIO | None = None, colour: bool | None = None
    ) -> None:
        self._stream = stream if stream is not None else sys.stdout
        if colour is None:
            colour = self._stream.isatty() and not os.environ.get("NO_COLOR")
        self._colour = colour
        self._width = len(SYSTEM)
        self._codes: dict[str, int] = {}
        for name in names:
            self.add(name)

    def add(self, name: str) -> None:
        self._width = max(self._width, len(name))
        if name not in self._codes and name != SYSTEM:
            self._codes[name] = _PALETTE[len(self._codes) % len(_PALETTE)]

    def line(self, name: str, text: str) -> None:
        label = f"{name:<{self._width}} |"
        if self._colour:
            code = self._codes.get(name, 1)  # bold for the supervisor itself
            label = f"\x1b[{code}m{label}\x1b[0m"
        self._write(f"{label} {text}\n")

    def say(self, text: str) -> None:
        """A line from the supervisor itself."""
        self.line(SYSTEM, text)

    def warn(self, text: str) -> None:
        if self._colour:
            text = f"\x1b[31m{text}\x1b[0m"
        self.line(SYSTEM, text)

    def raw(self, text: str) -> None:
        """Unprefixed text (the banner)."""
        self._write(text if text.endswith("\n") else text + "\n")

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except OSError:
            # A closed pipe (`| head`) or a hung-up terminal (EIO): the stack must still
            # run, and above all still shut down in order, with nobody reading.
            pass


class LineBuffer:
    """Splits a child's output stream into lines, keeping the unfinished tail."""

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, data: bytes) -> list[str]:
        chunks = (self._partial + data).split(b"\n")
        self._partial = chunks.pop()
        if len(self._partial) > _MAX_PARTIAL:
            # A child printing without newlines must not make us buffer without limit.
            chunks.append(self._partial)
            self._partial = b""
        return [_decode(chunk) for chunk in chunks]

    def flush(self) -> list[str]:
        rest, self._partial = self._partial, b""
        return [_decode(rest)] if rest else []


def _decode(chunk: bytes) -> str:
    return chunk.rstrip(b"\r").decode("utf-8", errors="replace")
