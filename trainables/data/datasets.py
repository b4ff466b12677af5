"""Datasets on disk and the experiment's split manifest. No TensorFlow here:
the driver computes the split once per experiment with this module.

Layouts:
- ``mit67``: ``ROOT/Images/<category>/<file>.jpg``, with the official lists
  ``ROOT/TrainImages.txt`` and ``ROOT/TestImages.txt`` (``category/file.jpg``
  a line) when present;
- ``folder``: ``ROOT/<class>/<file>``, one sub-folder per class.

The manifest is a table with one row per image: ``path`` (relative to the
dataset root, ``/``-separated), ``label`` (the category name) and ``split``
(``train``, ``val``, ``test``; ``unlisted`` for mit67 images that neither
official list names, kept visible rather than silently dropped; ``bad`` for
files the data check could not decode, with the ``reason`` column saying why).
"""

from __future__ import annotations

import csv
import io
import os
import sys
from dataclasses import dataclass
from importlib import resources

import pandas as pd
from sklearn.model_selection import train_test_split

from scenetune.core.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
SPLITS = ("train", "val", "test")


class DatasetError(UserError, ValueError):
    """The dataset on disk does not match what the spec asks for."""


@dataclass(frozen=True)
class SplitSpec:
    train: float = 0.6
    val: float = 0.2
    test: float = 0.2
    seed: int = 42
    official: bool = False  # mit67 only: test from TestImages.txt, val carved from TrainImages.txt


def seed25_categories() -> list[str]:
    """The 25 MIT Indoor 67 categories of the seed report (its Table 3)."""
    return [row["category"] for row in seed25_counts()]


def seed25_counts() -> list[dict]:
    text = resources.files(__package__).joinpath("seed25_counts.csv").read_text()
    return [dict(r, images=int(r["images"]), seed_test_support=int(r["seed_test_support"]))
            for r in csv.DictReader(io.StringIO(text))]


def images_dir(root: str, layout: str) -> str:
    return os.path.join(root, "Images") if layout == "mit67" else root


def resolve_categories(root: str, layout: str, categories) -> list[str]:
    """The category names to use, each checked to exist under the root."""
    base = images_dir(root, layout)
    if not os.path.isdir(root):
        raise DatasetError(f"data.root: {root} does not exist")
    if not os.path.isdir(base):
        raise DatasetError(f"data.root: {root} has no Images/ folder (the mit67 layout)")
    present = sorted(d for d in os.listdir(base)
                     if os.path.isdir(os.path.join(base, d)) and not d.startswith("."))
    if categories in (None, "all"):
        wanted = present
    elif categories == "seed25":
        wanted = seed25_categories()
    elif isinstance(categories, (list, tuple)):
        wanted = list(categories)
    else:
        raise DatasetError(f"data.categories: expected 'all', 'seed25' or a list, got {categories!r}")
    missing = [c for c in wanted if c not in present]
    if missing:
        raise DatasetError(f"data.categories: not found under {base}: {', '.join(missing)}")
    if not wanted:
        raise DatasetError(f"data.root: no category folders under {base}")
    return sorted(wanted)


def list_images(root: str, layout: str = "mit67", categories="all") -> pd.DataFrame:
    """One row per image file: ``path`` relative to ``root`` and ``label``."""
    base = images_dir(root, layout)
    prefix = "Images/" if layout == "mit67" else ""
    rows = []
    for label in resolve_categories(root, layout, categories):
        folder = os.path.join(base, label)
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel_dir = os.path.relpath(dirpath, base).replace(os.sep, "/")
            for name in sorted(filenames):
                if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                rows.append((f"{prefix}{rel_dir}/{name}", label))
    frame = pd.DataFrame(rows, columns=["path", "label"])
    if frame.empty:
        raise DatasetError(f"data.root: no images under {base}")
    return frame


def stratified_split(images: pd.DataFrame, split: SplitSpec) -> pd.DataFrame:
    """Assign ``train``/``val``/``test`` per class, in the spec's fractions."""
    total = split.train + split.val + split.test
    if abs(total - 1.0) > 1e-6:
        raise DatasetError(f"data.split: train + val + test must be 1, got {total:g}")
    frame = images.sort_values("path", ignore_index=True)
    labels = frame["label"]
    rest, test = train_test_split(frame.index, test_size=split.test, stratify=labels,
                                  random_state=split.seed) if split.test else (frame.index, [])
    val_share = split.val / (split.train + split.val)
    train, val = train_test_split(rest, test_size=val_share, stratify=labels[rest],
                                  random_state=split.seed) if split.val else (rest, [])
    out = frame.copy()
    out["split"] = "train"
    out.loc[list(val), "split"] = "val"
    out.loc[list(test), "split"] = "test"
    return out


def official_split(root: str, images: pd.DataFrame, split: SplitSpec) -> pd.DataFrame:
    """mit67's published lists: test = TestImages.txt; val carved (stratified)
    from TrainImages.txt; images in neither list are marked ``unlisted``."""
    lists = {}
    for name in ("TrainImages.txt", "TestImages.txt"):
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            raise DatasetError(f"data.split.official: {path} is missing")
        with open(path, encoding="utf-8") as f:
            lists[name] = {f"Images/{line.strip()}" for line in f if line.strip()}
    frame = images.sort_values("path", ignore_index=True).copy()
    frame["split"] = "unlisted"
    frame.loc[frame["path"].isin(lists["TestImages.txt"]), "split"] = "test"
    in_train = frame.index[frame["path"].isin(lists["TrainImages.txt"])]
    frame.loc[in_train, "split"] = "train"
    if split.val and len(in_train):
        _, val = train_test_split(in_train, test_size=split.val, stratify=frame.loc[in_train, "label"],
                                  random_state=split.seed)
        frame.loc[list(val), "split"] = "val"
    return frame


def build_manifest(root: str, layout: str = "mit67", categories="all",
                   split: SplitSpec | None = None, bad: dict[str, str] | None = None) -> pd.DataFrame:
    """The experiment's manifest: every image with its label and split.

    ``bad`` (``{path: reason}``, from the data check): those files are split
    over no set; they follow the others with split ``bad`` and a ``reason``.
    """
    split = split or SplitSpec()
    images = list_images(root, layout, categories)
    if bad:
        flagged = images["path"].isin(bad)
        bad_rows = images[flagged].assign(split="bad", reason=lambda f: f["path"].map(bad))
        images = images[~flagged].reset_index(drop=True)
    if split.official:
        if layout != "mit67":
            raise DatasetError("data.split.official: only the mit67 layout has official lists")
        manifest = official_split(root, images, split)
    else:
        manifest = stratified_split(images, split)
    if bad:
        manifest = pd.concat([manifest.assign(reason=""), bad_rows], ignore_index=True)
    return manifest


def manifest_to_csv(manifest: pd.DataFrame) -> str:
    columns = ["path", "label", "split"] + (["reason"] if "reason" in manifest else [])
    return manifest[columns].to_csv(index=False)


def manifest_from_csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def split_rows(manifest: pd.DataFrame, root: str, split: str, classes: list[str],
               exclude: dict[str, str] | None = None) -> tuple[list[str], list[int], pd.DataFrame]:
    """``(absolute paths, label indices, manifest rows)`` of one split of a
    manifest, less the paths in ``exclude`` (``{path: reason}``: files that
    failed to decode into the cache), each of which is logged."""
    rows = manifest[manifest["split"] == split].reset_index(drop=True)
    paths = [os.path.join(root, p) for p in rows["path"]]
    if exclude:
        keep = [p not in exclude for p in paths]
        for path in (p for p in paths if p in exclude):
            print(f"warning: {split} image {path} left out: {exclude[path]}", file=sys.stderr, flush=True)
        rows = rows[keep].reset_index(drop=True)
        paths = [p for p, k in zip(paths, keep) if k]
    index = {name: i for i, name in enumerate(classes)}
    return paths, [index[label] for label in rows["label"]], rows
