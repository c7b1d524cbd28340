"""Images: what compressing a product image costs, per core, against two references.

All in one run, on the same source images (generated here, deterministically: smooth
gradients, shapes with soft edges and sensor-like noise, saved as cameras save them, so
JPEG behaves as with photographs; one of them carries an EXIF orientation, as phone
photos do; plus a PNG):

a. ``pillow``: the least code doing the same compression with Pillow (open,
   ``exif_transpose``, ``thumbnail`` to the longest side, save JPEG at the same quality);
   ``pillow_draft`` is the same four calls with ``thumbnail`` before ``exif_transpose``
   (which copies the full image first), so ``thumbnail`` may decode JPEGs at reduced
   scale: only for reductions of 4x or more, as it asks ``draft`` for twice the target.
b. ``pyvips``: libvips' ``thumbnail`` (shrink-on-load, auto-rotation), JPEG at the same Q.
c. ``compress``: the image-worker's compress step alone
   (:func:`switchyard_image_worker.compressor.compress`, default ``CompressOptions``).
d. ``pipeline``: the whole service, ``POST /products`` to ``done``: the API, the outbox
   relay and the image-worker on the embedded servers, images served by a local HTTP
   server (``FETCH__ALLOW=127.0.0.1/32``); throughput over all images of N products x M
   images, latency per product from its POST until GET shows ``done`` (or ``failed``).

(a)-(c) run in this process on one thread (libvips with ``VIPS_CONCURRENCY=1`` and its
operation cache off), taking turns on each source image. Each call's CPU time (of the
whole process) is what a core spends on it: images/s per core is calls / summed CPU
time, unmoved by what else runs on the machine; wall time is reported too. (d)
uses every core the machine has, so its images/s is divided by the core count to be
comparable; it is skipped with the reason printed when the products API or the working
image-worker is not there yet (``BENCH_IMAGES_PIPELINE=0`` skips it deliberately).
"""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import random
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter, ImageOps

NAME = "images"
LONGEST_SIDE = 1600
QUALITY = 82
# Calls per source image and method, after WARMUP untimed ones.
REPEATS = int(os.environ.get("BENCH_IMAGES_REPEATS", "12"))
WARMUP = 2
# (d): products x images per product.
PIPELINE_PRODUCTS = int(os.environ.get("BENCH_IMAGES_PRODUCTS", "20"))
PIPELINE_IMAGES = 5
PIPELINE_TIMEOUT = 300.0


@dataclass(frozen=True)
class Source:
    name: str
    data: bytes
    size: tuple[int, int]
    format: str
    what: str


@dataclass
class Timing:
    # CPU seconds of this process per call (what a core spends), and wall seconds.
    seconds: list[float] = field(default_factory=list)
    bytes_out: list[int] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        total = sum(self.seconds)
        return len(self.seconds) / total if total else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.seconds)
        if not ordered:
            return 0.0
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
        return ordered[index]


# --------------------------------------------------------------------------- sources


def photo_like(size: tuple[int, int], seed: int) -> Image.Image:
    """An RGB image JPEG treats like a photograph: smooth light, soft-edged objects with
    texture, fine noise. Same ``size`` and ``seed``, same pixels."""
    rng = random.Random(seed)
    width, height = size
    # Background: three channels of smooth gradients at different angles (sky, floor).
    channels = [
        Image.linear_gradient("L")
        .rotate(rng.uniform(0, 360))
        .resize(size, Image.Resampling.BILINEAR)
        for _ in range(3)
    ]
    image = Image.merge("RGB", channels)
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rng.uniform(-0.1, 1.0) * width, rng.uniform(-0.1, 1.0) * height
        w, h = rng.uniform(0.05, 0.4) * width, rng.uniform(0.05, 0.4) * height
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x, y, x + w, y + h), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(max(1, width // 800)))
    # Texture: a low-resolution noise field scaled up (mid frequencies), then fine noise
    # (sensor grain), both from the seeded generator.
    coarse_size = (max(1, width // 16), max(1, height // 16))
    coarse = Image.frombytes("L", coarse_size, rng.randbytes(coarse_size[0] * coarse_size[1]))
    coarse = coarse.resize(size, Image.Resampling.BICUBIC).convert("RGB")
    grain = Image.frombytes("L", size, rng.randbytes(width * height)).convert("RGB")
    image = Image.blend(image, coarse, 0.18)
    return Image.blend(image, grain, 0.06)


def _jpeg(image: Image.Image, quality: int = 92, orientation: int | None = None) -> bytes:
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "Switchyard bench camera"  # Make: metadata our output must drop
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(out, "JPEG", quality=quality, subsampling="4:2:0", exif=exif.tobytes())
    return out.getvalue()


def sources() -> list[Source]:
    """The source images, as suppliers' URLs would serve them."""
    found = []
    for name, size, seed, orientation, what in (
        ("jpeg_12mp", (4000, 3000), 1, None, "phone photo, 4000x3000, q92"),
        ("jpeg_6mp_rotated", (3000, 2000), 2, 6, "3000x2000, q92, EXIF orientation 6"),
        ("jpeg_2mp", (1920, 1280), 3, None, "1920x1280, q92"),
        ("jpeg_small", (1200, 800), 4, None, "1200x800, q92: under the longest side"),
    ):
        image = photo_like(size, seed)
        found.append(Source(name, _jpeg(image, orientation=orientation), size, "JPEG", what))
    png = io.BytesIO()
    photo_like((2400, 1600), 5).save(png, "PNG", compress_level=6)
    found.append(Source("png_4mp", png.getvalue(), (2400, 1600), "PNG", "2400x1600 RGB PNG"))
    return found


# --------------------------------------------------------------------------- methods


def pillow_minimal(data: bytes) -> bytes:
    """(a) open, exif_transpose, thumbnail, save: the least code for the same output."""
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened)
        image.thumbnail((LONGEST_SIDE, LONGEST_SIDE))
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=QUALITY)
        return out.getvalue()


def pillow_draft(data: bytes) -> bytes:
    """(a') the same calls, thumbnail first: JPEGs may decode at reduced scale."""
    with Image.open(io.BytesIO(data)) as image:
        image.thumbnail((LONGEST_SIDE, LONGEST_SIDE))
        rotated = ImageOps.exif_transpose(image)
        out = io.BytesIO()
        rotated.convert("RGB").save(out, "JPEG", quality=QUALITY)
        return out.getvalue()


def _pyvips() -> Any:
    """pyvips on one thread without its operation cache, or None where not installed."""
    os.environ.setdefault("VIPS_CONCURRENCY", "1")  # read when libvips starts
    try:
        import pyvips  # type: ignore[import-not-found, unused-ignore]
    except (ImportError, OSError):
        return None
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    return pyvips


def pyvips_thumbnail(vips: Any) -> Callable[[bytes], bytes]:
    """(b) libvips' thumbnail (shrink-on-load, auto-rotate, never upscaled), JPEG at Q."""

    def run(data: bytes) -> bytes:
        image = vips.Image.thumbnail_buffer(data, LONGEST_SIDE, height=LONGEST_SIDE, size="down")
        if image.hasalpha():
            image = image.flatten()
        return bytes(image.jpegsave_buffer(Q=QUALITY, keep="none"))

    return run


def our_compress() -> Callable[[bytes], bytes]:
    """(c) the image-worker's compress step."""
    from switchyard_image_worker.compressor import CompressOptions, compress

    options = CompressOptions(longest_side=LONGEST_SIDE, format="jpeg", quality=QUALITY)

    def run(data: bytes) -> bytes:
        return compress(data, options).data

    return run


def time_calls(run: Callable[[bytes], bytes], data: bytes, repeats: int = REPEATS) -> Timing:
    return time_interleaved({"run": run}, data, repeats)["run"]


def time_interleaved(
    methods: dict[str, Callable[[bytes], bytes]], data: bytes, repeats: int = REPEATS
) -> dict[str, Timing]:
    """Each method ``repeats`` times on ``data``, taking turns, so that whatever else the
    machine does at a moment weighs on every method alike. Per call: the CPU time of this
    process (libvips' worker thread included) and the wall time."""
    timings = {name: Timing() for name in methods}
    for _ in range(WARMUP):
        for run in methods.values():
            run(data)
    for _ in range(repeats):
        for name, run in methods.items():
            cpu, wall = time.process_time(), time.perf_counter()
            out = run(data)
            timings[name].seconds.append(time.process_time() - cpu)
            timings[name].wall.append(time.perf_counter() - wall)
            timings[name].bytes_out.append(len(out))
    return timings


def _check_output(name: str, method: str, out: bytes, source: Source) -> None:
    """Every method must produce the same kind of image: JPEG, longest side as asked."""
    with Image.open(io.BytesIO(out)) as image:
        expected = min(LONGEST_SIDE, max(source.size))
        if image.format != "JPEG" or abs(max(image.size) - expected) > 1:
            raise AssertionError(f"{method} on {name}: {image.format} {image.size}")


# --------------------------------------------------------------------------- pipeline (d)


class _ImageHandler(http.server.BaseHTTPRequestHandler):
    images: dict[str, bytes] = {}

    def do_GET(self) -> None:
        # `name?copy=N`: the same picture with N appended after its end (decoders ignore
        # it), so each product's images are new bytes the worker must really compress:
        # content addressing would otherwise compress each source picture once.
        name, _, copy = self.path.lstrip("/").partition("?copy=")
        body = self.images.get(name)
        if body is None:
            self.send_error(404)
            return
        body += copy.encode()
        self.send_response(200)
        self.send_header(
            "Content-Type", "image/png" if self.path.endswith(".png") else "image/jpeg"
        )
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def image_server(images: dict[str, bytes]) -> Iterator[str]:
    """A local HTTP server for ``images`` (name -> bytes); yields its base URL."""
    handler = type("Handler", (_ImageHandler,), {"images": images})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _call(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:300].decode(errors="replace")


@dataclass
class PipelineResult:
    images: int = 0
    products: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    skipped: str = ""
    worker_peak_rss_mib: float = 0.0

    def percentile(self, q: float) -> float:
        return Timing(self.latencies).percentile(q)


def run_pipeline(workdir: Path, catalogue: list[Source]) -> PipelineResult:
    """(d): POST /users, POST /products (N x M images from a local server), poll each
    GET /products/{id} until done or failed."""
    from switchyard_devtools.bench.stack import bench_settings, script, service
    from switchyard_devtools.stack.processes import free_port

    if os.environ.get("BENCH_IMAGES_PIPELINE", "1") == "0":
        return PipelineResult(skipped="BENCH_IMAGES_PIPELINE=0")
    served = {f"{s.name}.{'png' if s.format == 'PNG' else 'jpg'}": s.data for s in catalogue}
    names = sorted(served)
    result = PipelineResult()
    media = workdir / "media"
    with bench_settings(workdir) as settings, image_server(served) as images_base:
        api_port, relay_port, worker_port = free_port(), free_port(), free_port()
        base = f"http://127.0.0.1:{api_port}"
        common = {"MEDIA_ROOT": str(media), "FETCH__ALLOW": "127.0.0.1/32"}
        with (
            service(
                [script("switchyard-api"), "serve"],
                settings,
                {**common, "API__HOST": "127.0.0.1", "API__PORT": str(api_port)},
                ready_url=f"{base}/readyz",
                log=workdir / "api.log",
            ),
            service(
                [script("switchyard-api"), "relay"],
                settings,
                {**common, "ADMIN_PORT": str(relay_port)},
                ready_url=f"http://127.0.0.1:{relay_port}/readyz",
                log=workdir / "relay.log",
            ),
            service(
                [script("switchyard-image-worker")],
                settings,
                {**common, "ADMIN_PORT": str(worker_port)},
                ready_url=f"http://127.0.0.1:{worker_port}/readyz",
                log=workdir / "image-worker.log",
            ) as worker_pid,
        ):
            status, user = _call(
                "POST",
                f"{base}/users",
                {"name": "Bench", "mobile": "+15550100", "latitude": 0.0, "longitude": 0.0},
            )
            if status != 201:
                return PipelineResult(skipped=f"POST /users answered {status}: {user}")
            # Warm-up, not timed: the worker's group join and first connections.
            warm = _warm_up(base, user["id"], f"{images_base}/{names[0]}?copy=warm-up")
            if warm:
                return PipelineResult(skipped=warm)
            posted: dict[int, float] = {}
            started = time.monotonic()
            for n in range(PIPELINE_PRODUCTS):
                urls = [
                    f"{images_base}/{names[(n + i) % len(names)]}?copy={n}"
                    for i in range(PIPELINE_IMAGES)
                ]
                status, product = _call(
                    "POST",
                    f"{base}/products",
                    {
                        "user_id": user["id"],
                        "product_name": f"bench product {n}",
                        "product_description": "benchmark",
                        "product_images": urls,
                        "product_price": 9.99,
                    },
                )
                if status not in (200, 201, 202):
                    return PipelineResult(skipped=f"POST /products answered {status}: {product}")
                posted[int(product["product_id"])] = time.monotonic()
            pending = dict(posted)
            deadline = started + PIPELINE_TIMEOUT
            while pending and time.monotonic() < deadline:
                for product_id in list(pending):
                    status, product = _call("GET", f"{base}/products/{product_id}")
                    state = product.get("status") if status == 200 else None
                    if state in ("done", "failed"):
                        result.latencies.append(time.monotonic() - pending.pop(product_id))
                        result.statuses[state] = result.statuses.get(state, 0) + 1
                time.sleep(0.05)
            result.elapsed = time.monotonic() - started
            if pending:
                result.statuses["unfinished"] = len(pending)
            result.products = len(posted) - len(pending)
            result.images = result.products * PIPELINE_IMAGES
            result.worker_peak_rss_mib = _peak_rss_mib(worker_pid)
    return result


def _warm_up(base: str, user_id: int, url: str) -> str:
    """One product through the pipeline before the clock starts; why not, or ""."""
    body = {
        "user_id": user_id,
        "product_name": "warm-up",
        "product_images": [url],
        "product_price": 1,
    }
    status, product = _call("POST", f"{base}/products", body)
    if status != 201:
        return f"POST /products answered {status}: {product}"
    deadline = time.monotonic() + PIPELINE_TIMEOUT
    while time.monotonic() < deadline:
        status, product = _call("GET", f"{base}/products/{product['product_id']}")
        if status == 200 and product.get("status") in ("done", "failed"):
            return ""
        time.sleep(0.1)
    return "the warm-up product did not finish"


def _peak_rss_mib(pid: int) -> float:
    """A process's peak resident memory so far (Linux ``VmHWM``), in MiB; 0 if unknown."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _pipeline_available() -> str:
    """Why (d) cannot run here, or "" when its pieces are installed."""
    try:
        import switchyard_api.app  # noqa: F401  (registers the endpoints)
        import switchyard_image_worker.__main__ as worker
        from switchyard_api.openapi import build_openapi
    except ImportError as exc:
        return f"not importable: {exc}"
    if "idle_until_stopped" in Path(str(worker.__file__)).read_text():
        return "the image-worker on this branch does not consume `products` yet"
    paths = build_openapi().get("paths", {})
    if "post" not in paths.get("/products", {}) or "/products/{product_id}" not in paths:
        return "the API on this branch has no POST /products and GET /products/{product_id} yet"
    return ""


# --------------------------------------------------------------------------- report


def run(workdir: Path) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    catalogue = sources()
    vips = _pyvips()
    methods: dict[str, Callable[[bytes], bytes]] = {
        "pillow": pillow_minimal,
        "pillow_draft": pillow_draft,
    }
    notes = []
    if vips is not None:
        methods["pyvips"] = pyvips_thumbnail(vips)
        notes.append(
            f"pyvips {vips.__version__} on libvips "
            f"{vips.version(0)}.{vips.version(1)}.{vips.version(2)}"
        )
    else:
        notes.append("pyvips is not installed: (b) skipped")
    methods["compress"] = our_compress()
    timings: dict[tuple[str, str], Timing] = {}
    for source in catalogue:
        for method, call in methods.items():
            _check_output(source.name, method, call(source.data), source)
        for method, timing in time_interleaved(methods, source.data).items():
            timings[(source.name, method)] = timing
    pipeline = PipelineResult(skipped=_pipeline_available())
    if not pipeline.skipped:
        try:
            pipeline = run_pipeline(workdir, catalogue)
        except Exception as exc:  # a broken piece must not lose (a)-(c)
            pipeline = PipelineResult(skipped=f"{type(exc).__name__}: {exc}")
    return report(catalogue, list(methods), timings, pipeline, notes)


def _overall(timings: dict[tuple[str, str], Timing], method: str) -> Timing:
    """All source images together: the same number of calls of each."""
    merged = Timing()
    for (_, name), timing in timings.items():
        if name == method:
            merged.seconds += timing.seconds
            merged.bytes_out += timing.bytes_out
            merged.wall += timing.wall
    return merged


def report(
    catalogue: list[Source],
    methods: list[str],
    timings: dict[tuple[str, str], Timing],
    pipeline: PipelineResult,
    notes: list[str],
) -> str:
    cores = os.cpu_count() or 1
    lines = [
        "## Images: compressing product images, per core",
        "",
        f"Longest side {LONGEST_SIDE}, JPEG quality {QUALITY}, one thread; {REPEATS} timed "
        f"calls per image and method after {WARMUP} untimed, the methods taking turns. "
        "Per core: images/s is calls / CPU seconds of the process and p50/p95/p99 are CPU "
        "ms per call, so other work on the machine does not count; wall p50 for reference. "
        "`pillow`: open, "
        "`exif_transpose`, `thumbnail`, save (the least code); `pillow_draft`: `thumbnail` "
        "before `exif_transpose`, so JPEGs may decode at reduced scale (only from 4x "
        "reductions: `thumbnail` drafts at twice the target); `pyvips`: "
        "`thumbnail_buffer` + `jpegsave_buffer` (VIPS_CONCURRENCY=1, cache off); "
        "`compress`: the image-worker's `compressor.compress` (JPEG `draft` to the target "
        "size, bicubic, metadata dropped, the source kept when it is already smaller). "
        f"{'; '.join(notes)}.",
        "",
        "Sources (generated, deterministic, photo-like):",
        "",
        *(f"* `{s.name}`: {s.what}, {len(s.data) / 1024:,.0f} KiB" for s in catalogue),
        "",
        "| image | method | images/s per core | p50 ms | p95 ms | p99 ms | wall p50 ms | KiB out |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = [(s.name, m, timings[(s.name, m)]) for s in catalogue for m in methods]
    rows += [("**all**", m, _overall(timings, m)) for m in methods]
    for image, method, timing in rows:
        lines.append(
            f"| {image} | {method} | {timing.per_second:,.1f} "
            f"| {timing.percentile(50) * 1000:.1f} | {timing.percentile(95) * 1000:.1f} "
            f"| {timing.percentile(99) * 1000:.1f} "
            f"| {Timing(timing.wall).percentile(50) * 1000:.1f} "
            f"| {statistics.fmean(timing.bytes_out) / 1024:,.0f} |"
        )
    ours = _overall(timings, "compress").per_second
    ratios = [
        f"(c)/(a) compress/pillow {ours / _overall(timings, 'pillow').per_second:.2f}x",
        f"compress/pillow_draft {ours / _overall(timings, 'pillow_draft').per_second:.2f}x",
    ]
    if "pyvips" in methods:
        ratios.append(
            f"(c)/(b) compress/pyvips {ours / _overall(timings, 'pyvips').per_second:.2f}x"
        )
        jpegs = {s.name for s in catalogue if s.format == "JPEG"}
        only = {key: timing for key, timing in timings.items() if key[0] in jpegs}
        jpeg_ratio = _overall(only, "compress").per_second / _overall(only, "pyvips").per_second
        ratios.append(f"on the JPEG photos alone (c)/(b) {jpeg_ratio:.2f}x")
    lines += [
        "",
        f"Throughput ratios over all images (images/s, higher is faster): {'; '.join(ratios)}.",
        "",
        "### (d) The pipeline: POST /products to done",
        "",
    ]
    if pipeline.skipped:
        lines.append(f"Not measured: {pipeline.skipped}.")
    else:
        per_core = pipeline.images / pipeline.elapsed / cores if pipeline.elapsed else 0.0
        lines += [
            f"{PIPELINE_PRODUCTS} products x {PIPELINE_IMAGES} images from a local HTTP server "
            f"(`FETCH__ALLOW=127.0.0.1/32`), API + outbox relay + image-worker on this "
            f"machine's {cores} cores; latency is per product, POST to `done`.",
            "",
            "| products | images | images/s | images/s per core | p50 ms | p95 ms | p99 ms "
            "| statuses |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            f"| {pipeline.products} | {pipeline.images} "
            f"| {pipeline.images / pipeline.elapsed:,.1f} | {per_core:,.1f} "
            f"| {pipeline.percentile(50) * 1000:.0f} | {pipeline.percentile(95) * 1000:.0f} "
            f"| {pipeline.percentile(99) * 1000:.0f} | {pipeline.statuses} |",
            "",
            f"(d)/(c) pipeline per core / compress: {per_core / ours:.2f}x. Image-worker peak "
            f"RSS (VmHWM): {pipeline.worker_peak_rss_mib:.0f} MiB.",
        ]
    return "\n".join(lines)
