from __future__ import annotations

import io

import pytest
from PIL import Image

from switchyard.fetch.sniff import image_kind


@pytest.mark.parametrize(
    ("fmt", "kind"), [("JPEG", "jpeg"), ("PNG", "png"), ("GIF", "gif"), ("WEBP", "webp")]
)
def test_images_are_known_by_their_magic_bytes(fmt: str, kind: str) -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "green").save(out, fmt)
    assert image_kind(out.getvalue()[:12]) == kind


@pytest.mark.parametrize("head", [b"", b"<html>", b"%PDF-1.7", b"RIFF\0\0\0\0WAVE", b"\xff\xd8"])
def test_anything_else_is_not_an_image(head: bytes) -> None:
    assert image_kind(head) is None
