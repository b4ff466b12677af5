"""The tasks of benchmarks/anytime.py: four kinds of image classification,
each a dataset written once in the mit67 layout (``ROOT/Images/<class>/``)
and the search a user would run on it.

- ``synth``: scenetune's synthetic scenes (10 classes, 60 images each, 64 px
  read at 32 px): the first epoch sits near chance, so the first rung's
  accuracy ranks nothing.
- ``digits``: scikit-learn's 1,797 handwritten digits (8x8, upscaled to 32 px):
  the task of issue 23, where the first epoch already ranks configurations.
- ``photos``: patches of ten real photographs that scikit-image ships
  (astronaut, camera, coffee, a cat, coins, the moon, a rocket, brick, grass,
  gravel), 180 a class, cut at random places and scales, turned to grey,
  flipped and rotated by quarter turns: which photograph a patch comes from.
- ``mobilenet``: MobileNetV2 (``weights: none``) at 64 px on 60 photo patches
  a class (600 images): a heavy model, where a trial's first epoch (tracing
  the train step) costs about 20 s on a CPU and every later one about 3 s.

The basic CNN tasks search what issue 23's sweep searched (blocks, filters,
dropout, learning rate); 24 trials of at most 9 epochs, reduction factor 3.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

import numpy as np

CNN_SPACE = {"learning_rate": {"loguniform": [1.0e-4, 1.0e-2]}, "cnn_filters": {"choice": [16, 32, 64]},
             "cnn_blocks": {"choice": [2, 3]}, "dropout": {"uniform": [0.0, 0.5]}}
CNN_FIXED = {"backbone": "basic_cnn", "weights": "none", "image_size": 32, "batch_size": 32, "pooling": "avg"}
PHOTOS = ["astronaut", "camera", "coffee", "chelsea", "coins", "moon", "rocket", "brick", "grass", "gravel"]


@dataclass
class Task:
    name: str
    what: str
    write: object  # write(root): the dataset in the mit67 layout
    space: dict
    fixed: dict
    trials: int = 24
    epochs: int = 9
    factor: int = 3
    data: str = ""  # the dataset folder's name under --data-dir (tasks may share one)
    notes: list = field(default_factory=list)


def write_synth(root: str) -> None:
    from scenetune.trainables.data.synth import write_synthetic

    write_synthetic(root, classes=10, per_class=60, size=64, seed=0)


def write_digits(root: str) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target)):
        folder = os.path.join(root, "Images", f"digit{label}")
        os.makedirs(folder, exist_ok=True)
        image = Image.fromarray((pixels / 16.0 * 255).astype(np.uint8)).resize((32, 32), Image.BILINEAR)
        image.convert("RGB").save(os.path.join(folder, f"{i:04d}.png"))


def write_photos(root: str, per_class: int = 180, size: int = 64, seed: int = 0) -> None:
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in PHOTOS:
        photo = Image.fromarray(getattr(skimage.data, name)()).convert("L")
        width, height = photo.size
        folder = os.path.join(root, "Images", name)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            side = int(rng.integers(40, min(width, height, 160)))
            x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
            patch = photo.crop((x, y, x + side, y + side)).resize((size, size), Image.BILINEAR)
            if rng.random() < 0.5:
                patch = patch.transpose(Image.FLIP_LEFT_RIGHT)
            patch.rotate(90 * int(rng.integers(4))).convert("RGB").save(os.path.join(folder, f"{i:04d}.png"))


TASKS = {
    "synth": Task("synth", "synthetic scenes, basic CNN", write_synth, CNN_SPACE, CNN_FIXED, data="synth"),
    "digits": Task("digits", "handwritten digits, basic CNN", write_digits, CNN_SPACE, CNN_FIXED, data="digits"),
    "photos": Task("photos", "photo patches, basic CNN", write_photos, CNN_SPACE, CNN_FIXED, data="photos"),
    "mobilenet": Task(
        "mobilenet", "photo patches, MobileNetV2 at 64 px", functools.partial(write_photos, per_class=60, seed=1),
        {"learning_rate": {"loguniform": [1.0e-4, 1.0e-2]}, "dropout": {"uniform": [0.0, 0.5]},
         "dense_units": {"choice": [0, 64, 256]}},
        {"backbone": "mobilenet_v2", "weights": "none", "trainable_layers": 1000, "image_size": 64,
         "batch_size": 32, "pooling": "avg"}, data="photos-small"),
}


def dataset(task: Task, data_dir: str) -> str:
    """The task's dataset root under ``data_dir``, written on first use."""
    root = os.path.join(data_dir, task.data)
    if not os.path.isdir(os.path.join(root, "Images")):
        task.write(root + ".partial")
        os.replace(root + ".partial", root)
    return root
