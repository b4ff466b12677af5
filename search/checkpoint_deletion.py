"""A trial's old checkpoint is deleted only once the experiment state in
storage no longer names it, so a driver killed at any moment resumes every
trial.

With ``checkpoint.num_to_keep``, Ray Tune 2.60's driver deletes a trial's
older checkpoint the moment it registers a newer one
(``_CheckpointManager.register_checkpoint``), while the experiment state in
storage, which ``--resume`` reads, still names the older one until the next
snapshot is saved and uploaded. A driver killed in between leaves a state
whose trial restores from a checkpoint that is gone: the trial fails on
resume ("Could not recover from checkpoint as it does not exist on storage
anymore") and, its retries failing the same way, ends in error
(tests/cluster/test_faults.py's killed driver, once in a full run).

:func:`delete_checkpoints_after_snapshot` queues those deletions instead,
and deletes them at the driver's first step after a snapshot saved once
they were queued has been uploaded (``TuneController.checkpoint``, which
the driver calls every step and, waiting for the upload, at the sweep's
end; a snapshot whose upload Ray skipped, the last one still running, does
not count). A driver killed before that leaves the queued checkpoints on disk: a
checkpoint more than ``num_to_keep`` for the trials that had one queued.
"""

from __future__ import annotations

import importlib

from scenetune.search.ray_compat import _ray_class, _tune_controller, _wrap, missing_in_ray, upload_running

DELETING = "ray.train._internal.checkpoint_manager"  # the module whose _delete_fs_path the checkpoint manager calls
# one pair of lists for the process, whichever install's wrapper and queue are in place
_queued: list = []  # (filesystem, path) Ray deleted since the last snapshot began
_uploading: list = []  # deleted once the snapshot saved after them is in storage


def delete_checkpoints_after_snapshot() -> bool:
    """Install the deferral once per process; True when it is in place."""
    lost = "a driver killed right after a trial replaced its checkpoint can leave that trial unable to resume"
    module = importlib.import_module(DELETING)
    controller = _tune_controller(lost)
    experiment = _ray_class("ray.tune.execution.experiment_state", "_ExperimentCheckpointManager", lost)
    syncer = _ray_class("ray.train._internal.syncer", "_BackgroundSyncer", lost)
    if controller is None or experiment is None or syncer is None:
        return False
    delete = getattr(module, "_delete_fs_path", None)
    missing = [f"{DELETING}._delete_fs_path"] if delete is None else []
    if not hasattr(syncer, "_should_continue_existing_sync"):  # says whether an upload runs
        missing.append("_BackgroundSyncer._should_continue_existing_sync")
    missing += [f"{owner.__name__}.{name}" for owner, name in ((controller, "_checkpoint_manager"),
                                                              (experiment, "_last_sync_time"))
                if name not in owner.__init__.__code__.co_names]  # set in __init__, read here
    if missing:
        return missing_in_ray(missing, lost)
    if getattr(delete, "_scenetune", False):
        return True

    def after_upload(original):
        def checkpoint(self, force: bool = False, wait: bool = False):
            manager = self._checkpoint_manager
            before, launched = len(_queued), manager._last_sync_time
            original(self, force=force, wait=wait)
            if manager._last_sync_time != launched:  # a snapshot without them was saved and its upload begun
                _uploading.extend(_queued[:before])
                del _queued[:before]
            if _uploading and not upload_running(manager):
                for fs, path in _uploading:
                    try:
                        delete(fs=fs, fs_path=path)
                    except FileNotFoundError:
                        pass  # gone already: what Ray's deletion would have done
                _uploading.clear()
        return checkpoint

    if not _wrap(controller, "checkpoint", after_upload, lost):
        return False

    def queue(fs, fs_path):
        _queued.append((fs, fs_path))

    queue._scenetune = True
    module._delete_fs_path = queue
    return True
