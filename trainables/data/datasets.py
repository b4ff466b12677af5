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

File names that are not valid UTF-8 (bytes such as ``caf\xe9.jpg`` written
by a Latin-1 system) are kept: in memory a ``path`` holds the name as
:func:`os.fsdecode` gives it (``'caf\udce9.jpg'``, a lone surrogate per
undecodable byte), which opens the file; wherever a name is written as text
(the manifest CSV, ``data_check.json``, terminal output) it is shown by
:func:`escape_name` (``caf\\xe9.jpg``, i.e. a backslash, ``x`` and the byte in
hex), which :func:`manifest_from_csv` reverses. The ``path`` column is
therefore of object dtype (pandas' Arrow strings cannot hold such names). A
category folder's label is its escaped name: a class name, always valid text.

The same file reached through two paths (a category folder that is a
symlink to another, a symlinked sub-folder, a hard link) is listed once,
under the path that sorts first (plain code point order of the manifest
path); :func:`scan_images` names the others in ``duplicates``, which the
data check reports. Symlinked folders are followed, except one that links
back to a folder containing it (a loop: listed as skipped).
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from dataclasses import dataclass, field
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


_NEEDS_ESCAPE = re.compile(r"[\\\x00-\x1f\x7f\ud800-\udfff]")
_ESCAPED = re.compile(r"\\(\\|x[0-9a-fA-F]{2}|u[dD][89a-fA-F][0-9a-fA-F]{2})")


def _escape_char(match: re.Match) -> str:
    char = match.group()
    code = ord(char)
    if char == "\\":
        return "\\\\"
    if code < 0x80:  # a control character
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as os.fsdecode's surrogateescape holds it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"  # any other lone surrogate (a Windows name that is not valid UTF-16)


def _unescape_match(match: re.Match) -> str:
    code = match.group(1)
    if code == "\\":
        return "\\"
    value = int(code[1:], 16)
    if code[0] == "x":
        return chr(value) if value < 0x80 else chr(0xDC00 + value)
    return chr(value)


def escape_name(text: str) -> str:
    """A file name or path as valid, printable text, reversibly: each byte
    that is not valid UTF-8 (``os.fsdecode`` holds byte ``0xe9`` as
    ``'\\udce9'``) and each control character becomes ``\\xHH``, any other lone
    surrogate ``\\udHHH``, and a backslash is doubled. Any other text, ``café``
    included, is unchanged. :func:`unescape_name` reverses it."""
    return _NEEDS_ESCAPE.sub(_escape_char, text)


def unescape_name(text: str) -> str:
    """The name :func:`escape_name` escaped. A backslash not starting one of
    its escapes is kept as it is (a manifest written before escaping)."""
    return _ESCAPED.sub(_unescape_match, text) if "\\" in text else text


def seed25_categories() -> list[str]:
    """The 25 MIT Indoor 67 categories of the seed report (its Table 3)."""
    return [row["category"] for row in seed25_counts()]


def seed25_counts() -> list[dict]:
    text = resources.files(__package__).joinpath("seed25_counts.csv").read_text()
    return [dict(r, images=int(r["images"]), seed_test_support=int(r["seed_test_support"]))
            for r in csv.DictReader(io.StringIO(text))]


def images_dir(root: str, layout: str) -> str:
    return os.path.join(root, "Images") if layout == "mit67" else root


def category_folders(root: str, layout: str) -> dict[str, str]:
    """``{label: folder name}`` of the category folders under the root (hidden
    ones are none); a label is the folder's :func:`escape_name`."""
    base = images_dir(root, layout)
    if not os.path.isdir(root):
        raise DatasetError(f"data.root: {escape_name(root)} does not exist")
    if not os.path.isdir(base):
        raise DatasetError(f"data.root: {escape_name(root)} has no Images/ folder (the mit67 layout)")
    return {escape_name(d): d for d in sorted(os.listdir(base))
            if os.path.isdir(os.path.join(base, d)) and not d.startswith(".")}


def resolve_categories(root: str, layout: str, categories) -> list[str]:
    """The category names to use, each checked to exist under the root."""
    base = escape_name(images_dir(root, layout))
    present = sorted(category_folders(root, layout))
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


@dataclass
class ImageScan:
    """What :func:`scan_images` found under the category folders."""
    images: pd.DataFrame  # path (object dtype), label: one row per distinct image file
    duplicates: list[dict] = field(default_factory=list)  # {path, label, same_as, same_as_label}
    skipped: list[dict] = field(default_factory=list)  # {path, reason}: never read


def skip_reason(name: str) -> str | None:
    """Why a file name is not an image of the dataset, or None when it is one."""
    if name.startswith("._"):
        return "macOS resource fork (._*)"
    if name.startswith("."):
        return "hidden file"
    if not name.lower().endswith(IMAGE_EXTENSIONS):
        return "not an image extension"
    return None


def _identity(path: str, entry: os.DirEntry | None = None) -> tuple:
    """What makes two paths the same file or folder: device and inode (after
    symlinks), else the real path (a broken link, a file system without inodes)."""
    try:
        st = entry.stat() if entry is not None else os.stat(path)
        if st.st_ino:
            return ("inode", st.st_dev, st.st_ino)
    except OSError:
        pass
    return ("realpath", os.path.realpath(path))


def _walk_category(base: str, folder: str, label: str, prefix: str, rows: list, skipped: list) -> None:
    """Every file under ``base/folder``, as ``(path, label, identity)`` in ``rows``
    (os.walk's order: a folder's files sorted, then its sub-folders sorted),
    following symlinked folders but none that contains the link (a loop)."""
    stop = {_identity(base), _identity(os.path.dirname(base.rstrip(os.sep)) or base)}

    def visit(path: str, rel: str, ancestors: frozenset) -> None:
        try:
            with os.scandir(path) as found:
                entries = sorted(found, key=lambda e: e.name)
        except OSError as e:
            skipped.append({"path": f"{rel}/", "reason": f"unreadable folder: {e.strerror or e}"})
            return
        folders = []
        for entry in entries:
            try:
                is_folder = entry.is_dir()  # follows a symlink
            except OSError:
                is_folder = False
            if is_folder:
                folders.append(entry)
                continue
            reason = skip_reason(entry.name)
            if reason:
                skipped.append({"path": f"{rel}/{entry.name}", "reason": reason})
            else:
                rows.append((f"{rel}/{entry.name}", label, _identity(entry.path, entry)))
        for entry in folders:
            if entry.name.startswith("."):
                skipped.append({"path": f"{rel}/{entry.name}/", "reason": "hidden folder"})
                continue
            identity = _identity(entry.path)
            if identity in ancestors:
                skipped.append({"path": f"{rel}/{entry.name}/",
                                "reason": "link to a folder that contains it (a loop: not followed)"})
                continue
            visit(entry.path, f"{rel}/{entry.name}", ancestors | {identity})

    top = os.path.join(base, folder)
    visit(top, f"{prefix}{folder}", frozenset(stop | {_identity(top)}))


def scan_images(root: str, layout: str = "mit67", categories="all") -> ImageScan:
    """The dataset's image files (``path`` relative to ``root``, ``label``),
    each distinct file once: one reached by two paths (symlinked folders, hard
    links) is kept under the path that sorts first, the others listed in
    ``duplicates``; hidden files and folders and other extensions in ``skipped``.
    An empty ``images`` is no error here (:func:`list_images` raises)."""
    base = images_dir(root, layout)
    prefix = "Images/" if layout == "mit67" else ""
    folders = category_folders(root, layout)
    rows: list[tuple[str, str, tuple]] = []
    skipped: list[dict] = []
    for label in resolve_categories(root, layout, categories):
        _walk_category(base, folders[label], label, prefix, rows, skipped)
    first: dict[tuple, tuple[str, str]] = {}
    for path, label, identity in sorted(rows, key=lambda r: r[0]):
        first.setdefault(identity, (path, label))
    duplicates = [{"path": path, "label": label, "same_as": first[identity][0], "same_as_label": first[identity][1]}
                  for path, label, identity in sorted(rows, key=lambda r: r[0]) if first[identity][0] != path]
    kept = [(path, label) for path, label, identity in rows if first[identity][0] == path]
    images = pd.DataFrame({"path": pd.Series([p for p, _ in kept], dtype=object),
                           "label": pd.Series([label for _, label in kept], dtype=object)})
    images["label"] = images["label"].astype(str)  # labels are escaped names: valid text
    return ImageScan(images, duplicates, skipped)


def list_images(root: str, layout: str = "mit67", categories="all") -> pd.DataFrame:
    """One row per image file: ``path`` relative to ``root`` and ``label``
    (each distinct file once: see :func:`scan_images`)."""
    frame = scan_images(root, layout, categories).images
    if frame.empty:
        raise DatasetError(f"data.root: no images under {escape_name(images_dir(root, layout))}")
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
            raise DatasetError(f"data.split.official: {escape_name(path)} is missing")
        with open(path, encoding="utf-8", errors="surrogateescape") as f:  # names as os.listdir gives them
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
        bad_rows = images[flagged].assign(split="bad", reason=lambda f: [bad[p] for p in f["path"]])
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
    """The manifest as CSV text (valid UTF-8): each ``path`` in its
    :func:`escape_name` form, which :func:`manifest_from_csv` reverses."""
    columns = ["path", "label", "split"] + (["reason"] if "reason" in manifest else [])
    out = manifest[columns].copy()
    out["path"] = [escape_name(p) for p in out["path"]]
    return out.to_csv(index=False)


def manifest_from_csv(text: str) -> pd.DataFrame:
    """A manifest from :func:`manifest_to_csv`'s text: every ``path`` the name
    on disk again (object dtype: it may hold undecodable bytes as surrogates)."""
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    if "path" in frame:
        frame["path"] = pd.Series([unescape_name(p) for p in frame["path"]], index=frame.index, dtype=object)
    return frame


def split_rows(manifest: pd.DataFrame, root: str, split: str, classes: list[str],
               exclude: dict[str, str] | None = None) -> tuple[list[str], list[int], pd.DataFrame]:
    """``(absolute paths, label indices, manifest rows)`` of one split of a
    manifest, less the paths in ``exclude`` (``{path: reason}``: files that
    failed to decode into the cache), each of which is logged. The absolute
    paths open the files; the rows' ``path`` is in its :func:`escape_name`
    form (valid text, for prediction files and reports)."""
    rows = manifest[manifest["split"] == split].reset_index(drop=True)
    paths = [os.path.join(root, p) for p in rows["path"]]
    if exclude:
        keep = [p not in exclude for p in paths]
        for path in (p for p in paths if p in exclude):
            print(f"warning: {split} image {escape_name(path)} left out: {exclude[path]}", file=sys.stderr, flush=True)
        rows = rows[keep].reset_index(drop=True)
        paths = [p for p, k in zip(paths, keep) if k]
    index = {name: i for i, name in enumerate(classes)}
    labels = [index[label] for label in rows["label"]]
    if len(rows):
        rows = rows.assign(path=[escape_name(p) for p in rows["path"]])
    return paths, labels, rows
