"""Regressions from fuzzing the decode (tests/fuzz/test_image_fuzz.py): each a
minimal damaged file that once crashed the data check or the cache's decode
with an exception other than UndecodableImage, or got a wrong reason."""

import io
import struct
import warnings

import numpy as np
import pytest
from PIL import Image

from scenetune.trainables.data.datacheck import check_file
from scenetune.trainables.data.decode import NOTE_EXIF, NOTE_EXIF_UNREADABLE, UndecodableImage, load_resized, load_rgb


def _exif_jpeg(tag_bytes: bytes) -> bytes:
    """A 30x20 JPEG with EXIF orientation 6 and a Make tag (ASCII), whose
    Make entry's tag number is replaced by ``tag_bytes``."""
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    exif = picture.getexif()
    exif[0x0112] = 6
    exif[0x010F] = "Maker"
    out = io.BytesIO()
    picture.save(out, "JPEG", exif=exif, quality=95)
    data = out.getvalue()
    make = b"\x01\x0f\x00\x02"  # big-endian ("MM") entry: tag 0x010f, type 2 (ASCII)
    assert data.count(make) == 1
    return data.replace(make, tag_bytes + b"\x00\x02")


@pytest.mark.parametrize("tag", [b"\x01\x07", b"\x01\x1f"], ids=["Threshholding (SHORT)", "YPosition (RATIONAL)"])
def test_an_exif_tag_holding_a_value_of_another_type_does_not_stop_the_rotation(tmp_path, tag):
    """Once: struct.error / TypeError from ImageOps.exif_transpose rewriting
    the EXIF block, a crash of the check and the cache. The pixels are fine:
    the image is kept, rotated as its orientation says."""
    path = tmp_path / "exif.jpg"
    path.write_bytes(_exif_jpeg(tag))
    pixels, info = load_rgb(str(path))
    assert pixels.shape == (30, 20, 3) and NOTE_EXIF in info.notes  # stored 30x20 landscape, shown portrait
    assert check_file(str(path)) == (None, [NOTE_EXIF])
    assert load_resized(str(path), 16).shape == (16, 16, 3)


def _tiff_with_strip_offsets_of_type(kind: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (9, 7), (10, 20, 30)).save(out, "TIFF")
    data = out.getvalue()
    entry = b"\x11\x01\x04\x00"  # little-endian: tag 273 (StripOffsets), type 4 (LONG)
    assert data.count(entry) == 1
    return data.replace(entry, b"\x11\x01" + bytes([kind, 0]))


@pytest.mark.parametrize("kind", [5, 12], ids=["RATIONAL", "DOUBLE"])
def test_a_tiff_whose_strip_offsets_are_not_integers_is_bad_not_a_crash(tmp_path, kind):
    """Once: TypeError from PIL's TIFF loader ("'float' object cannot be
    interpreted as an integer"), which the decode did not catch."""
    path = tmp_path / "strips.jpg"
    path.write_bytes(_tiff_with_strip_offsets_of_type(kind))
    with pytest.raises(UndecodableImage, match="^damaged TIFF: "):
        load_rgb(str(path))
    reason, _ = check_file(str(path))
    assert reason.startswith("damaged TIFF: ")
    with pytest.raises(UndecodableImage):
        load_resized(str(path), 16)


def test_a_known_format_whose_header_does_not_parse_is_damaged_not_unknown(tmp_path):
    """PIL identifies no image when a JPEG's or PNG's header is broken: the
    reason says which format it is, not "unknown format"."""
    jpeg = tmp_path / "header.jpg"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40)
    png = tmp_path / "header.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    assert check_file(str(jpeg))[0] == "damaged JPEG: its header does not parse"
    assert check_file(str(png))[0] == "damaged PNG: its header does not parse"


def test_a_tiny_bmp_claiming_134_million_pixels_is_too_large_before_any_allocation(tmp_path):
    """Once: one flipped bit in a 1x1 BMP's width (1 -> 134217729) made PIL
    allocate a 134-million-pixel image for a 58-byte file (a DecompressionBombWarning,
    which the decode ignores for DCT-scaled JPEGs), raising MemoryError
    from the cache's decode instead of UndecodableImage."""
    out = io.BytesIO()
    Image.new("RGB", (1, 1), (1, 2, 3)).save(out, "BMP")
    data = bytearray(out.getvalue())
    data[21] ^= 8  # width, little-endian at offset 18: 0x00000001 -> 0x08000001
    path = tmp_path / "wide.bmp"
    path.write_bytes(bytes(data))
    with pytest.raises(UndecodableImage, match=r"^too large: 134217729x1 pixels"):
        load_resized(str(path), 48)
    assert check_file(str(path))[0].startswith("too large: 134217729x1 pixels")


def test_a_float_tiff_with_nan_pixels_decodes_them_black_without_an_undefined_cast(tmp_path):
    """Found by the fuzzing as a RuntimeWarning ("invalid value encountered in
    cast"): NaN floats cast to uint8 give whatever the platform gives."""
    values = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    values[0, 0], values[1, 1], values[2, 2] = np.nan, np.inf, -np.inf
    path = tmp_path / "float.tif"
    Image.fromarray(values, "F").save(path, "TIFF")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pixels, info = load_rgb(str(path))
    assert info.mode == "F" and pixels.dtype == np.uint8 and pixels.shape == (3, 4, 3)
    assert pixels[0, 0].tolist() == pixels[1, 1].tolist() == pixels[2, 2].tolist() == [0, 0, 0]
    assert pixels[2, 3].tolist() == [255, 255, 255]


def test_exif_that_does_not_parse_leaves_the_pixels_as_stored(tmp_path, monkeypatch):
    """The policy behind the two EXIF regressions: metadata that PIL cannot
    read (here, any error from getexif) does not make the image bad."""
    path = tmp_path / "plain.jpg"
    Image.new("RGB", (30, 20), (200, 30, 30)).save(path, "JPEG")

    def broken(self):
        raise struct.error("unpack requires a buffer of 12 bytes")

    monkeypatch.setattr(Image.Image, "getexif", broken)
    pixels, info = load_rgb(str(path))
    assert pixels.shape == (20, 30, 3) and info.notes == [NOTE_EXIF_UNREADABLE]
    assert check_file(str(path)) == (None, [NOTE_EXIF_UNREADABLE])
