"""What an image really is, from its first bytes (magic numbers), never Content-Type.

:func:`image_kind` names JPEG, PNG, GIF and WebP (the formats the image-worker reads) or
says None; it needs at most :data:`SNIFF_BYTES` bytes.
"""

from __future__ import annotations

SNIFF_BYTES = 12


def image_kind(head: bytes) -> str | None:
    """``"jpeg"``, ``"png"``, ``"gif"`` or ``"webp"`` for the bytes an image starts with."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None
