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
copied them; the rest are in storage already, as copied then. What Ray
would do is kept for an upload with exclusion patterns and for one file.

What differs from Ray: a file deleted from storage by hand while the sweep
runs is not copied again until it changes (Ray's copy would bring it back at
the next snapshot); a resumed driver (a new syncer) copies everything once.
"""

from __future__ import annotations

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


def upload_changed(local_path: str, fs, fs_path: str, record: str) -> None:
    """Copy to ``fs_path`` on ``fs`` each file under ``local_path`` whose
    (size, modification time) is not what ``record`` says was copied; record
    each once copied (a file that changes while it is copied is copied again
    next time: its record is its state before the copy)."""
    import pyarrow.fs as pafs

    folders, local = _RECORDS.setdefault(record, {}), pafs.LocalFileSystem()
    for root, _, names in os.walk(local_path):
        folder = os.path.relpath(root, local_path).replace(os.sep, "/")
        target_folder = fs_path if folder == "." else posixpath.join(fs_path, folder)
        copied = folders.get(folder)
        for name in sorted(names):
            try:
                stat = os.stat(os.path.join(root, name))
            except FileNotFoundError:  # deleted since the walk listed it
                continue
            stamp = stat.st_size << 64 | stat.st_mtime_ns  # both below 2**64: one exact int
            if copied is not None and copied.get(name) == stamp:
                continue
            if copied is None:
                fs.create_dir(target_folder, recursive=True)
                copied = folders[folder] = {}
            try:  # Arrow's copy, as Ray's (its buffers from Arrow's pool, not the upload thread's malloc arena)
                pafs.copy_files(os.path.join(root, name), posixpath.join(target_folder, name),
                                source_filesystem=local, destination_filesystem=fs, use_threads=False)
            except FileNotFoundError:
                continue
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

    def changed_only(original):
        def _sync_up_command(self, local_path, uri, exclude=None):
            if exclude or not os.path.isdir(local_path):
                return original(self, local_path, uri, exclude=exclude)
            # One record per syncer, folder and destination; Ray runs one upload of a syncer at a time.
            record = f"{_KEYS.setdefault(self, uuid.uuid4().hex)}|{local_path}|{uri}"
            return upload_changed, {"local_path": str(local_path), "fs": self.storage_filesystem,
                                    "fs_path": str(uri), "record": record}
        return _sync_up_command

    return _wrap(syncer, "_sync_up_command", changed_only, whole)
