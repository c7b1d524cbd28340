from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from switchyard_image_worker.compressor import Compressed, CompressOptions, compress
from switchyard_image_worker.store import MediaStore

OPTIONS = CompressOptions(longest_side=200, quality=80)


def photo(color: str = "red", size: tuple[int, int] = (640, 480)) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", size, color)
    image.paste(Image.effect_noise((size[0] // 2, size[1]), 30).convert("RGB"))
    image.save(out, "JPEG")
    return out.getvalue()


class CountingCompressor:
    def __init__(self, options: CompressOptions = OPTIONS, delay: float = 0.0) -> None:
        self.options, self.delay, self.calls = options, delay, 0
        self._lock = threading.Lock()

    def __call__(self, source: bytes) -> Compressed:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        return compress(source, self.options)


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_same_source_same_path_compressed_once(tmp_path: Path) -> None:
    store, make, source = MediaStore(tmp_path), CountingCompressor(), photo()
    first = store.put(source, OPTIONS.fingerprint(), make)
    assert first.made is not None and first.made.variant == "resized"
    for _ in range(999):  # the same image in 1,000 products
        again = store.put(source, OPTIONS.fingerprint(), make)
        assert again.path == first.path and again.made is None
    assert make.calls == 1
    key = MediaStore.key(source, OPTIONS.fingerprint())
    assert first.relative == f"{key[:2]}/{key[2:4]}/{key}.jpg"
    assert first.path == tmp_path / first.relative
    assert Image.open(first.path).size == (200, 150)


def test_other_settings_or_source_make_another_file(tmp_path: Path) -> None:
    store, source = MediaStore(tmp_path), photo()
    small = store.put(source, OPTIONS.fingerprint(), CountingCompressor())
    webp = CompressOptions(longest_side=200, format="webp")
    other = store.put(source, webp.fingerprint(), CountingCompressor(webp))
    blue = store.put(photo("blue"), OPTIONS.fingerprint(), CountingCompressor())
    assert len({small.path, other.path, blue.path}) == 3
    assert other.path.suffix == ".webp"


def test_concurrent_store_of_the_same_key_is_safe(tmp_path: Path) -> None:
    source, results = photo(), []
    make = CountingCompressor(delay=0.05)
    stores = [MediaStore(tmp_path), MediaStore(tmp_path)]  # two "processes" too
    barrier = threading.Barrier(16)

    def worker(index: int) -> None:
        barrier.wait()
        results.append(stores[index % 2].put(source, OPTIONS.fingerprint(), make))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 16
    assert len({r.path for r in results}) == 1
    assert make.calls <= 2  # once per store (process); never once per caller
    assert Image.open(results[0].path).size == (200, 150)
    assert temp_files(tmp_path) == []


def test_a_failed_write_leaves_no_final_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MediaStore(tmp_path)

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.write("ab" * 32, ".jpg", b"data")
    assert store.existing("ab" * 32) is None
    assert temp_files(tmp_path) == []


def test_sweep_removes_only_old_temp_files(tmp_path: Path) -> None:
    store = MediaStore(tmp_path)
    kept = store.put(photo(), OPTIONS.fingerprint(), CountingCompressor()).path
    old = kept.parent / f".{'c' * 64}.abc123.tmp"
    fresh = kept.parent / f".{'d' * 64}.def456.tmp"
    old.write_bytes(b"half a file")
    fresh.write_bytes(b"being written")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(kept, (an_hour_ago, an_hour_ago))
    assert store.sweep(older_than_seconds=600) == 1
    assert not old.exists()
    assert fresh.exists() and kept.exists()
