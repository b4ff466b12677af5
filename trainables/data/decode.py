"""One image decode for the whole project: file -> correct RGB uint8 pixels.

The data check (:mod:`scenetune.trainables.data.datacheck`, in the driver), the decode cache
(:mod:`scenetune.trainables.data.cache`, in trials) and :func:`scenetune.trainables.data.pipeline.decode_resize`
all call :func:`load_rgb`, so an image means the same pixels everywhere. No
TensorFlow: PIL decodes what TensorFlow's ``decode_jpeg`` gets wrong or
refuses (EXIF orientation, CMYK and YCCK JPEGs, 16-bit PNGs, palette and
alpha images), and it identifies a file by its content, not its extension.

What it does to each kind:
- a plain JPEG (YCbCr or grayscale, no EXIF rotation), the hot path of the
  cache: libjpeg-turbo through simplejpeg, DCT-scaled in eighths to the
  smallest size not under the target (:func:`load_resized`);
- other JPEGs: libjpeg's DCT scaling (``Image.draft``) decodes at 1/2, 1/4 or 1/8
  scale when the source is at least that many times the requested side, which
  skips most of the work (a 12000x9000 photo decodes at 1500x1125);
- EXIF orientation applied (the transposition ``ImageOps.exif_transpose``
  would make, without rewriting the EXIF block), so a portrait photo stored
  sideways comes out upright; an EXIF block that does not parse, or an
  orientation that is no valid value, leaves the pixels as stored (the
  pixels are fine: only metadata is damaged);
- CMYK, YCCK, grayscale and palette images converted to RGB; 16-bit images
  scaled to 8 bits (not clipped); transparent pixels composited on white.

Failures raise :class:`UndecodableImage` with a one-line reason (empty file,
not an image, truncated, too large...).
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
import simplejpeg
from PIL import Image, ImageFile, UnidentifiedImageError

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is bad, never half grey
JPEG_MAGIC = b"\xff\xd8\xff"

# Why a decode changed what a plain RGB read would give, for the data check.
NOTE_EXIF = "EXIF orientation applied"
NOTE_EXIF_UNREADABLE = "EXIF data unreadable: orientation not applied"
NOTE_SIXTEEN_BIT = "16-bit image scaled to 8 bits"
NOTE_ALPHA = "transparency composited on white"

# EXIF orientation -> the transposition that shows the image upright (as ImageOps.exif_transpose)
ORIENTATIONS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}
# What PIL's decoders raise for broken data: a damaged header or stream as
# any of these, a TIFF or EXIF tag holding a value of the wrong type as
# TypeError or struct.error (found by tests/fuzz/test_image_fuzz.py).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error,
                 ArithmeticError)


class UndecodableImage(Exception):
    """A file that does not decode to an image; ``str(e)`` is the reason."""


@dataclass
class ImageInfo:
    """What the file holds, before any conversion."""
    format: str  # PIL's name for the content: JPEG, PNG, GIF, BMP, WEBP...
    width: int
    height: int
    mode: str  # PIL mode of the stored pixels: RGB, L, CMYK, RGBA, P, I;16...
    notes: list[str] = field(default_factory=list)


def _head(path: str, n: int = 16) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _describe_non_image(path: str) -> str:
    """Why PIL identified no image: what the file is, or, for one that starts
    like a known image format but whose header does not parse, a damaged image."""
    head = _head(path, 64).lstrip()
    lower = head.lower()
    if lower.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "not an image: HTML page"
    if lower.startswith((b"<?xml", b"<svg")):
        return "not an image: XML/SVG text"
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "not an image: text file"
    kind = _kind(path)
    if kind != "image":
        return f"damaged {kind}: its header does not parse"
    return f"not an image: unknown format (starts {head[:8].hex()})"


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # PIL's convert("RGB") clips 16-bit values at 255: scale instead.
        values = np.asarray(image, dtype=np.float32)
        notes.append(NOTE_SIXTEEN_BIT)
        gray = np.clip(values / 257.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[..., None], 3, axis=-1), "RGB")
    if mode == "RGB":
        return image
    if mode == "F":
        values = np.asarray(image, dtype=np.float32)
        values = np.where(np.isfinite(values), values, 0.0)  # NaN and infinities: black, not undefined
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
        gray = np.clip(values * scale + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[..., None], 3, axis=-1), "RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("LA", "La", "PA"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "RGBa"):
        alpha = image.getchannel("A")
        if alpha.getextrema()[0] < 255:
            notes.append(NOTE_ALPHA)
            white = Image.new("RGB", image.size, (255, 255, 255))
            white.paste(image.convert("RGB"), mask=alpha)
            return white
    return image.convert("RGB")


def load_rgb(path: str, min_side: int | None = None) -> tuple[np.ndarray, ImageInfo]:
    """Decode ``path`` to ``(uint8 array [h, w, 3], info)``.

    ``min_side``: the decoded image may be smaller than stored, but not
    smaller than this on its shorter side (JPEG DCT scaling); then an image
    needing more than ``Image.MAX_IMAGE_PIXELS`` decoded pixels is too large.
    None decodes at full size (PIL's own limit: twice that). Raises
    :class:`UndecodableImage` with the reason.
    """
    image, info = decode_image(path, min_side)
    return np.asarray(image), info


def decode_image(path: str, min_side: int | None = None) -> tuple[Image.Image, ImageInfo]:
    """:func:`load_rgb`, as an RGB PIL image (no copy into an array)."""
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise UndecodableImage(f"unreadable: {e.strerror or e}") from None
    if size == 0:
        raise UndecodableImage("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Large photos warn (DecompressionBombWarning); DCT scaling keeps
            # them cheap. Beyond twice the limit PIL raises, reported below;
            # decoding for a target size, what DCT scaling cannot bring under
            # the limit is refused before any pixel is allocated (a damaged
            # 58-byte BMP can claim 134 million pixels).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = opened = Image.open(path)
            rgb = None
            try:
                info = ImageInfo(image.format or "unknown", image.width, image.height, image.mode)
                if image.format in ("JPEG", "MPO") and min_side:
                    short = min(image.width, image.height)
                    scale = max(1, min(8, short // min_side))
                    image.draft("RGB" if image.mode != "CMYK" else None,
                                (-(-image.width // scale), -(-image.height // scale)))
                if min_side and image.width * image.height > Image.MAX_IMAGE_PIXELS:
                    raise UndecodableImage(f"too large: {info.width}x{info.height} pixels, more than "
                                           f"{Image.MAX_IMAGE_PIXELS} to decode")
                image.load()
                transpose = _orientation(image, info.notes)
                if transpose is not None:
                    info.notes.append(NOTE_EXIF)
                    image = image.transpose(transpose)
                rgb = _to_rgb(image, info.notes)
                return rgb, info
            finally:
                if rgb is not opened:  # a plain RGB file comes back as the opened image: keep it
                    opened.close()
    except UnidentifiedImageError:
        raise UndecodableImage(_describe_non_image(path)) from None
    except Image.DecompressionBombError as e:
        raise UndecodableImage(f"too large: {e}") from None
    except DECODE_ERRORS as e:
        message = str(e) or type(e).__name__
        if "truncated" in message.lower() or isinstance(e, EOFError):
            raise UndecodableImage(f"truncated or damaged {_kind(path)}: {message}") from None
        raise UndecodableImage(f"damaged {_kind(path)}: {message}") from None


def _orientation(image: Image.Image, notes: list[str]) -> Image.Transpose | None:
    """The transposition the image's EXIF orientation asks for; None for none,
    an invalid value, or EXIF data that does not parse (noted)."""
    try:
        value = image.getexif().get(0x0112, 1)
    except DECODE_ERRORS:
        notes.append(NOTE_EXIF_UNREADABLE)
        return None
    return ORIENTATIONS.get(value) if isinstance(value, int) else None


def _kind(path: str) -> str:
    head = _head(path)
    for magic, name in ((JPEG_MAGIC, "JPEG"), (b"\x89PNG", "PNG"), (b"GIF8", "GIF"), (b"BM", "BMP"),
                        (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF")):
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return "image"


def resize_square(image: Image.Image | np.ndarray, size: int) -> np.ndarray:
    """RGB image -> ``[size, size, 3]`` uint8, stretched to a square (as
    Keras' ``target_size`` does). Shrinking by 1.5x or more averages pixel
    areas (OpenCV's ``INTER_AREA``, antialiased); anything closer to the target,
    which is what DCT scaling leaves (at most 1.33x for a JPEG above 3/8 scale),
    is bilinear (``INTER_LINEAR``, 1.5x cheaper here)."""
    pixels = np.asarray(image)
    height, width = pixels.shape[:2]
    if (height, width) == (size, size):
        return pixels
    shrink = min(height, width) / size
    interpolation = cv2.INTER_AREA if shrink >= 1.5 else cv2.INTER_LINEAR
    return cv2.resize(pixels, (size, size), interpolation=interpolation)


def _fast_jpeg(path: str, size: int) -> np.ndarray | None:
    """The common case, a plain YCbCr or grayscale JPEG without EXIF
    rotation, decoded by libjpeg-turbo through simplejpeg with DCT scaling in
    eighths (a 450 px photo decodes at 5/8 for 224 px, where PIL can only
    halve): 1.6x cheaper than PIL's decode here. Libjpeg's accurate IDCT and
    chroma upsampling: the fast ones cost about 4 points of validation
    accuracy on the quickstart's 64 px scenes. None for anything else (CMYK,
    EXIF orientation, not a JPEG, damaged): :func:`decode_image` then decodes
    it, or says why not."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        if not data.startswith(JPEG_MAGIC):
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:  # reads the headers only
                if header.mode not in ("RGB", "L") or header.getexif().get(0x0112, 1) not in (1, None):
                    return None
        pixels = simplejpeg.decode_jpeg(data, "RGB", min_height=size, min_width=size)
    except Exception:  # noqa: BLE001 - any doubt: the full decode decides, with its reason
        return None
    return resize_square(pixels, size)


def load_resized(path: str, size: int) -> np.ndarray:
    """``path`` -> ``[size, size, 3]`` uint8 RGB: the cache's and the pipeline's decode."""
    fast = _fast_jpeg(path, size)
    if fast is not None:
        return fast
    image, _ = decode_image(path, min_side=size)
    return resize_square(image, size)
