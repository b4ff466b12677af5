"""The experiment folder uploaded to storage by what changed (issue 24: the
10,000-trial driver, benchmarks/driver_scale.py).

Ray Tune 2.60's driver writes the experiment state and every trial's logs
(``result.json``, ``progress.csv``, ``params.json``...) into a staging folder
and, after each experiment-state snapshot, copies the whole folder to the
experiment's storage (``_FilesystemSyncer._sync_up_command``:
``pyarrow.fs.copy_files``). At 10,000 trials that is 50,000 files, 485 MB, a
snapshot, nearly all of them logs of trials that ended long before, and
pyarrow's copy threads raise the driver's resident memory by 50-100 MB while
it runs. :func:`upload_changed_files` makes such an upload copy only the
files whose size or modification time changed since the same syncer last
copied them; the rest are in storage already, as copied then. Where most
files changed (a small or young sweep), the upload stays Ray's copy of the
whole folder, at once with Arrow's threads: the experiment state and the
trials' logs land in storage as close together as before. What Ray would do
is also kept for an upload with exclusion patterns and for one file.

What differs from Ray: a file deleted from storage by hand while the sweep
runs is not copied again until it changes (Ray's copy would bring it back at
the next snapshot); a resumed driver (a new syncer) copies everything once.
"""

from __future__ import annotations

import importlib
import os
import posixpath
import sys
import uuid
import weakref

from scenetune.search.ray_compat import _ray_class, _wrap, missing_in_ray

# What each syncer copied, kept here and named by a key in its upload command: Ray deep-copies and pickles a
# syncer with every trial's storage context (its last command included), while its upload thread adds to these.
_RECORDS: dict[str, dict[str, dict[str, int]]] = {}  # key -> folder -> file name -> its stamp when copied
_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # syncer -> its key


def upload_changed(local_path: str, fs, fs_path: str, record: str, whole_copy=None) -> None:
    """Copy to ``fs_path`` on ``fs`` each file under ``local_path`` whose
    (size, modification time) is not what ``record`` says was copied, and
    record it (its state before the copy: a file that changes meanwhile is
    copied again next time). Where most of the files changed (a young or
    small sweep), ``whole_copy`` (Ray's own upload) copies the folder at
    once, as fast as before, and every file is recorded."""
    import pyarrow.fs as pafs

    folders, changed, files = _RECORDS.setdefault(record, {}), [], 0
    for root, _, names in os.walk(local_path):
        folder = os.path.relpath(root, local_path).replace(os.sep, "/")
        copied = folders.get(folder, {})
        for name in names:
            try:
                stat = os.stat(os.path.join(root, name))
            except FileNotFoundError:  # deleted since the walk listed it
                continue
            files += 1
            stamp = stat.st_size << 64 | stat.st_mtime_ns  # both below 2**64: one exact int
            if copied.get(name) != stamp:
                changed.append((folder, name, stamp))
    if whole_copy is not None and 2 * len(changed) > files:
        whole_copy(local_path=local_path, fs=fs, fs_path=fs_path)
        copy_one = None
    else:
        local = pafs.LocalFileSystem()

        def copy_one(source: str, target: str) -> None:  # Arrow's copy, as Ray's (Arrow's buffers)
            pafs.copy_files(source, target, source_filesystem=local, destination_filesystem=fs, use_threads=False)
    for folder, name, stamp in changed:
        copied = folders.get(folder)
        if copy_one is not None:
            target_folder = fs_path if folder == "." else posixpath.join(fs_path, folder)
            if copied is None:
                fs.create_dir(target_folder, recursive=True)
            try:
                copy_one(os.path.join(local_path, folder, name), posixpath.join(target_folder, name))
            except FileNotFoundError:
                continue
        if copied is None:
            copied = folders[folder] = {}
        copied[sys.intern(name)] = stamp  # the same few names in every trial's folder


def upload_changed_files() -> bool:
    """Install it once per process; True when it is in place."""
    whole = "every experiment-state upload copies the whole experiment folder again (485 MB at 10,000 trials)"
    syncer = _ray_class("ray.train._internal.storage", "_FilesystemSyncer", whole)
    if syncer is None:
        return False
    missing = [f"_FilesystemSyncer.{name}" for name, there in (
        ("_sync_up_command", "_sync_up_command" in vars(syncer)),  # its own, not its base class's
        ("storage_filesystem", "storage_filesystem" in getattr(getattr(syncer.__init__, "__code__", None),
                                                             "co_names", ()))) if not there]
    if missing:
        return missing_in_ray(missing, whole)

    whole_copy = getattr(importlib.import_module("ray.train._internal.storage"), "_upload_to_fs_path", None)
    if whole_copy is None:
        return missing_in_ray(["ray.train._internal.storage._upload_to_fs_path"], whole)

    def changed_only(original):
        def _sync_up_command(self, local_path, uri, exclude=None):
            if exclude or not os.path.isdir(local_path):
                return original(self, local_path, uri, exclude=exclude)
            # One record per syncer, folder and destination; Ray runs one upload of a syncer at a time.
            record = f"{_KEYS.setdefault(self, uuid.uuid4().hex)}|{local_path}|{uri}"
            return upload_changed, {"local_path": str(local_path), "fs": self.storage_filesystem,
                                    "fs_path": str(uri), "record": record, "whole_copy": whole_copy}
        return _sync_up_command

    return _wrap(syncer, "_sync_up_command", changed_only, whole)
