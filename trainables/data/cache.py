"""Decode once per scale, per node: a memory-mapped uint8 cache of resized images.

The first trial on a node that needs a dataset at ``size`` px decodes every
image once (:func:`scenetune.trainables.data.decode.load_resized`: DCT scaling, EXIF
rotation, correct RGB) into ``[N, size, size, 3]`` uint8; every later epoch
and every later trial of that size on the node memory-maps it read-only, so
N trials share one copy of the pages.

Layout: ``CACHE_DIR/<size>px-<key>/`` holding ``images.npy`` (a NumPy array
file: its header states shape and dtype), ``index.json`` (the paths, in
row order, and the files that failed to decode, with why) and ``COMPLETE``
(the array file's length and a checksum of sampled rows), written last. The
key hashes the cache format version, the size, and every file's absolute path,
byte size and modification time: a changed, added or removed file makes a new
cache.

Concurrency and crashes: builders take a :class:`filelock.FileLock` on
``<size>px-<key>.lock``, so concurrent trials build once while the others wait
and reuse. A build happens in ``<folder>.tmp-<pid>`` and is renamed into place
only when complete. A folder whose marker is missing, whose array is shorter
or of another shape than its index says, or whose sampled checksum differs, is
damaged: it is deleted and rebuilt, never read.

No TensorFlow here: the pipeline wraps the array in tf.data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from filelock import FileLock, Timeout

from scenetune.trainables.data.decode import UndecodableImage, load_resized
from scenetune.trainables.quiet import VERBOSE_ENV

CACHE_VERSION = 4  # bump when the decode changes what pixels a file gives (4: NaN in float images is black)
ENV_VAR = "SCENETUNE_CACHE"
MARKER, INDEX, ARRAY = "COMPLETE", "index.json", "images.npy"


def default_cache_dir() -> str:
    """``$SCENETUNE_CACHE``, else ``~/.cache/scenetune``."""
    return os.environ.get(ENV_VAR) or os.path.join(os.path.expanduser("~"), ".cache", "scenetune")


def log(message: str) -> None:
    """A line of the cache's progress, left out in a quiet sweep's trials
    (the same three lines for every trial otherwise)."""
    if os.environ.get(VERBOSE_ENV) != "0":
        print(f"cache: {message}", file=sys.stderr, flush=True)


@dataclass
class ImageCache:
    """An opened cache. ``images[i]`` is the ``[size, size, 3]`` uint8 image of
    ``paths[i]`` (all black for a path in ``failed``)."""
    folder: str
    size: int
    paths: list[str]
    images: np.ndarray  # read-only memmap
    failed: dict[str, str]  # path -> why it did not decode
    built: bool  # this process built it (False: it was there, or another process built it)

    def rows(self, paths) -> np.ndarray:
        """Row numbers of ``paths`` (absolute, as given to :func:`open_cache`)."""
        index = {p: i for i, p in enumerate(self.paths)}
        missing = [p for p in paths if p not in index]
        if missing:
            raise KeyError(f"{len(missing)} paths are not in the cache {self.folder}, e.g. {missing[0]}")
        return np.fromiter((index[p] for p in paths), dtype=np.int64, count=len(paths))


def cache_key(paths: list[str], size: int) -> str:
    """Hash of the format version, the size and each file's path, byte size and mtime."""
    digest = hashlib.sha256(f"scenetune-cache v{CACHE_VERSION} {size}px\n".encode())
    for path in sorted(paths):
        st = os.stat(path)
        # surrogatepass: a name that is not valid UTF-8 (lone surrogates) hashes too
        digest.update(f"{path}\t{st.st_size}\t{st.st_mtime_ns}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:20]


def _sample_checksum(images: np.ndarray, samples: int = 64) -> int:
    """CRC32 of up to ``samples`` evenly spaced rows (first and last included):
    cheap enough to verify on every open, and it catches torn or zeroed data."""
    n = len(images)
    rows = np.unique(np.linspace(0, n - 1, min(n, samples)).astype(np.int64)) if n else []
    crc = 0
    for r in rows:
        crc = zlib.crc32(np.ascontiguousarray(images[r]).data, crc)
    return crc


def _read_valid(folder: str, key: str, size: int, count: int) -> tuple[np.ndarray, dict] | None:
    """The memmap and index of a complete, undamaged cache folder, else None."""
    try:
        with open(os.path.join(folder, MARKER)) as f:
            marker = json.load(f)
        with open(os.path.join(folder, INDEX), encoding="utf-8") as f:
            index = json.load(f)
        array_path = os.path.join(folder, ARRAY)
        if os.path.getsize(array_path) != marker["bytes"]:
            return None
        if (index["version"], index["key"], index["size"], len(index["paths"])) != (CACHE_VERSION, key, size, count):
            return None
        images = np.load(array_path, mmap_mode="r")
        if images.shape != (count, size, size, 3) or images.dtype != np.uint8:
            return None
        if _sample_checksum(images) != marker["checksum"]:
            return None
        return images, index
    except (OSError, ValueError, KeyError, TypeError):  # missing files, bad JSON, bad .npy header
        return None


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _build(folder: str, key: str, paths: list[str], size: int, workers: int) -> None:
    """Decode every path into ``folder`` (built aside, renamed into place)."""
    parent = os.path.dirname(folder)
    needed = len(paths) * size * size * 3
    free = shutil.disk_usage(parent).free
    if needed > free:
        raise OSError(f"the {size} px cache of {len(paths)} images needs {needed / 2**30:.1f} GiB "
                      f"at {parent}, which has {free / 2**30:.1f} GiB free; set cache_dir elsewhere")
    tmp = f"{folder}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    images = np.lib.format.open_memmap(os.path.join(tmp, ARRAY), mode="w+", dtype=np.uint8,
                                       shape=(len(paths), size, size, 3))
    failed: dict[str, str] = {}

    def decode(i: int) -> None:
        try:
            images[i] = load_resized(paths[i], size)
        except (UndecodableImage, OSError, MemoryError) as e:
            failed[paths[i]] = str(e)  # the row stays black; the feed leaves it out

    log(f"building the {size} px cache of {len(paths)} images in {folder} ({workers} threads)")
    started = last = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:  # PIL decodes and resizes without the GIL
        for done, _ in enumerate(pool.map(decode, range(len(paths))), 1):
            now = time.perf_counter()
            if now - last >= 5 or done == len(paths):
                last = now
                log(f"{done}/{len(paths)} images decoded ({done / (now - started):.0f}/s)")
    images.flush()
    checksum = _sample_checksum(images)
    del images
    index = {"version": CACHE_VERSION, "key": key, "size": size, "paths": paths, "failed": failed}
    with open(os.path.join(tmp, INDEX), "w", encoding="utf-8") as f:
        # ASCII escapes: a path that is not valid UTF-8 (lone surrogates, as
        # os.fsdecode gives it) is written as \udcXX and read back the same
        json.dump(index, f, ensure_ascii=True)
    for name in (ARRAY, INDEX):
        _fsync(os.path.join(tmp, name))
    with open(os.path.join(tmp, MARKER), "w") as f:  # last: its presence means complete
        json.dump({"bytes": os.path.getsize(os.path.join(tmp, ARRAY)), "checksum": checksum}, f)
        f.flush()
        os.fsync(f.fileno())
    shutil.rmtree(folder, ignore_errors=True)  # a damaged one, under the lock
    os.rename(tmp, folder)
    _fsync(parent)
    log(f"built in {time.perf_counter() - started:.1f} s ({len(failed)} files failed to decode)")


def open_cache(paths: list[str], size: int, cache_dir: str | None = None, workers: int | None = None,
               wait_timeout: float = -1) -> ImageCache:
    """The cache of ``paths`` (absolute image paths) at ``size`` px: opened if
    a complete one exists, else built (once per node, whoever comes first)."""
    cache_dir = os.path.abspath(os.path.expanduser(cache_dir or default_cache_dir()))
    os.makedirs(cache_dir, exist_ok=True)
    paths = sorted(set(paths))
    key = cache_key(paths, size)
    name = f"{size}px-{key}"
    folder = os.path.join(cache_dir, name)
    built = False
    found = _read_valid(folder, key, size, len(paths))
    if found is None:
        lock = FileLock(os.path.join(cache_dir, f"{name}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log(f"waiting for another process to build {folder}")
            lock.acquire(timeout=wait_timeout)
        try:
            found = _read_valid(folder, key, size, len(paths))  # built while we waited?
            if found is None:
                if os.path.exists(folder):
                    log(f"{folder} is incomplete or damaged: rebuilding it")
                for stale in os.listdir(cache_dir):  # killed builders' leftovers (we hold the lock)
                    if stale.startswith(f"{name}.tmp-"):
                        shutil.rmtree(os.path.join(cache_dir, stale), ignore_errors=True)
                _build(folder, key, paths, size, workers or max(2, os.cpu_count() or 1))
                built = True
                found = _read_valid(folder, key, size, len(paths))
                if found is None:
                    raise OSError(f"the cache just built at {folder} does not verify")
        finally:
            lock.release()
    images, index = found
    return ImageCache(folder, size, index["paths"], images, index["failed"], built)
