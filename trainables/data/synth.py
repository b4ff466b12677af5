"""Synthetic indoor scenes in the mit67 layout, for the quickstart and tests.

Each class is a procedurally drawn structure (shelves of book-coloured
stripes, converging lanes, arches, a pool, rows of seats...), with random
colours, positions, perspective, lighting, clutter and noise, so a small CNN
learns it well above chance but not perfectly in a few epochs. Everything is
drawn from one seeded generator per image: the same seed gives the same bytes.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from scenetune.core.errors import UserError


class SynthError(UserError):
    """Bad arguments to ``scenetune data synth``."""


# Bounds of ``scenetune data synth``: MIT Indoor 67's largest classes hold
# about 700 images and its photos are mostly under 1000 pixels a side; a
# jitter of 0.9 already spans sides from 0.1x to 1.9x.
MAX_PER_CLASS, MAX_SIZE, MAX_ASPECT_JITTER = 10_000, 2048, 0.9


def _rand_color(rng, lo=0, hi=255):
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def _jitter(rng, color, amount=40):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


def _room(draw, rng, w, h):
    """Walls, floor and ceiling with a random horizon: the shared backdrop."""
    horizon = int(h * rng.uniform(0.45, 0.7))
    draw.rectangle([0, 0, w, horizon], fill=_rand_color(rng, 60, 230))
    draw.rectangle([0, horizon, w, h], fill=_rand_color(rng, 30, 200))
    return horizon


def draw_library(draw, rng, w, h):
    _room(draw, rng, w, h)
    shelves = rng.integers(3, 6)
    wood = _rand_color(rng, 60, 140)
    top, bottom = int(h * rng.uniform(0.05, 0.2)), int(h * rng.uniform(0.8, 0.95))
    row_h = (bottom - top) / shelves
    for r in range(shelves):
        y0 = int(top + r * row_h)
        draw.rectangle([0, y0 + row_h - 4, w, y0 + row_h], fill=wood)
        x = int(rng.integers(0, 8))
        while x < w:
            bw = int(rng.integers(max(2, w // 60), max(4, w // 25)))
            bh = int(row_h * rng.uniform(0.55, 0.92))
            draw.rectangle([x, y0 + row_h - 4 - bh, x + bw, y0 + row_h - 4], fill=_rand_color(rng, 20, 235))
            x += bw + int(rng.integers(0, 3))


def _vanishing(rng, w, h):
    return int(w * rng.uniform(0.35, 0.65)), int(h * rng.uniform(0.3, 0.5))


def draw_subway(draw, rng, w, h):
    vx, vy = _vanishing(rng, w, h)
    draw.rectangle([0, 0, w, h], fill=_rand_color(rng, 20, 90))
    draw.polygon([(0, h), (w, h), (vx, vy)], fill=_rand_color(rng, 60, 160))
    rail = _rand_color(rng, 150, 255)
    for k in range(int(rng.integers(2, 5))):
        x = int(w * (k + 1) / 5 + rng.integers(-w // 20, w // 20 + 1))
        draw.line([(x, h), (vx, vy)], fill=rail, width=max(1, w // 80))
    for k in range(int(rng.integers(3, 8))):  # ceiling lights in perspective
        t = rng.uniform(0.1, 0.9)
        draw.ellipse([vx - t * w / 3, vy * (1 - t) - 3, vx + t * w / 3, vy * (1 - t) + 3], fill=(250, 250, 210))


def draw_bowling(draw, rng, w, h):
    vx, vy = _vanishing(rng, w, h)
    draw.rectangle([0, 0, w, h], fill=_rand_color(rng, 10, 70))
    lanes = int(rng.integers(2, 5))
    wood = _rand_color(rng, 170, 240)
    for k in range(lanes):
        x0, x1 = w * k / lanes, w * (k + 1) / lanes - w * 0.03
        draw.polygon([(x0, h), (x1, h), (vx + (k - lanes / 2) * 6 + 4, vy), (vx + (k - lanes / 2) * 6, vy)], fill=_jitter(rng, wood, 20))
        px = vx + (k - lanes / 2) * 6 + 2
        for p in range(3):
            draw.ellipse([px - 2 + p * 2 - 2, vy - 6, px + p * 2, vy], fill=(245, 245, 245))


def draw_cloister(draw, rng, w, h):
    draw.rectangle([0, 0, w, h], fill=_rand_color(rng, 120, 220))
    stone = _rand_color(rng, 140, 230)
    arches = int(rng.integers(3, 6))
    aw = w / arches
    top = int(h * rng.uniform(0.15, 0.35))
    draw.rectangle([0, int(h * 0.85), w, h], fill=_rand_color(rng, 50, 140))
    for k in range(arches):
        x0 = k * aw + aw * 0.15
        x1 = (k + 1) * aw - aw * 0.15
        dark = _rand_color(rng, 10, 70)
        draw.rectangle([x0, top + (x1 - x0) / 2, x1, h * 0.85], fill=dark)
        draw.pieslice([x0, top, x1, top + (x1 - x0)], 180, 360, fill=dark)
        draw.rectangle([k * aw, top, x0, h * 0.85], fill=stone)


def draw_poolinside(draw, rng, w, h):
    horizon = _room(draw, rng, w, h)
    water = (int(rng.integers(0, 80)), int(rng.integers(120, 220)), int(rng.integers(180, 255)))
    inset = w * rng.uniform(0.05, 0.25)
    draw.polygon([(inset, horizon + 5), (w - inset, horizon + 5), (w, h), (0, h)], fill=water)
    for k in range(int(rng.integers(3, 9))):  # lane ropes and ripples
        y = int(horizon + 5 + (h - horizon) * rng.uniform(0.05, 1))
        draw.line([(0, y), (w, y + rng.integers(-5, 6))], fill=_jitter(rng, (230, 230, 255), 25), width=1)


def draw_movietheater(draw, rng, w, h):
    draw.rectangle([0, 0, w, h], fill=_rand_color(rng, 0, 50))
    draw.rectangle([w * rng.uniform(0.05, 0.2), h * 0.05, w * rng.uniform(0.8, 0.95), h * rng.uniform(0.3, 0.45)],
                   fill=_rand_color(rng, 150, 255))
    seat = _rand_color(rng, 80, 200)
    for r in range(int(rng.integers(3, 6))):
        y = h * (0.55 + 0.1 * r)
        size = w / (14 - r)
        x = rng.uniform(0, size)
        while x < w:
            draw.rounded_rectangle([x, y, x + size * 0.8, y + size * 0.7], radius=2, fill=_jitter(rng, seat, 15))
            x += size


def draw_prisoncell(draw, rng, w, h):
    _room(draw, rng, w, h)
    draw.rectangle([w * 0.6, h * 0.5, w * 0.95, h * 0.65], fill=_rand_color(rng, 100, 200))  # a bunk
    bar = _rand_color(rng, 40, 120)
    gap = int(rng.integers(max(4, w // 16), max(6, w // 8)))
    for x in range(int(rng.integers(0, gap)), w, gap):
        draw.rectangle([x, 0, x + max(2, w // 60), h], fill=bar)
    draw.rectangle([0, h * 0.08, w, h * 0.08 + max(2, h // 50)], fill=bar)


def draw_elevator(draw, rng, w, h):
    draw.rectangle([0, 0, w, h], fill=_rand_color(rng, 90, 200))
    metal = _rand_color(rng, 150, 230)
    x0, x1 = w * rng.uniform(0.1, 0.25), w * rng.uniform(0.75, 0.9)
    y0 = h * rng.uniform(0.05, 0.2)
    mid = (x0 + x1) / 2
    draw.rectangle([x0, y0, mid - 1, h], fill=metal)
    draw.rectangle([mid + 1, y0, x1, h], fill=_jitter(rng, metal, 10))
    draw.line([(mid, y0), (mid, h)], fill=(20, 20, 20), width=2)
    for k in range(int(rng.integers(2, 5))):  # floor buttons
        draw.ellipse([x1 + 4, y0 + 12 * k + 10, x1 + 10, y0 + 12 * k + 16], fill=(255, 200, 60))


def draw_church_inside(draw, rng, w, h):
    draw.rectangle([0, 0, w, h], fill=_rand_color(rng, 80, 170))
    n = int(rng.integers(2, 5))
    for k in range(n):
        x0 = w * (k + 0.3) / n
        x1 = x0 + w * 0.35 / n
        y0 = h * rng.uniform(0.1, 0.25)
        y1 = h * rng.uniform(0.55, 0.7)
        draw.rectangle([x0, y0, x1, y1], fill=_rand_color(rng, 40, 255))
        draw.polygon([(x0, y0), (x1, y0), ((x0 + x1) / 2, y0 - (x1 - x0))], fill=_rand_color(rng, 40, 255))
    pew = _rand_color(rng, 60, 130)
    for r in range(int(rng.integers(3, 6))):
        y = h * (0.72 + 0.06 * r)
        draw.rectangle([w * 0.05, y, w * 0.45, y + 4], fill=pew)
        draw.rectangle([w * 0.55, y, w * 0.95, y + 4], fill=pew)


def draw_locker_room(draw, rng, w, h):
    draw.rectangle([0, 0, w, h], fill=_rand_color(rng, 100, 200))
    color = _rand_color(rng, 30, 230)
    cols = int(rng.integers(4, 9))
    lw = w / cols
    top, bottom = h * rng.uniform(0.02, 0.15), h * rng.uniform(0.75, 0.9)
    for k in range(cols):
        draw.rectangle([k * lw + 1, top, (k + 1) * lw - 1, bottom], fill=_jitter(rng, color, 12))
        for v in range(3):  # vents
            y = top + 6 + v * 4
            draw.line([(k * lw + lw * 0.3, y), (k * lw + lw * 0.7, y)], fill=(30, 30, 30))
        draw.rectangle([k * lw + lw * 0.75, (top + bottom) / 2, k * lw + lw * 0.85, (top + bottom) / 2 + 5], fill=(200, 200, 200))
    draw.rectangle([0, bottom + 8, w, bottom + 14], fill=_rand_color(rng, 90, 160))  # a bench


def draw_buffet(draw, rng, w, h):
    horizon = _room(draw, rng, w, h)
    table = _rand_color(rng, 180, 255)
    draw.rectangle([0, horizon - h * 0.05, w, h * 0.9], fill=table)
    for _ in range(int(rng.integers(6, 14))):
        cx, cy = rng.uniform(0, w), rng.uniform(horizon, h * 0.85)
        r = rng.uniform(w / 30, w / 12)
        draw.ellipse([cx - r, cy - r * 0.6, cx + r, cy + r * 0.6], fill=(240, 240, 240))
        draw.ellipse([cx - r * 0.6, cy - r * 0.35, cx + r * 0.6, cy + r * 0.35], fill=_rand_color(rng, 60, 230))


def draw_florist(draw, rng, w, h):
    draw.rectangle([0, 0, w, h], fill=_rand_color(rng, 30, 120))
    for _ in range(int(rng.integers(40, 90))):
        cx, cy = rng.uniform(0, w), rng.uniform(h * 0.2, h)
        r = rng.uniform(w / 60, w / 25)
        petal = (int(rng.integers(150, 256)), int(rng.integers(0, 200)), int(rng.integers(0, 220)))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=petal)
        draw.line([(cx, cy + r), (cx + rng.uniform(-3, 3), cy + 3 * r)], fill=(30, 140, 40))


def draw_casino(draw, rng, w, h):
    draw.rectangle([0, 0, w, h], fill=_rand_color(rng, 20, 80))
    for _ in range(int(rng.integers(60, 140))):  # ceiling lights
        x, y = rng.uniform(0, w), rng.uniform(0, h * 0.4)
        draw.point((x, y), fill=(255, 240, 150))
    felt = (int(rng.integers(0, 60)), int(rng.integers(90, 170)), int(rng.integers(30, 90)))
    for _ in range(int(rng.integers(2, 5))):
        cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.55, 0.9) * h
        r = rng.uniform(w / 10, w / 6)
        draw.ellipse([cx - r, cy - r * 0.4, cx + r, cy + r * 0.4], fill=felt, outline=(120, 70, 30), width=2)


def draw_inside_bus(draw, rng, w, h):
    vx, vy = _vanishing(rng, w, h)
    draw.rectangle([0, 0, w, h], fill=_rand_color(rng, 150, 230))
    glass = _rand_color(rng, 120, 255)
    for side in (0, w):
        for k in range(3):
            t0, t1 = 0.15 + 0.27 * k, 0.35 + 0.27 * k
            x0, x1 = side + (vx - side) * t0, side + (vx - side) * t1
            draw.polygon([(x0, h * 0.2 * (1 - t0) + vy * t0), (x1, h * 0.2 * (1 - t1) + vy * t1),
                          (x1, h * 0.5 * (1 - t1) + vy * t1), (x0, h * 0.5 * (1 - t0) + vy * t0)], fill=glass)
    seat = _rand_color(rng, 20, 200)
    for k in range(4):
        t = 0.15 + 0.2 * k
        for side in (0, w):
            x = side + (vx - side) * t
            draw.rectangle([min(x, side + (vx - side) * (t + 0.12)), h * 0.6 * (1 - t) + vy * t,
                            max(x, side + (vx - side) * (t + 0.12)), h * 0.9 * (1 - t) + vy * t], fill=seat)


SCENES = {
    "library": draw_library, "subway": draw_subway, "cloister": draw_cloister,
    "poolinside": draw_poolinside, "movietheater": draw_movietheater, "bowling": draw_bowling,
    "prisoncell": draw_prisoncell, "elevator": draw_elevator, "church_inside": draw_church_inside,
    "locker_room": draw_locker_room, "buffet": draw_buffet, "florist": draw_florist,
    "casino": draw_casino, "inside_bus": draw_inside_bus,
}


def render_scene(label: str, rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """One scene of class ``label``: structure, clutter, lighting and noise."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    SCENES[label](draw, rng, width, height)
    for _ in range(int(rng.integers(0, 4))):  # clutter: people, plants, signs
        cx, cy = rng.uniform(0, width), rng.uniform(0.3 * height, height)
        r = rng.uniform(width / 30, width / 10)
        draw.rectangle([cx - r / 2, cy - r, cx + r / 2, cy + r], fill=_rand_color(rng))
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2)))
    pixels = np.asarray(image, dtype=np.float32)
    yy, xx = np.mgrid[0:height, 0:width]
    light = 1 + rng.uniform(-0.35, 0.35) * (xx / width - 0.5) + rng.uniform(-0.35, 0.35) * (yy / height - 0.5)
    pixels = pixels * light[..., None] * rng.uniform(0.6, 1.3) + rng.normal(0, rng.uniform(4, 22), pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_synthetic(out: str, classes: int = 6, per_class: int = 60, size: int = 96, seed: int = 0,
                    aspect_jitter: float = 0.0, progress=None) -> list[str]:
    """Write ``classes`` x ``per_class`` JPEGs to ``OUT/Images/<class>/``.

    ``aspect_jitter`` > 0 draws each image's width and height independently in
    ``size * [1 - jitter, 1 + jitter]``, like real photos of varied shapes.
    Returns the class names. Refuses to write into a non-empty ``Images/``.
    """
    if not 1 <= classes <= len(SCENES):
        raise SynthError(f"--classes must be between 1 and {len(SCENES)}, got {classes}")
    if not 1 <= per_class <= MAX_PER_CLASS:
        raise SynthError(f"--per-class must be between 1 and {MAX_PER_CLASS}, got {per_class}")
    if not 8 <= size <= MAX_SIZE:
        raise SynthError(f"--size must be between 8 and {MAX_SIZE} pixels, got {size}")
    if not 0 <= aspect_jitter <= MAX_ASPECT_JITTER:
        raise SynthError(f"--aspect-jitter must be between 0 and {MAX_ASPECT_JITTER}, got {aspect_jitter:g}")
    images = os.path.join(out, "Images")
    if os.path.isdir(images) and os.listdir(images):
        raise SynthError(f"{images} already holds files; choose an empty OUT")
    labels = list(SCENES)[:classes]
    for c, label in enumerate(labels):
        os.makedirs(os.path.join(images, label), exist_ok=True)
        for i in range(per_class):
            rng = np.random.default_rng([seed, c, i])
            w = h = size
            if aspect_jitter:
                w, h = (int(size * rng.uniform(1 - aspect_jitter, 1 + aspect_jitter)) for _ in range(2))
            render_scene(label, rng, w, h).save(os.path.join(images, label, f"{label}_{i:05d}.jpg"), quality=90)
        if progress:
            progress(c + 1, classes)
    return labels
