"""Damaged images through the data check and the cache's decode (issue 17).

Small real images (JPEG, PNG, GIF, WebP, BMP and TIFF; RGB, L, P and RGBA;
a few sizes and encoder options) are truncated, bit-flipped, spliced with
other images, or have bytes inserted, deleted or overwritten, at positions
Hypothesis chooses (biased towards the headers). Each example writes its
fuzzed files into a small mit67 tree (``ROOT/Images/fuzz/<file>``, next to
one good image in ``ROOT/Images/control``) and checks:

- the data check (:func:`check_dataset`, which classifies each file with
  :func:`scenetune.trainables.data.datacheck.check_file`) never raises, and
  it classifies every file: kept, converted (with notes) or bad (with a
  one-line reason); an unmodified image is never bad;
- the cache's decode (:func:`load_resized`) of every file gives a
  ``[SIZE, SIZE, 3]`` uint8 array or raises :class:`UndecodableImage` (the
  one error the cache records instead of crashing), and never raises for a
  file the check keeps;
- batches of fuzzed files go through :func:`open_cache` itself: every kept
  file has its row, none of them in ``failed``.

Examples: ``examples(2000)`` + ``examples(100)`` (2,100 in CI, about 30 s
of CPU), scaled by SCENETUNE_FUZZ_EXAMPLES_SCALE; with SCENETUNE_FUZZ_PROFILE=long
they are random instead of derandomized.

Mutations: truncation (most often near the end), bit flips, overwrites with
boundary bytes, insertions and deletions (half of them in the first 128
bytes, now and then in the magic number), splices with another base image,
and, in files holding a TIFF structure (TIFF, and the EXIF block of a JPEG,
PNG or WebP), one field of an IFD entry set to another tag, type, count or
value. A mutated PNG has its chunk CRCs recomputed half of the time, so the
mutation reaches past the CRC check.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from scenetune.trainables.data.cache import open_cache
from scenetune.trainables.data.datacheck import check_dataset
from scenetune.trainables.data.datasets import IMAGE_EXTENSIONS
from scenetune.trainables.data.decode import UndecodableImage, load_resized

# PIL warns about the damaged metadata it skips (corrupt EXIF, tags past the end of the file)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")

SIZE = 48  # the cache's side: not the check's 32, as in a real sweep
CATEGORY = "fuzz"
# Thousands of small trees: on a RAM file system where there is one (folders
# are made and removed far faster there than on a loaded disk).
TREES = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None

try:
    from tests.fuzz.conftest import examples
except ImportError:  # conftest's examples() not there yet

    def examples(n: int) -> int:
        """``n`` times the scale factor in SCENETUNE_FUZZ_EXAMPLES_SCALE (default 1)."""
        return n * int(os.environ.get("SCENETUNE_FUZZ_EXAMPLES_SCALE", "1"))


def _picture(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    """A gradient with noise (so the encoders have something to compress), in ``mode``."""
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 127 // max(w + h - 2, 1)], -1)
    pixels = np.clip(base + rng.integers(-40, 40, (h, w, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if mode == "RGBA":
        alpha = np.where((x + y) % 3 == 0, 0, 255).astype(np.uint8)
        image = Image.fromarray(np.dstack([pixels, alpha]), "RGBA")
    elif mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    elif mode != "RGB":
        image = image.convert(mode)
    return image


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _bases() -> list[tuple[str, bytes]]:
    """``(label, bytes)`` of every valid image the fuzzing starts from."""
    bases = []
    sizes = [(1, 1), (7, 5), (16, 16), (40, 33)]
    plain = {"JPEG": ["RGB", "L"], "PNG": ["RGB", "L", "P", "RGBA"], "GIF": ["RGB", "L", "P", "RGBA"],
             "WEBP": ["RGB", "RGBA"], "BMP": ["RGB", "L", "P"], "TIFF": ["RGB", "L", "P", "RGBA"]}
    for i, (fmt, modes) in enumerate(plain.items()):
        for j, mode in enumerate(modes):
            for k, size in enumerate(sizes):
                bases.append((f"{fmt} {mode} {size}", _encode(_picture(mode, size, 100 * i + 10 * j + k), fmt)))
    picture = _picture("RGB", (80, 64), 1)  # big enough for DCT scaling in the check
    exif = picture.getexif()
    exif[0x0112] = 6
    bases += [
        ("JPEG progressive", _encode(picture, "JPEG", progressive=True, quality=80)),
        ("JPEG 80x64", _encode(picture, "JPEG", quality=90)),
        ("JPEG EXIF rotated", _encode(picture, "JPEG", exif=exif)),
        ("JPEG CMYK", _encode(picture.convert("CMYK"), "JPEG")),
        ("JPEG 4:2:0 subsampled", _encode(_picture("RGB", (17, 9), 2), "JPEG", subsampling=2)),
        ("PNG interlaced", _encode(_picture("RGB", (16, 16), 3), "PNG", interlace=True)),
        ("PNG 16-bit", _encode(Image.fromarray(np.arange(70, dtype=np.uint16).reshape(7, 10) * 900), "PNG")),
        ("PNG LA", _encode(_picture("LA", (9, 7), 4), "PNG")),
        ("PNG 1-bit", _encode(_picture("1", (9, 7), 5), "PNG")),
        ("GIF animated", _encode(_picture("P", (9, 7), 6), "GIF", save_all=True,
                                 append_images=[_picture("P", (9, 7), 7)], duration=50)),
        ("WEBP lossless", _encode(_picture("RGBA", (16, 16), 8), "WEBP", lossless=True)),
        ("WEBP lossy", _encode(_picture("RGB", (16, 16), 9), "WEBP", quality=50)),
        ("BMP 1-bit", _encode(_picture("1", (9, 7), 10), "BMP")),
        ("TIFF LZW", _encode(_picture("RGB", (16, 16), 11), "TIFF", compression="tiff_lzw")),
        ("TIFF deflate", _encode(_picture("RGB", (16, 16), 12), "TIFF", compression="tiff_adobe_deflate")),
        ("TIFF packbits", _encode(_picture("L", (16, 16), 13), "TIFF", compression="packbits")),
        ("TIFF JPEG", _encode(_picture("RGB", (16, 16), 14), "TIFF", compression="jpeg")),
        ("TIFF CMYK", _encode(_picture("CMYK", (9, 7), 15), "TIFF")),
        ("TIFF 16-bit", _encode(Image.fromarray(np.arange(70, dtype=np.uint16).reshape(7, 10) * 900), "TIFF")),
        ("TIFF float", _encode(Image.fromarray(np.linspace(0, 1, 70, dtype=np.float32).reshape(7, 10)), "TIFF")),
    ]
    # EXIF blocks (a TIFF structure inside the file): orientation and a few tags of other types
    small = _picture("RGB", (12, 9), 16)
    exif = small.getexif()
    exif[0x0112] = 6  # orientation
    exif[0x010F] = "Maker"  # ASCII
    exif[0x011A] = 72.0  # XResolution, RATIONAL
    exif[0x0132] = "2020:01:01 00:00:00"
    for fmt, options in (("JPEG", {}), ("PNG", {}), ("WEBP", {"lossless": True}), ("TIFF", {})):
        bases.append((f"{fmt} with EXIF", _encode(small, fmt, exif=exif, **options)))
    bases.append(("TIFF big-endian", _tiff_big_endian(_picture("RGB", (9, 7), 17))))
    return bases


def _tiff_big_endian(image: Image.Image) -> bytes:
    """An uncompressed ``MM`` TIFF (PIL writes ``II``), for the other byte order's parser."""
    pixels = image.tobytes()
    w, h = image.size
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, 0), (277, 3, 1, 3), (278, 3, 1, h), (279, 4, 1, len(pixels))]
    ifd_size = 2 + 12 * len(entries) + 4
    offset = 8 + ifd_size + 6  # the BitsPerSample triple follows the IFD
    out = bytearray(b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", len(entries)))
    for tag, kind, count, value in entries:
        if tag == 258:
            count, value = 3, 8 + ifd_size
        if tag == 273:
            value = offset
        packed = struct.pack(">HH", value, 0) if kind == 3 and count == 1 else struct.pack(">I", value)
        out += struct.pack(">HHI", tag, kind, count) + packed
    out += struct.pack(">I", 0) + struct.pack(">HHH", 8, 8, 8) + pixels
    return bytes(out)


BASES = _bases()


@st.composite
def _position(draw, n: int) -> int:
    """A byte offset in ``[0, n)``: in the headers (bytes 4 to 127) or anywhere, now and
    then in the first 4 bytes (the magic number: a file no longer identified)."""
    region = draw(st.sampled_from(["header", "anywhere", "header", "anywhere", "magic"]))
    if region == "magic" or n <= 4:
        return draw(st.integers(0, max(0, min(n, 4) - 1)))
    if region == "header":
        return draw(st.integers(4, min(n, 128) - 1))
    return draw(st.integers(4, n - 1))


def _ifd_entries(data: bytes) -> list[tuple[int, str]]:
    """``(offset, byte order)`` of each 12-byte entry of the first IFD of the
    first TIFF structure in ``data`` (a TIFF file, or the EXIF block of a
    JPEG, PNG or WebP); [] when there is none or it does not parse."""
    for magic, order in ((b"II*\x00", "<"), (b"MM\x00*", ">")):
        start = data.find(magic)
        if start < 0 or start + 8 > len(data):
            continue
        ifd = start + struct.unpack(order + "I", data[start + 4:start + 8])[0]
        if ifd + 2 > len(data):
            continue
        count = struct.unpack(order + "H", data[ifd:ifd + 2])[0]
        return [(ifd + 2 + 12 * i, order) for i in range(count) if ifd + 14 + 12 * i <= len(data)]
    return []


def _fix_png_crcs(data: bytes) -> bytes:
    """``data`` with every whole PNG chunk's CRC recomputed, so that a mutation
    reaches the decoder instead of stopping at the CRC check."""
    out, at = bytearray(data), 8
    while at + 12 <= len(out):
        length = struct.unpack(">I", out[at:at + 4])[0]
        end = at + 8 + length
        if end + 4 > len(out):
            break
        out[end:end + 4] = struct.pack(">I", zlib.crc32(out[at + 4:end]))
        at = end + 4
    return bytes(out)


INTERESTING_TYPES = list(range(14)) + [0xFFFF]
INTERESTING_WORDS = [0, 1, 2, 3, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


@st.composite
def fuzzed_image(draw) -> tuple[str, bytes, str]:
    """``(description, bytes, file name extension)``: a valid image, mutated 0 to 3 times."""
    label, data = draw(st.sampled_from(BASES))
    steps = [label]
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["truncate", "flip", "splice", "insert", "delete", "overwrite", "ifd"]))
        n = len(data)
        entries = _ifd_entries(data) if op == "ifd" else []
        if op == "ifd" and not entries:
            op = "flip"
        if op == "truncate" and n:
            at = n - draw(st.integers(1, n))  # most often near the end: the image data cut short
            data = data[:at]
            steps.append(f"truncate at {at}")
        elif op == "flip" and n:
            at, bit = draw(_position(n)), draw(st.integers(0, 7))
            data = data[:at] + bytes([data[at] ^ (1 << bit)]) + data[at + 1:]
            steps.append(f"flip bit {bit} of byte {at}")
        elif op == "splice":
            other_label, other = draw(st.sampled_from(BASES))
            at, start = draw(_position(n + 1)), draw(st.integers(0, len(other)))
            data = data[:at] + other[start:]
            steps.append(f"splice {other_label}[{start}:] at {at}")
        elif op == "insert":
            at, extra = draw(_position(n + 1)), draw(st.binary(min_size=1, max_size=16))
            data = data[:at] + extra + data[at:]
            steps.append(f"insert {extra.hex()} at {at}")
        elif op == "delete" and n:
            at, length = draw(_position(n)), draw(st.integers(1, 16))
            data = data[:at] + data[at + length:]
            steps.append(f"delete {length} bytes at {at}")
        elif op == "overwrite" and n:
            at = draw(_position(n))
            value = draw(st.sampled_from([b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00\x00\x00",
                                          b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff"]))
            data = data[:at] + value + data[at + len(value):]
            steps.append(f"overwrite {value.hex()} at {at}")
        elif op == "ifd":  # one field of an IFD entry (EXIF or TIFF tags): its tag, type, count or value
            at, order = draw(st.sampled_from(entries))
            field, width = draw(st.sampled_from([("tag", 2), ("type", 2), ("count", 4), ("value", 4)]))
            if field == "type":
                value = draw(st.sampled_from(INTERESTING_TYPES))
            elif field == "tag":
                value = draw(st.sampled_from([0x0112, 0x0100, 0x0101, 0x0102, 0x0103, 0x0106, 0x0111, 0x0115,
                                              0x0116, 0x0117, 0x011A, 0x0140, 0x0152, 0x8769, 0x0107, 0x011F]))
            else:
                value = draw(st.one_of(st.sampled_from(INTERESTING_WORDS), st.integers(0, 2**32 - 1)))
            at += {"tag": 0, "type": 2, "count": 4, "value": 8}[field]
            data = data[:at] + struct.pack(order + ("H" if width == 2 else "I"), value) + data[at + width:]
            steps.append(f"IFD entry {field} := {value:#x} at {at}")
    if data.startswith(b"\x89PNG") and len(steps) > 1 and draw(st.booleans()):
        data = _fix_png_crcs(data)
        steps.append("PNG CRCs fixed")
    extension = draw(st.sampled_from(IMAGE_EXTENSIONS))
    return "; ".join(steps), data, extension


def _tree(root: str, files: list[tuple[str, bytes, str]]) -> dict[str, str]:
    """Write the mit67 tree; ``{relative path: description}`` of the fuzzed files."""
    os.makedirs(os.path.join(root, "Images", "control"))
    os.makedirs(os.path.join(root, "Images", CATEGORY))
    with open(os.path.join(root, "Images", "control", "good.jpg"), "wb") as f:
        f.write(BASES[0][1])  # a valid JPEG: the dataset always has a usable image
    written = {}
    for i, (description, data, extension) in enumerate(files):
        rel = f"Images/{CATEGORY}/f{i:02d}{extension}"
        with open(os.path.join(root, rel), "wb") as f:
            f.write(data)
        written[rel] = description
    return written


def _check_classifies_every_file(root: str, written: dict[str, str]):
    """Run the data check; every fuzzed file is kept, converted or bad with a reason."""
    result = check_dataset(root, "mit67", workers=1)  # one thread: the same code path, less overhead
    assert result.images == len(written) + 1 and not result.skipped
    bad = {e["path"]: e for e in result.bad}
    converted = {e["path"]: e for e in result.converted}
    assert set(bad) <= set(written) and set(converted) <= set(written) | {"Images/control/good.jpg"}
    for rel, description in written.items():
        if rel in bad:
            reason = bad[rel]["reason"]
            assert isinstance(reason, str) and reason.strip() and "\n" not in reason, (description, reason)
            assert rel not in converted, description
            assert bad[rel]["label"] == CATEGORY
            assert ";" in description, f"an unmodified image is bad: {description}: {reason}"
        if rel in converted:
            assert converted[rel]["notes"] and all(isinstance(n, str) and n for n in converted[rel]["notes"])
    result.to_json(), result.format_text()  # what the CLI prints: never raises
    return result, set(bad)


def _decode_like_the_cache(path: str, kept: bool, description: str) -> None:
    try:
        pixels = load_resized(path, SIZE)
    except UndecodableImage as e:
        assert not kept, f"the check keeps {description} but the cache's decode fails: {e}"
        return
    assert isinstance(pixels, np.ndarray), description
    assert pixels.shape == (SIZE, SIZE, 3) and pixels.dtype == np.uint8, (description, pixels.shape, pixels.dtype)


@settings(max_examples=examples(2000))
@given(files=st.lists(fuzzed_image(), min_size=1, max_size=3))
def test_the_check_classifies_every_fuzzed_file_and_kept_ones_decode(files):
    with tempfile.TemporaryDirectory(prefix="scenetune-fuzz-", dir=TREES) as root:
        written = _tree(root, files)
        _, bad = _check_classifies_every_file(root, written)
        for rel, description in written.items():
            _decode_like_the_cache(os.path.join(root, rel), rel not in bad, description)


@st.composite
def intact_image(draw) -> tuple[str, bytes, str]:
    """A base image as it is (under any of the extensions): the check never calls it bad."""
    label, data = draw(st.sampled_from(BASES))
    return label, data, draw(st.sampled_from(IMAGE_EXTENSIONS))


@settings(max_examples=examples(100))
@given(files=st.lists(fuzzed_image(), min_size=3, max_size=15), intact=intact_image(), at=st.integers(0, 15))
def test_kept_fuzzed_files_go_through_the_cache(files, intact, at):
    """Every batch holds one intact image among the fuzzed ones, so it always
    has a kept file to go through the cache, with the damaged ones around it."""
    files = files[:at] + [intact] + files[at:]
    with tempfile.TemporaryDirectory(prefix="scenetune-fuzz-", dir=TREES) as root:
        written = _tree(root, files)
        _, bad = _check_classifies_every_file(root, written)
        kept = [os.path.join(root, rel) for rel in written if rel not in bad]
        intact_rel = f"Images/{CATEGORY}/f{min(at, len(files) - 1):02d}{intact[2]}"
        assert written[intact_rel] == intact[0] and intact_rel not in bad, (intact[0], bad.get(intact_rel))
        cache = open_cache(kept, SIZE, os.path.join(root, "cache"), workers=2)
        assert cache.images.shape == (len(kept), SIZE, SIZE, 3) and cache.images.dtype == np.uint8
        assert not cache.failed, {os.path.relpath(p, root): (written[os.path.relpath(p, root)], why)
                                  for p, why in cache.failed.items()}
        assert sorted(cache.paths) == sorted(kept)


def test_every_base_image_is_valid_and_every_format_is_there():
    formats = set()
    for label, data in BASES:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            formats.add(image.format)
    assert formats == {"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"}
    assert len(BASES) >= 80


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
