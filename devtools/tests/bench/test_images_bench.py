"""The images benchmark's pieces, on small images: the sources are deterministic, every
method makes the same kind of output, the report holds the ratios the brief asks for."""

from __future__ import annotations

import io
import urllib.error
import urllib.request

import pytest
from PIL import Image

from switchyard_devtools.bench import BENCHMARKS, images


@pytest.fixture(scope="module")
def small() -> images.Source:
    picture = images.photo_like((2000, 1200), seed=7)
    return images.Source("t", images._jpeg(picture, orientation=6), (2000, 1200), "JPEG", "t")


def test_registered() -> None:
    assert "images" in BENCHMARKS and images.NAME == "images"


def test_sources_are_deterministic_and_photo_like() -> None:
    first = images.photo_like((320, 240), seed=3).tobytes()
    assert first == images.photo_like((320, 240), seed=3).tobytes()
    assert first != images.photo_like((320, 240), seed=4).tobytes()
    picture = images.photo_like((640, 480), seed=3)
    jpeg = images._jpeg(picture, quality=92)
    png = io.BytesIO()
    picture.save(png, "PNG")
    # Like a photograph: JPEG at q92 is several times smaller than lossless PNG, and far
    # from the flat-colour extreme (a uniform image is ~1% of its raw size).
    raw = 640 * 480 * 3
    assert len(jpeg) * 3 < len(png.getvalue())
    assert len(jpeg) > raw * 0.03


def test_every_method_resizes_and_rotates_the_same(small: images.Source) -> None:
    methods = [images.pillow_minimal, images.pillow_draft, images.our_compress()]
    vips = images._pyvips()
    if vips is not None:
        methods.append(images.pyvips_thumbnail(vips))
    for method in methods:
        out = method(small.data)
        images._check_output("t", method.__name__, out, small)
        with Image.open(io.BytesIO(out)) as image:
            # EXIF orientation 6: the stored 2000x1200 is shown 1200x2000.
            assert image.size == (960, 1600), method
            assert not image.getexif().get(0x010F), "camera metadata dropped"


def test_timing_and_report(small: images.Source) -> None:
    timing = images.time_calls(images.pillow_draft, small.data, repeats=3)
    assert len(timing.seconds) == 3 and timing.per_second > 0
    assert timing.percentile(50) <= timing.percentile(99)
    methods = ["pillow", "pillow_draft", "pyvips", "compress"]
    fake = {("t", m): images.Timing([0.1 * (i + 1)] * 4, [1000] * 4) for i, m in enumerate(methods)}
    text = images.report([small], methods, fake, images.PipelineResult(skipped="nope"), [])
    assert "(c)/(a) compress/pillow 0.25x" in text
    assert "(c)/(b) compress/pyvips 0.75x" in text
    assert "on the JPEG photos alone (c)/(b) 0.75x" in text
    assert "Not measured: nope." in text
    done = images.PipelineResult(
        images=10, products=2, elapsed=2.0, latencies=[1.0, 2.0], statuses={"done": 2}
    )
    assert "(d)/(c)" in images.report([small], methods, fake, done, [])


def test_image_server_serves_the_sources() -> None:
    with images.image_server({"a.jpg": b"\xff\xd8x"}) as base:
        with urllib.request.urlopen(f"{base}/a.jpg", timeout=5) as response:
            assert response.read() == b"\xff\xd8x"
            assert response.headers["Content-Type"] == "image/jpeg"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base}/missing.jpg", timeout=5)
