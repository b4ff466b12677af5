"""A trial's old checkpoint is deleted only once the experiment state in
storage no longer names it (search/checkpoint_deletion.py), under real Ray
Tune 2.60 on the embedded Ray: at every checkpoint of a sweep that keeps one
checkpoint a trial, each checkpoint that the state in storage names (what
``--resume`` restores from) is still on disk."""

from __future__ import annotations

import glob
import json
import logging
import os
import tempfile
import time

import pytest
from ray import tune
from ray.train._internal import checkpoint_manager
from ray.tune.execution.tune_controller import TuneController
from ray.tune.trainable.metadata import _TrainingRunMetadata

from scenetune.search import ray_compat
from scenetune.search.checkpoint_deletion import delete_checkpoints_after_snapshot
from tests.search.test_ray_compat import installed_once, one_warning_line, ray_s_own

EPOCHS, TRIALS, EPOCH_S = 5, 2, 0.3


@pytest.fixture
def ray_alone(monkeypatch):
    """Ray's own deletion and ``TuneController.checkpoint`` for this test (a sweep earlier in the session patched them)."""
    delete = checkpoint_manager._delete_fs_path
    if getattr(delete, "_scenetune", False):
        from ray.train._internal.storage import _delete_fs_path as delete
    monkeypatch.setattr(checkpoint_manager, "_delete_fs_path", delete)
    monkeypatch.setattr(TuneController, "checkpoint", ray_s_own(TuneController.checkpoint))


def named_in_storage(experiment: str) -> list[str]:
    """The checkpoints that the newest experiment state in storage names, for every trial."""
    states = sorted(glob.glob(os.path.join(experiment, "experiment_state-*.json")))
    if not states:
        return []
    with open(states[-1]) as f:
        trial_data = json.load(f)["trial_data"]
    paths = []
    for _, metadata_json in trial_data:
        manager = _TrainingRunMetadata.from_json_state(metadata_json).checkpoint_manager
        kept = [*manager._checkpoint_results, manager._latest_checkpoint_result] if manager else []
        paths += [result.checkpoint.path for result in kept if result is not None]
    return paths


class DeletionCheck:
    """Ray's deletion of a checkpoint, checked first: is it named by the state in storage?"""

    def __init__(self, experiment: str, delete):
        self.experiment, self.delete, self.deleted, self.named = experiment, delete, [], []

    def __call__(self, fs, fs_path):
        try:
            named = named_in_storage(self.experiment)
        except json.JSONDecodeError:  # an upload writing the file: nothing to say
            named = []
        self.deleted.append(fs_path)
        self.named += [fs_path] if fs_path in named else []
        self.delete(fs=fs, fs_path=fs_path)


def checkpoint_every_epoch(config):
    for epoch in range(EPOCHS):
        time.sleep(EPOCH_S)  # an epoch a driver step, with the snapshot of the last one uploaded
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "epoch"), "w") as f:
                f.write(str(epoch))
            tune.report({"score": config["i"] + epoch}, checkpoint=tune.Checkpoint.from_directory(folder))


def sweep(tmp_path) -> None:
    tune.Tuner(checkpoint_every_epoch, param_space={"i": tune.grid_search(list(range(TRIALS)))},
               tune_config=tune.TuneConfig(max_concurrent_trials=1),
               run_config=tune.RunConfig(storage_path=str(tmp_path), name="deletion", verbose=0,
                                         checkpoint_config=tune.CheckpointConfig(num_to_keep=1))).fit()


@pytest.mark.slow
@pytest.mark.parametrize("patched", [False, True], ids=["ray-alone", "scenetune"])
def test_no_checkpoint_is_deleted_while_the_state_in_storage_names_it(ray_local, ray_alone, monkeypatch, tmp_path,
                                                                     patched):
    monkeypatch.setenv("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    check = DeletionCheck(str(tmp_path / "deletion"), checkpoint_manager._delete_fs_path)
    monkeypatch.setattr(checkpoint_manager, "_delete_fs_path", check)  # what the patch, when applied, defers
    if patched:
        assert delete_checkpoints_after_snapshot()
    sweep(tmp_path)
    assert len(check.deleted) == TRIALS * (EPOCHS - 1)
    kept = sorted(os.path.relpath(p, tmp_path) for p in glob.glob(str(tmp_path / "deletion" / "*" / "checkpoint_*")))
    assert len(kept) == TRIALS, kept  # num_to_keep holds once the sweep has ended
    if patched:
        assert check.named == []
    else:  # Ray alone deletes a checkpoint that --resume would restore from
        assert check.named


def test_it_is_installed_once(ray_alone):
    installed_once(delete_checkpoints_after_snapshot, TuneController, "checkpoint")
    queue = checkpoint_manager._delete_fs_path  # and the queue in place of Ray's deletion, once
    assert queue._scenetune and delete_checkpoints_after_snapshot() and checkpoint_manager._delete_fs_path is queue


@pytest.mark.parametrize("missing", ["_delete_fs_path", "TuneController.checkpoint", "_last_sync_time"])
def test_a_part_this_ray_lacks_leaves_it_out_with_one_warning_line(ray_alone, monkeypatch, caplog, missing):
    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

    if missing == "_delete_fs_path":
        monkeypatch.delattr(checkpoint_manager, "_delete_fs_path")
    elif missing == "TuneController.checkpoint":
        monkeypatch.delattr(TuneController, "checkpoint")
    else:  # an attribute _ExperimentCheckpointManager.__init__ sets
        monkeypatch.setattr(_ExperimentCheckpointManager, "__init__", lambda self: None)
    before = (getattr(checkpoint_manager, "_delete_fs_path", None), getattr(TuneController, "checkpoint", None))
    with caplog.at_level(logging.WARNING, logger=ray_compat.__name__):
        assert delete_checkpoints_after_snapshot() is False
    one_warning_line(caplog, missing)
    assert (getattr(checkpoint_manager, "_delete_fs_path", None), getattr(TuneController, "checkpoint", None)) == before
