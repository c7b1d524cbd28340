from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import pytest
from PIL import Image, ImageCms, ImageFile

from switchyard.config import ImageWorkerSettings
from switchyard_image_worker.compressor import (
    CompressOptions,
    ImageRejected,
    compress,
)

OPTIONS = CompressOptions(longest_side=400, format="jpeg", quality=80, max_pixels=10_000_000)


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def halves(size: tuple[int, int], left: str = "red", right: str = "blue") -> Image.Image:
    image = Image.new("RGB", size, left)
    image.paste(Image.new("RGB", (size[0] // 2, size[1]), right), (size[0] // 2, 0))
    return image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` and whose pixel data is garbage:
    opening it is fine, decoding it would fail."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", b"garbage")
        + chunk(b"IEND", b"")
    )


def rejected(source: bytes, options: CompressOptions = OPTIONS) -> str:
    with pytest.raises(ImageRejected) as caught:
        compress(source, options)
    return caught.value.reason


def test_large_jpeg_is_shrunk_to_the_longest_side() -> None:
    result = compress(encode(halves((2000, 1500)), "JPEG", quality=95), OPTIONS)
    assert (result.width, result.height) == (400, 300)
    assert result.variant == "resized"
    assert result.format == "jpeg"
    assert Image.open(io.BytesIO(result.data)).size == (400, 300)


def test_jpeg_is_decoded_at_the_smallest_scale_not_below_the_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resized_from: list[tuple[int, int]] = []
    resize = Image.Image.resize

    def spy(self: Image.Image, *args: Any, **kwargs: Any) -> Image.Image:
        resized_from.append(self.size)
        return resize(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", spy)
    result = compress(encode(halves((2000, 1500)), "JPEG", quality=95), OPTIONS)
    assert (result.width, result.height) == (400, 300)
    assert resized_from == [(500, 375)]  # decoded at 1/4: 1/8 would be under 400x300


def test_never_upscales() -> None:
    result = compress(encode(halves((120, 80)), "PNG"), OPTIONS)
    assert (result.width, result.height) == (120, 80)
    assert Image.open(io.BytesIO(result.data)).format == "JPEG"


def test_exif_orientation_is_applied_and_metadata_stripped() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    exif[0x010F] = "SpyCam"  # Make
    exif[0x8825] = {1: "N"}  # a GPS block
    source = encode(
        halves((200, 100)),
        "JPEG",
        exif=exif,
        comment=b"secret",
        xmp=b"<x:xmpmeta>secret</x:xmpmeta>",
        quality=95,
    )
    result = compress(source, OPTIONS)
    out = Image.open(io.BytesIO(result.data))
    assert out.size == (100, 200)
    top, bottom = out.convert("RGB").getpixel((50, 20)), out.convert("RGB").getpixel((50, 180))
    assert isinstance(top, tuple) and top[0] > 200 and top[2] < 60  # left (red) went up
    assert isinstance(bottom, tuple) and bottom[2] > 200
    assert not out.getexif()
    assert not {"exif", "xmp", "comment"} & set(out.info)
    assert b"SpyCam" not in result.data and b"secret" not in result.data


def test_icc_profile_is_kept() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    result = compress(encode(halves((800, 600)), "JPEG", icc_profile=srgb), OPTIONS)
    assert Image.open(io.BytesIO(result.data)).info.get("icc_profile") == srgb


def test_transparent_png_becomes_webp_with_alpha_and_opaque_png_becomes_jpeg() -> None:
    image = Image.new("RGBA", (600, 300), (255, 0, 0, 255))
    image.paste((0, 0, 255, 0), (300, 0, 600, 300))
    result = compress(encode(image, "PNG"), OPTIONS)
    out = Image.open(io.BytesIO(result.data))
    assert (result.format, result.extension, out.mode) == ("webp", ".webp", "RGBA")
    assert out.getchannel("A").getextrema() == (0, 255)
    opaque = compress(encode(Image.new("RGBA", (50, 50), "green"), "PNG"), OPTIONS)
    assert opaque.format == "jpeg"


def test_webp_output_when_configured() -> None:
    options = CompressOptions.from_settings(ImageWorkerSettings(format="webp", quality=70))
    result = compress(encode(halves((3000, 1000)), "JPEG"), options)
    assert (result.format, result.width, result.height) == ("webp", 1600, 533)
    assert Image.open(io.BytesIO(result.data)).format == "WEBP"


def test_source_kept_when_our_encoding_is_larger() -> None:
    photo = Image.effect_noise((300, 200), 40).convert("RGB")
    small = encode(photo, "JPEG", quality=30)
    result = compress(small, CompressOptions(longest_side=400, quality=100))
    assert result.variant == "source"
    assert result.data == small
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    with_exif = encode(photo, "JPEG", quality=30, exif=exif)
    assert compress(with_exif, CompressOptions(longest_side=400, quality=100)).variant == (
        "resized"
    )


def test_too_many_pixels_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(self: Any) -> None:
        raise AssertionError("decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert rejected(png_header_only(5000, 3000)) == "too_many_pixels"


def test_frames_of_an_animation_count() -> None:
    frames = [Image.new("RGB", (100, 100), c) for c in ("red", "green", "blue")]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert rejected(gif, CompressOptions(max_pixels=25_000)) == "too_many_pixels"
    assert compress(gif, CompressOptions(max_pixels=30_000)).width == 100


def test_decompression_bomb_is_refused() -> None:
    # Over Pillow's own limit (MAX_IMAGE_PIXELS) though under ours: its warning is an error.
    huge = CompressOptions(max_pixels=10**12)
    assert rejected(png_header_only(10_000, 10_000), huge) == "decompression_bomb"
    assert rejected(png_header_only(20_000, 20_000), huge) == "decompression_bomb"


def test_truncated_image_is_refused() -> None:
    source = encode(Image.effect_noise((400, 300), 50).convert("RGB"), "JPEG")
    assert rejected(source[: len(source) // 2]) == "truncated"
    png = encode(Image.effect_noise((400, 300), 50).convert("RGB"), "PNG")
    assert rejected(png[: len(png) // 2]) in ("truncated", "corrupt")


@pytest.mark.parametrize(
    "source", [b"", b"<html>hello</html>", b"\xff\xd8\xff\xe0garbage", b"%PDF-1.7\n"]
)
def test_not_an_image_is_refused(source: bytes) -> None:
    assert rejected(source) in ("not_an_image", "truncated", "corrupt")


def test_other_formats_are_not_opened() -> None:
    assert rejected(encode(halves((50, 50)), "TIFF")) == "not_an_image"
    assert rejected(encode(halves((50, 50)), "BMP")) == "not_an_image"


def test_fingerprint_names_what_shapes_the_output() -> None:
    assert CompressOptions(max_pixels=1).fingerprint() == CompressOptions().fingerprint()
    assert CompressOptions(quality=50).fingerprint() != CompressOptions().fingerprint()


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    grey = Image.new("I;16", (256, 1))
    grey.putdata([v * 256 for v in range(256)])
    result = compress(encode(grey, "PNG"), OPTIONS)
    out = Image.open(io.BytesIO(result.data))
    assert out.mode == "L"
    assert 100 < out.getpixel((128, 0)) < 160  # type: ignore[operator]
