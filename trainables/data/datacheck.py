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
listed as *empty*. The same file reached through two paths (a symlinked
category or sub-folder, a hard link) is checked and counted once, under the
path that sorts first; the others are listed as *duplicates*, each naming
the path kept (:func:`scenetune.trainables.data.datasets.scan_images`).

Names: a :class:`DataCheck` holds paths as the file system gives them (a
name that is not valid UTF-8 holds its bytes as lone surrogates, as
:func:`os.fsdecode` does, so the path opens); its JSON and text show every
name escaped by :func:`scenetune.trainables.data.datasets.escape_name`
(``caf\\xe9.jpg``), as the manifest CSV does.

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

from scenetune.trainables.data.datasets import DatasetError, escape_name, images_dir, resolve_categories, scan_images
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
    duplicates: list[dict] = field(default_factory=list)  # {path, label, same_as, same_as_label}: counted once
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

    def warnings(self) -> list[str]:
        """One line per file reached twice: both paths, and which one counts."""
        return [f"{escape_name(e['path'])} is the same file as {escape_name(e['same_as'])}: "
                f"counted once, as {escape_name(e['same_as'])}" for e in self.duplicates]

    def to_dict(self) -> dict:
        """The result as plain data, every path as :func:`escape_name` shows it
        (valid text, for JSON)."""
        out = asdict(self)
        out["root"] = escape_name(self.root)
        for key in ("bad", "converted", "skipped", "duplicates"):
            out[key] = [{k: escape_name(v) if k in ("path", "same_as") else v for k, v in e.items()}
                        for e in out[key]]
        out.update(usable=self.usable, bad_count=len(self.bad), bad_fraction=round(self.bad_fraction, 6),
                   warnings=self.warnings())
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def summary(self) -> str:
        """One line: counts of each kind."""
        duplicates = f"{len(self.duplicates)} duplicates (counted once), " if self.duplicates else ""
        return (f"data check: {self.images} images, {len(self.bad)} bad (left out), "
                f"{len(self.converted)} converted, {len(self.skipped)} skipped, {duplicates}"
                f"{len(self.empty_categories)} empty categories ({self.seconds:.1f} s)")

    def format_text(self) -> str:
        """The report ``scenetune data check`` prints (names escaped)."""
        lines = [f"{escape_name(self.root)} ({self.layout} layout, {len(self.categories)} categories)",
                 self.summary()]
        sections = [("bad files (left out of the dataset)",
                     [f"{escape_name(e['path'])}: {e['reason']}" for e in self.bad]),
                    ("converted on decode (kept)",
                     [f"{escape_name(e['path'])}: {'; '.join(e['notes'])}" for e in self.converted]),
                    ("skipped (not read)", [f"{escape_name(e['path'])}: {e['reason']}" for e in self.skipped]),
                    ("the same file reached twice (counted once, as the path sorting first)",
                     [f"{escape_name(e['path'])}: same file as {escape_name(e['same_as'])} (kept)"
                      for e in self.duplicates]),
                    ("empty categories (no usable image)", self.empty_categories)]
        for title, items in sections:
            if items:
                lines += ["", f"{title}: {len(items)}"] + [f"  {item}" for item in items]
        return "\n".join(lines)


def find_skipped(root: str, layout: str, categories: list[str]) -> list[dict]:
    """Hidden files, hidden folders and non-image files inside the category
    folders: what :func:`scenetune.trainables.data.datasets.list_images` leaves out."""
    return scan_images(root, layout, categories).skipped


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
    scan = scan_images(root, layout, names)
    images = scan.images
    if images.empty:
        raise DatasetError(f"data.root: no images under {escape_name(images_dir(root, layout))}")
    result = DataCheck(root, layout, names, images=len(images), skipped=scan.skipped, duplicates=scan.duplicates)
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
                           f"under {escape_name(images_dir(root, layout))}")
    if len(result.empty_categories) == len(names):
        raise DatasetError(f"data.root: no usable images under {escape_name(images_dir(root, layout))} "
                           f"({len(result.bad)} bad files)")
    result.seconds = time.perf_counter() - started
    return result


def enforce(result: DataCheck, max_bad_fraction: float, shown: int = 5) -> None:
    """Refuse a dataset with more than ``max_bad_fraction`` bad files, naming
    the first few in one line."""
    if result.bad_fraction <= max_bad_fraction:
        return
    named = ", ".join(f"{escape_name(e['path'])} ({e['reason']})" for e in result.bad[:shown])
    more = f" and {len(result.bad) - shown} more" if len(result.bad) > shown else ""
    raise DataCheckError(
        f"data.max_bad_fraction: {len(result.bad)} of {result.images} files are bad "
        f"({result.bad_fraction:.1%} > {max_bad_fraction:.1%}): {named}{more}; "
        f"`scenetune data check {escape_name(result.root)} --layout {result.layout}` lists them all")
