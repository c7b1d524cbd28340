"""Content-addressed media files under ``MEDIA_ROOT``: whole files only, each made once.

Guarantees of :class:`MediaStore`:

- A file is named by the SHA-256 of its source bytes and the transform's fingerprint,
  fanned out as ``ab/cd/<hash>.jpg``: the same source with the same settings is one file,
  however many products use it.
- :meth:`MediaStore.put` skips the work when that file exists; callers in one process
  asking for the same name at once wait for one another, so it is made once. (Two
  processes may both make it; the result is the same and either rename is whole.)
- A file is written to a temp file in its final directory, fsync'd, renamed over the
  final name and the directory fsync'd: after a crash a final path holds the whole file
  or nothing, never a part. :meth:`MediaStore.sweep` removes temp files a crash left.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"
_LOCK_STRIPES = 64


class Encoded(Protocol):
    @property
    def data(self) -> bytes: ...

    @property
    def extension(self) -> str: ...


E = TypeVar("E", bound=Encoded)


@dataclass(frozen=True)
class Stored(Generic[E]):
    path: Path
    relative: str  # to the media root, e.g. "ab/cd/<hash>.jpg"
    made: E | None  # what was made now; None if the file was already there


class MediaStore:
    def __init__(self, root: Path, extensions: tuple[str, ...] = (".jpg", ".webp")) -> None:
        self.root = root
        self.extensions = extensions
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]

    @staticmethod
    def key(source: bytes, fingerprint: str) -> str:
        """The name of what ``fingerprint``'s transform makes of ``source``."""
        return hashlib.sha256(fingerprint.encode() + b"\0" + source).hexdigest()

    def path_for(self, key: str, extension: str) -> Path:
        return self.root / key[:2] / key[2:4] / f"{key}{extension}"

    def existing(self, key: str) -> Path | None:
        for extension in self.extensions:
            path = self.path_for(key, extension)
            if path.is_file():
                return path
        return None

    def put(self, source: bytes, fingerprint: str, make: Callable[[bytes], E]) -> Stored[E]:
        """The file for ``source`` and ``fingerprint``, made by ``make`` if not there yet."""
        key = self.key(source, fingerprint)
        with self._locks[int(key[:8], 16) % _LOCK_STRIPES]:
            path = self.existing(key)
            made = None
            if path is None:
                made = make(source)
                path = self.write(key, made.extension, made.data)
        return Stored(path, path.relative_to(self.root).as_posix(), made)

    def write(self, key: str, extension: str, data: bytes) -> Path:
        """Write ``data`` as ``key`` atomically and durably; the final path."""
        final = self.path_for(key, extension)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(
            dir=final.parent, prefix=f"{TEMP_PREFIX}{key}.", suffix=TEMP_SUFFIX
        )
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, 0o644)
            os.replace(temp, final)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        directory = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return final

    def sweep(self, older_than_seconds: float) -> int:
        """Remove temp files older than this (choose far more than a write takes)."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for directory, _, names in os.walk(self.root):
            for name in names:
                if not (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)):
                    continue
                path = Path(directory, name)
                try:
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed
