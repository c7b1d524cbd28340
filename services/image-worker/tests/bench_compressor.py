"""Speed of the compressor on a photo-like 4000x3000 JPEG (12 MP, like a phone photo).

Not collected by the test suite (the file name does not start with ``test_``); run it
with ``uv run pytest services/image-worker/tests/bench_compressor.py``.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image, ImageFilter

from switchyard_image_worker.compressor import CompressOptions, compress


def photo_like(size: tuple[int, int] = (4000, 3000)) -> bytes:
    """Smooth gradients, fractal detail and sensor-like noise, saved as camera JPEGs are."""
    detail = Image.effect_mandelbrot(size, (-2.2, -1.2, 1.0, 1.2), 60)
    horizontal = Image.linear_gradient("L").rotate(90).resize(size)
    radial = Image.radial_gradient("L").resize(size)
    image = Image.merge("RGB", (detail, horizontal, radial)).filter(ImageFilter.GaussianBlur(2))
    noise = Image.effect_noise(size, 24).convert("RGB")
    image = Image.blend(image, noise, 0.12)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()


@pytest.fixture(scope="module")
def source() -> bytes:
    return photo_like()


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_compress_12mp_jpeg(benchmark: Any, source: bytes, fmt: str) -> None:
    options = CompressOptions(longest_side=1600, format=fmt, quality=82)  # type: ignore[arg-type]
    result = benchmark(compress, source, options)
    assert (result.width, result.height) == (1600, 1200)
    benchmark.extra_info.update(source_bytes=len(source), output_bytes=len(result.data))
