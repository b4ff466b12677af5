"""``scenetune data check ROOT``: decode every image of a dataset once, and say
which files are bad and why. No TensorFlow: the sweep's driver runs it
before any trial (:func:`scenetune.search.tuner.prepare`) and writes the result into the
experiment as ``data_check.json``; bad files go into the manifest with split
``bad`` and their reason, so a dataset never shrinks silently.

A file is *bad* when it does not decode (empty, truncated, not an image, too
large to decode safely). A file is *converted* when it decodes but is not a
plain RGB image of the type its name says (CMYK, grayscale, 16-bit, alpha,
EXIF-rotated, a PNG saved as ``.jpg``...): it stays in the dataset, decoded
to correct RGB by :mod:`scenetune.trainables.data.decode`. Hidden files (``.DS_Store``,
macOS ``._*`` resource forks) and files without an image extension are
*skipped*, listed, and never read. Category folders with no usable image are
listed as *empty*.

JPEGs decode with DCT scaling at 1/8 size here, which still reads every byte
of the compressed data (so truncation is found) at a fraction of the cost of
a full decode; files are checked in parallel threads (PIL releases the GIL).
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from scenetune.trainables.data.datasets import (
    IMAGE_EXTENSIONS,
    DatasetError,
    images_dir,
    list_images,
    resolve_categories,
)
from scenetune.trainables.data.decode import UndecodableImage, load_rgb

CHECK_SIDE = 32  # decode JPEGs only this large: enough to prove they decode
EXTENSION_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".gif": "GIF", ".bmp": "BMP", ".webp": "WEBP"}
MODE_NOTES = {"CMYK": "CMYK converted to RGB", "YCbCr": "YCbCr converted to RGB", "L": "grayscale converted to RGB",
              "1": "black-and-white converted to RGB", "P": "palette image converted to RGB",
              "LA": "grayscale converted to RGB"}


class DataCheckError(DatasetError):
    """The dataset has more bad files than the sweep accepts."""


@dataclass
class DataCheck:
    """The result of a check; paths are relative to ``root``, ``/``-separated
    (the manifest's form)."""
    root: str
    layout: str
    categories: list[str]
    images: int = 0  # image files examined
    bad: list[dict] = field(default_factory=list)  # {path, label, reason}
    converted: list[dict] = field(default_factory=list)  # {path, label, notes}
    skipped: list[dict] = field(default_factory=list)  # {path, reason}
    empty_categories: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def usable(self) -> int:
        return self.images - len(self.bad)

    @property
    def bad_fraction(self) -> float:
        return len(self.bad) / self.images if self.images else 0.0

    def bad_reasons(self) -> dict[str, str]:
        """``{relative path: reason}`` of every bad file."""
        return {entry["path"]: entry["reason"] for entry in self.bad}

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(usable=self.usable, bad_count=len(self.bad), bad_fraction=round(self.bad_fraction, 6))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def summary(self) -> str:
        """One line: counts of each kind."""
        return (f"data check: {self.images} images, {len(self.bad)} bad (left out), "
                f"{len(self.converted)} converted, {len(self.skipped)} skipped, "
                f"{len(self.empty_categories)} empty categories ({self.seconds:.1f} s)")

    def format_text(self) -> str:
        lines = [f"{self.root} ({self.layout} layout, {len(self.categories)} categories)", self.summary()]
        sections = [("bad files (left out of the dataset)", [f"{e['path']}: {e['reason']}" for e in self.bad]),
                    ("converted on decode (kept)", [f"{e['path']}: {'; '.join(e['notes'])}" for e in self.converted]),
                    ("skipped (not read)", [f"{e['path']}: {e['reason']}" for e in self.skipped]),
                    ("empty categories (no usable image)", self.empty_categories)]
        for title, items in sections:
            if items:
                lines += ["", f"{title}: {len(items)}"] + [f"  {item}" for item in items]
        return "\n".join(lines)


def _skip_reason(name: str) -> str:
    if name.startswith("._"):
        return "macOS resource fork (._*)"
    if name.startswith("."):
        return "hidden file"
    return "not an image extension"


def find_skipped(root: str, layout: str, categories: list[str]) -> list[dict]:
    """Hidden files, hidden folders and non-image files inside the category
    folders: what :func:`scenetune.trainables.data.datasets.list_images` leaves out."""
    base = images_dir(root, layout)
    prefix = "Images/" if layout == "mit67" else ""
    skipped = []
    for label in categories:
        for dirpath, dirnames, filenames in os.walk(os.path.join(base, label)):
            rel_dir = os.path.relpath(dirpath, base).replace(os.sep, "/")
            for d in sorted(dirnames):
                if d.startswith("."):
                    skipped.append({"path": f"{prefix}{rel_dir}/{d}/", "reason": "hidden folder"})
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
                    skipped.append({"path": f"{prefix}{rel_dir}/{name}", "reason": _skip_reason(name)})
    return skipped


def check_file(path: str) -> tuple[str | None, list[str]]:
    """``(reason it is bad or None, notes on how it was converted)``."""
    try:
        _, info = load_rgb(path, min_side=CHECK_SIDE)
    except UndecodableImage as e:
        return str(e), []
    except MemoryError:
        return "too large to decode in memory", []
    notes = []
    expected = EXTENSION_FORMATS.get(os.path.splitext(path)[1].lower())
    if expected and info.format not in (expected, "MPO"):
        notes.append(f"{info.format} content with a {os.path.splitext(path)[1]} name")
    if info.mode in MODE_NOTES:
        notes.append(MODE_NOTES[info.mode])
    return None, notes + info.notes


def check_dataset(root: str, layout: str = "mit67", categories="all", workers: int | None = None,
                  progress=None) -> DataCheck:
    """Check every image the dataset would use. Raises
    :class:`~scenetune.trainables.data.datasets.DatasetError` when the root is missing, has
    no images, or a requested category is absent or has no usable image.
    ``progress(done, total)`` is called as files are checked."""
    started = time.perf_counter()
    root = os.path.abspath(os.path.expanduser(root))
    names = resolve_categories(root, layout, categories)
    images = list_images(root, layout, names)
    result = DataCheck(root, layout, names, images=len(images), skipped=find_skipped(root, layout, names))
    paths = [os.path.join(root, p) for p in images["path"]]
    workers = workers or min(8, (os.cpu_count() or 1) + 1)
    with ThreadPoolExecutor(workers) as pool:
        for i, (row, (reason, notes)) in enumerate(zip(images.itertuples(), pool.map(check_file, paths)), 1):
            if reason:
                result.bad.append({"path": row.path, "label": row.label, "reason": reason})
            elif notes:
                result.converted.append({"path": row.path, "label": row.label, "notes": notes})
            if progress and (i % 500 == 0 or i == len(paths)):
                progress(i, len(paths))
    usable = images.loc[~images["path"].isin(result.bad_reasons()), "label"].value_counts()
    result.empty_categories = [c for c in names if usable.get(c, 0) == 0]
    requested_empty = [c for c in result.empty_categories if categories not in (None, "all")]
    if requested_empty:
        raise DatasetError(f"data.categories: no usable images in {', '.join(requested_empty)} "
                           f"under {images_dir(root, layout)}")
    if len(result.empty_categories) == len(names):
        raise DatasetError(f"data.root: no usable images under {images_dir(root, layout)} "
                           f"({len(result.bad)} bad files)")
    result.seconds = time.perf_counter() - started
    return result


def enforce(result: DataCheck, max_bad_fraction: float, shown: int = 5) -> None:
    """Refuse a dataset with more than ``max_bad_fraction`` bad files, naming
    the first few in one line."""
    if result.bad_fraction <= max_bad_fraction:
        return
    named = ", ".join(f"{e['path']} ({e['reason']})" for e in result.bad[:shown])
    more = f" and {len(result.bad) - shown} more" if len(result.bad) > shown else ""
    raise DataCheckError(
        f"data.max_bad_fraction: {len(result.bad)} of {result.images} files are bad "
        f"({result.bad_fraction:.1%} > {max_bad_fraction:.1%}): {named}{more}; "
        f"`scenetune data check {result.root} --layout {result.layout}` lists them all")
