"""Sample grids: generated images (floats in [-1, 1]) tiled into one PNG.

The grid is ``cols`` cells wide, each cell the image's own size, separated by
``PAD`` pixels of mid grey; ``grid.json`` beside it records the layout, so the
report can cut a row of cells out of any epoch's grid without TensorFlow.
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

PAD = 2
BACKGROUND = 128


def to_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def tile(images: np.ndarray, cols: int) -> np.ndarray:
    """``(n, s, s, c)`` in [-1, 1] -> one uint8 image of ``ceil(n / cols)`` rows."""
    pixels = to_uint8(images)
    n, size, _, channels = pixels.shape
    rows = -(-n // cols)
    step = size + PAD
    canvas = np.full((rows * step + PAD, cols * step + PAD, channels), BACKGROUND, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[PAD + r * step:PAD + r * step + size, PAD + c * step:PAD + c * step + size] = pixels[i]
    return canvas[..., 0] if channels == 1 else canvas


def save_grid(images: np.ndarray, path: str, cols: int) -> str:
    """Write the grid PNG (and ``grid.json`` in its folder); returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(tile(images, cols)).save(path, optimize=True)
    layout = {"cell": int(images.shape[1]), "pad": PAD, "cols": cols, "count": int(len(images))}
    with open(os.path.join(os.path.dirname(os.path.abspath(path)), "grid.json"), "w") as f:
        json.dump(layout, f)
    return path
