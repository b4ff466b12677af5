"""The decode cache: built once per node and size even under concurrency,
never read when damaged, keyed by the files, and the same pixels as the
per-file decode."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from scenetune.trainables.data.cache import ARRAY, INDEX, MARKER, cache_key, open_cache
from scenetune.trainables.data.decode import load_resized


def write_images(folder, n, size=48, seed=0):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = os.path.join(folder, f"img_{i:04d}.jpg")
        h, w = int(rng.integers(size, 2 * size)), int(rng.integers(size, 2 * size))
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(str(tmp_path_factory.mktemp("cache_src")), 24)


def test_built_once_then_reused_with_the_decodes_pixels(images, tmp_path):
    first = open_cache(images, 32, str(tmp_path))
    again = open_cache(list(reversed(images)), 32, str(tmp_path))  # order does not matter
    assert first.built and not again.built and first.folder == again.folder
    assert again.images.shape == (24, 32, 32, 3) and not again.images.flags.writeable
    for path in images[::5]:
        np.testing.assert_array_equal(again.images[again.rows([path])[0]], load_resized(path, 32))
    assert not any(".tmp-" in name for name in os.listdir(tmp_path))


def _race(args):
    paths, size, cache_dir, barrier = args
    barrier.wait()
    cache = open_cache(paths, size, cache_dir)
    return cache.built, cache.folder, np.asarray(cache.images).tobytes()


def test_two_processes_racing_build_it_exactly_once(tmp_path):
    paths = write_images(str(tmp_path / "src"), 120, size=96)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(2)
        with ctx.Pool(2) as pool:
            results = pool.map(_race, [(paths, 64, str(tmp_path / "cache"), barrier)] * 2)
    assert sorted(built for built, _, _ in results) == [False, True]
    assert results[0][1] == results[1][1]
    assert results[0][2] == results[1][2]  # both read identical arrays


@pytest.mark.parametrize("damage", ["marker removed", "array truncated", "header corrupted", "rows corrupted",
                                    "index garbled"])
def test_a_damaged_cache_is_rebuilt_not_read(images, tmp_path, damage):
    cache = open_cache(images, 32, str(tmp_path))
    good = np.array(cache.images)
    folder = cache.folder
    del cache
    array = os.path.join(folder, ARRAY)
    if damage == "marker removed":
        os.remove(os.path.join(folder, MARKER))
    elif damage == "array truncated":
        os.truncate(array, os.path.getsize(array) // 2)
    elif damage == "header corrupted":
        with open(array, "r+b") as f:
            f.write(b"\x00" * 16)
    elif damage == "rows corrupted":  # same length and header, zeroed data
        with open(array, "r+b") as f:
            f.seek(-32 * 32 * 3, os.SEEK_END)
            f.write(b"\x00" * 32 * 32 * 3)
    elif damage == "index garbled":
        with open(os.path.join(folder, INDEX), "w") as f:
            f.write('{"version": 1, "key"')
    rebuilt = open_cache(images, 32, str(tmp_path))
    assert rebuilt.built and rebuilt.folder == folder
    np.testing.assert_array_equal(np.asarray(rebuilt.images), good)


def test_a_killed_builder_leaves_nothing_that_is_read(tmp_path):
    paths = write_images(str(tmp_path / "src"), 400, size=96)
    cache_dir = tmp_path / "cache"
    code = ("import sys; from scenetune.trainables.data.cache import open_cache; "
            f"open_cache({paths!r}, 96, {str(cache_dir)!r}, workers=1)")
    builder = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:  # kill it mid-build, once its temporary folder exists
        if cache_dir.is_dir() and any(".tmp-" in name for name in os.listdir(cache_dir)):
            time.sleep(0.05)  # a moment into decoding
            break
        time.sleep(0.01)
    builder.send_signal(signal.SIGKILL)
    builder.wait()
    assert builder.returncode == -signal.SIGKILL, "the builder finished before it could be killed"
    names = os.listdir(cache_dir)
    assert any(".tmp-" in n for n in names) and not any(n.startswith("96px") and "." not in n for n in names)
    cache = open_cache(paths, 96, str(cache_dir))
    assert cache.built
    assert not any(".tmp-" in n for n in os.listdir(cache_dir)), "the killed builder's leftovers are removed"
    np.testing.assert_array_equal(cache.images[-1], load_resized(cache.paths[-1], 96))


def test_the_key_follows_the_files_and_the_size(images, tmp_path):
    key = cache_key(images, 32)
    assert cache_key(list(reversed(images)), 32) == key
    assert cache_key(images, 48) != key
    assert cache_key(images[:-1], 32) != key  # a file left out
    extra = write_images(str(tmp_path), 1, seed=5)
    assert cache_key(images + extra, 32) != key  # a file added
    st = os.stat(images[0])
    os.utime(images[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    try:
        assert cache_key(images, 32) != key  # a file changed
    finally:
        os.utime(images[0], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache_key(images, 32) == key


def test_a_file_that_fails_to_decode_is_recorded_not_fatal(images, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(open(images[0], "rb").read()[:200])
    cache = open_cache(images + [str(broken)], 32, str(tmp_path / "cache"))
    assert list(cache.failed) == [str(broken)] and "truncated" in cache.failed[str(broken)]
    assert not cache.images[cache.rows([str(broken)])[0]].any()


def test_the_location_comes_from_the_environment(images, tmp_path, monkeypatch):
    monkeypatch.setenv("SCENETUNE_CACHE", str(tmp_path / "env_cache"))
    cache = open_cache(images[:3], 16)
    assert cache.folder.startswith(str(tmp_path / "env_cache") + os.sep)
