"""Generated fixtures: every kind of file a real image folder holds, good and bad.

``write_kinds(folder)`` writes one file of each kind into ``folder`` and
returns ``{name: Kind}`` saying what the data check and the decode must make
of it: ``reason`` (a pattern of why it is bad; None when it decodes),
``notes`` (patterns of the conversions the check reports) and ``color``
(the RGB the decode must give at the image's centre, or ``(top, bottom)`` for
the EXIF-rotated one).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image


@dataclass
class Kind:
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    color: tuple | None = None


def jpeg_bytes(color=(200, 40, 40), size=(48, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG", quality=95)
    return out.getvalue()


def _save(image: Image.Image, path: str, fmt: str, **kw) -> None:
    with open(path, "wb") as f:
        image.save(f, fmt, **kw)


def write_kinds(folder: str, big: bool = True) -> dict[str, Kind]:
    """One file of each kind in ``folder``; ``big`` adds the 12000x9000 JPEG."""
    os.makedirs(folder, exist_ok=True)
    kinds: dict[str, Kind] = {}

    def path(name):
        return os.path.join(folder, name)

    # Bad: none of these decodes.
    data = jpeg_bytes()
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    noisy.save(buffer, "JPEG", quality=95)
    open(path("truncated.jpg"), "wb").write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    kinds["truncated.jpg"] = Kind(reason="truncated")
    open(path("zero.jpg"), "wb").close()
    kinds["zero.jpg"] = Kind(reason="empty file")
    open(path("page.jpg"), "w").write("<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n")
    kinds["page.jpg"] = Kind(reason="HTML")
    open(path("notes.jpg"), "w").write("just some notes someone saved with the wrong name\n")
    kinds["notes.jpg"] = Kind(reason="text file")
    open(path("garbage.jpg"), "wb").write(b"\x00\x01\x02\x03" * 100)
    kinds["garbage.jpg"] = Kind(reason="unknown format")

    # Decodable, converted to RGB on decode.
    red = (220, 30, 30)
    _save(Image.new("RGB", (40, 30), red), path("png_as.jpg"), "PNG")
    kinds["png_as.jpg"] = Kind(notes=["PNG content"], color=red)
    _save(Image.new("RGB", (40, 30), red).convert("P", palette=Image.Palette.ADAPTIVE), path("gif_as.jpg"), "GIF")
    kinds["gif_as.jpg"] = Kind(notes=["GIF content", "palette"], color=red)
    _save(Image.new("RGB", (40, 30), red), path("bmp_as.jpg"), "BMP")
    kinds["bmp_as.jpg"] = Kind(notes=["BMP content"], color=red)
    _save(Image.new("RGB", (40, 30), red), path("webp_as.jpg"), "WEBP", lossless=True)
    kinds["webp_as.jpg"] = Kind(notes=["WEBP content"], color=red)
    _save(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), path("cmyk.jpg"), "JPEG", quality=95)
    kinds["cmyk.jpg"] = Kind(notes=["CMYK"], color=(255, 0, 0))
    _save(Image.new("L", (40, 30), 90), path("gray.jpg"), "JPEG", quality=95)
    kinds["gray.jpg"] = Kind(notes=["grayscale"], color=(90, 90, 90))
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., :3] = (10, 120, 10)
    rgba[:, :20, 3] = 255  # left half opaque green, right half fully transparent
    _save(Image.fromarray(rgba, "RGBA"), path("rgba.png"), "PNG")
    kinds["rgba.png"] = Kind(notes=["transparency"], color=None)
    _save(Image.fromarray(np.full((30, 40), 40000, np.uint16)), path("gray16.png"), "PNG")
    kinds["gray16.png"] = Kind(notes=["16-bit"], color=(156, 156, 156))  # 40000 / 257
    rgb16 = np.zeros((30, 40, 3), np.uint16)
    rgb16[...] = (32768, 0, 65535)  # OpenCV writes BGR: this is RGB (255, 0, 128)
    cv2.imwrite(path("rgb16.png"), rgb16)
    kinds["rgb16.png"] = Kind(color=(255, 0, 128))
    rotated = Image.new("RGB", (40, 30), (230, 20, 20))
    rotated.paste((20, 20, 230), (20, 0, 40, 30))  # stored: left red, right blue
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display": upright, red on top, blue below
    _save(rotated, path("rotated.jpg"), "JPEG", quality=95, exif=exif)
    kinds["rotated.jpg"] = Kind(notes=["EXIF orientation"], color=((230, 20, 20), (20, 20, 230)))
    open(path("plain.jpg"), "wb").write(data)
    kinds["plain.jpg"] = Kind(color=(200, 40, 40))
    if big:
        _save(Image.new("RGB", (12000, 9000), (30, 160, 60)), path("big.jpg"), "JPEG", quality=75)
        kinds["big.jpg"] = Kind(color=(30, 160, 60))
    return kinds


def write_hidden(folder: str) -> dict[str, str]:
    """Files the dataset must skip without reading: ``{name: reason pattern}``."""
    open(os.path.join(folder, "._plain.jpg"), "wb").write(b"\x00\x05\x16\x07 AppleDouble")
    open(os.path.join(folder, ".DS_Store"), "wb").write(b"\x00\x00\x00\x01Bud1")
    open(os.path.join(folder, ".hidden.jpg"), "wb").write(jpeg_bytes())
    open(os.path.join(folder, "readme.txt"), "w").write("not an image")
    return {"._plain.jpg": "resource fork", ".DS_Store": "hidden file", ".hidden.jpg": "hidden file",
            "readme.txt": "not an image extension"}
