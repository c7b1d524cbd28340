"""Reading a response body under a size cap, sniffing it on the way.

:func:`read_capped` never holds more than ``max_bytes`` plus one chunk: it refuses a
declared ``Content-Length`` over the cap before reading, and stops reading the moment
the bytes received pass it (a server may lie about, or omit, the length). With
``image=True`` it gives up as soon as the first bytes show the body is not an image.
:func:`read_truncated` keeps the first ``max_bytes`` and leaves the rest unread (the
connection is then closed, not drained).
"""

from __future__ import annotations

import aiohttp

from switchyard.fetch.errors import NotAnImage, TooLarge
from switchyard.fetch.sniff import SNIFF_BYTES, image_kind

CHUNK_BYTES = 64 * 1024


async def read_capped(response: aiohttp.ClientResponse, *, max_bytes: int, image: bool) -> bytes:
    """The body of ``response``, or :class:`TooLarge` / :class:`NotAnImage`."""
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise TooLarge(f"Content-Length {declared} is over {max_bytes} bytes")
    body = bytearray()
    sniffed = not image
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        body += chunk
        if len(body) > max_bytes:
            raise TooLarge(f"the body is over {max_bytes} bytes")
        if not sniffed and len(body) >= SNIFF_BYTES:
            _sniff(body)
            sniffed = True
    if not sniffed:
        _sniff(body)
    return bytes(body)


def _sniff(body: bytearray) -> None:
    if image_kind(bytes(body[:SNIFF_BYTES])) is None:
        raise NotAnImage(f"the body does not start like an image: {bytes(body[:8])!r}")


async def read_truncated(response: aiohttp.ClientResponse, *, max_bytes: int) -> tuple[bytes, bool]:
    """The first ``max_bytes`` of the body, and whether there was more (left unread)."""
    body = bytearray()
    while len(body) < max_bytes:
        chunk = await response.content.read(min(CHUNK_BYTES, max_bytes - len(body)))
        if not chunk:
            return bytes(body), False
        body += chunk
    return bytes(body), not response.content.at_eof() and bool(await response.content.read(1))
