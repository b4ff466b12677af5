"""Two of search/ray_compat.py's patches of the sweep's driver at work, with
Ray Tune's own ``Trial``, storage, ``JsonLoggerCallback`` and experiment
checkpoint manager (``ray-alone``: Ray's own method):

- ``keep_the_drivers_trial_logs``: a paused trial that resumes keeps the
  result.json rows its driver logged (Ray copies storage's older copy over
  them); tests/search/test_hyperband.py shows it in a whole HyperBand band;
- ``fewer_forced_snapshots``: the experiment state is saved past Ray's
  throttle only when a checkpoint the last snapshot names has been deleted
  (benchmarks/driver_scale.py measures what that saves)."""

from __future__ import annotations

import json
import logging
import os
import shutil

import pytest
from ray import tune
from ray.train import Checkpoint, CheckpointConfig
from ray.train._internal.session import _TrainingResult
from ray.train._internal.storage import StorageContext
from ray.tune.execution.experiment_state import _ExperimentCheckpointManager
from ray.tune.experiment import Trial
from ray.tune.logger import JsonLoggerCallback
from ray.tune.logger.logger import LoggerCallback

from scenetune.search import ray_compat
from scenetune.search.ray_compat import fewer_forced_snapshots, keep_the_drivers_trial_logs
from tests.known_curves import checkpointed_lines
from tests.search.test_ray_compat import one_warning_line, ray_s_own

KEEP = 2  # checkpoint.num_to_keep, scenetune's default


@pytest.fixture
def ray_up(ray_local):
    """Ray running in this process (a trial's driver folder lies in its
    session): a CLI sweep earlier in the session shuts down the one of ray_local."""
    if not ray_local.is_initialized():
        ray_local.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    return ray_local


def a_trial(tmp_path, name: str = "trial") -> Trial:
    """A trial of Ray Tune's with its folders, as the controller makes it (the
    driver's folder is named by the second, so each test's sweep has its own name)."""
    tune.register_trainable("checkpointed_lines", checkpointed_lines)
    trial = Trial("checkpointed_lines", config={}, checkpoint_config=CheckpointConfig(num_to_keep=KEEP),
                  storage=StorageContext(storage_path=str(tmp_path), experiment_dir_name=tmp_path.name,
                                         trial_dir_name=name))
    trial.init_local_path()
    return trial


def logged_epochs(trial: Trial) -> list[int]:
    with open(os.path.join(trial.local_path, "result.json")) as f:
        return [json.loads(line)["epoch"] for line in f if line.strip()]


@pytest.mark.parametrize("patched", [False, True], ids=["ray-alone", "scenetune"])
def test_a_resumed_trial_keeps_the_rows_logged_since_the_last_sync(ray_up, monkeypatch, tmp_path, patched):
    monkeypatch.setattr(LoggerCallback, "_restore_from_remote", ray_s_own(LoggerCallback._restore_from_remote))
    if patched:
        assert keep_the_drivers_trial_logs()
    trial = a_trial(tmp_path)
    logger = JsonLoggerCallback()
    logger.log_trial_start(trial)
    logger.log_trial_result(1, trial, {"epoch": 1})
    os.makedirs(trial.storage.trial_fs_path, exist_ok=True)  # the driver syncs its copy to storage
    shutil.copy(os.path.join(trial.local_path, "result.json"), trial.storage.trial_fs_path)
    for epoch in (2, 3):  # logged after that sync; the trial is paused with its epoch-3 checkpoint
        logger.log_trial_result(epoch, trial, {"epoch": epoch})
    folder = tmp_path / "checkpoint_000002"
    folder.mkdir()
    trial.on_checkpoint(_TrainingResult(checkpoint=Checkpoint.from_directory(str(folder)), metrics={"epoch": 3}))

    logger.log_trial_start(trial)  # resumed, on the same driver
    logger.log_trial_result(4, trial, {"epoch": 4})
    logger.log_trial_end(trial)
    assert logged_epochs(trial) == ([1, 2, 3, 4] if patched else [1, 4])


def test_a_restored_sweep_s_new_driver_still_takes_storage_s_rows(ray_up, tmp_path):
    """Where the driver has no copy (a sweep resumed by another driver), the
    rows come from storage, as with Ray alone."""
    assert keep_the_drivers_trial_logs()
    trial = a_trial(tmp_path)
    os.makedirs(trial.storage.trial_fs_path)
    with open(os.path.join(trial.storage.trial_fs_path, "result.json"), "w") as f:
        f.write("".join(json.dumps({"epoch": epoch}) + "\n" for epoch in (1, 2)))
    folder = tmp_path / "checkpoint_000001"
    folder.mkdir()
    trial.on_checkpoint(_TrainingResult(checkpoint=Checkpoint.from_directory(str(folder)), metrics={"epoch": 2}))
    logger = JsonLoggerCallback()
    logger.log_trial_start(trial)
    logger.log_trial_result(3, trial, {"epoch": 3})
    logger.log_trial_end(trial)
    assert logged_epochs(trial) == [1, 2, 3]


def checkpoint(trial: Trial, tmp_path, number: int) -> None:
    """The trial saves checkpoint ``number`` (Ray deletes those past the newest KEEP)."""
    folder = tmp_path / f"{trial.storage.trial_dir_name}_checkpoint_{number:06d}"
    folder.mkdir()
    trial.on_checkpoint(_TrainingResult(checkpoint=Checkpoint.from_directory(str(folder)), metrics={"epoch": number}))


@pytest.mark.parametrize("patched", [False, True], ids=["ray-alone", "scenetune"])
def test_a_snapshot_is_forced_only_when_a_checkpoint_it_names_was_deleted(ray_up, monkeypatch, tmp_path, patched):
    """As the controller does: each trial checkpoint is handed to the manager,
    which is then asked for a snapshot (taken only when forced: Ray's throttle
    is out of the way here). A trial that had no checkpoint at the last
    snapshot forces none with the patch."""
    monkeypatch.setattr(_ExperimentCheckpointManager, "on_trial_checkpoint",
                        ray_s_own(_ExperimentCheckpointManager.on_trial_checkpoint))
    if patched:
        assert fewer_forced_snapshots()
    first, second = a_trial(tmp_path, "first"), a_trial(tmp_path, "second")
    manager = _ExperimentCheckpointManager(storage=first.storage, checkpoint_period=10**9,
                                           sync_every_n_trial_checkpoints=KEEP)
    snapshots = []

    def snapshot(force=False):
        def save():
            os.makedirs(first.storage.experiment_driver_staging_path, exist_ok=True)
            snapshots.append(force)
        manager.sync_up_experiment_state(save_fn=save, force=force, wait=True)

    def forced_after(trial, numbers) -> int:
        before = len(snapshots)
        for number in numbers:
            checkpoint(trial, tmp_path, number)
            manager.on_trial_checkpoint(trial)
            snapshot()
        return len(snapshots) - before

    snapshot(force=True)  # the sweep's start
    assert forced_after(first, [1, 2]) == (0 if patched else 1), "no snapshot named the first trial's checkpoints"
    snapshot(force=True)  # the throttle's snapshot: it names the first trial's checkpoint 2
    assert forced_after(first, [3, 4]) == 1, "checkpoint 2 was deleted: a resume needs the state to name 4"
    assert not os.path.exists(tmp_path / "first_checkpoint_000002")
    assert forced_after(second, [1, 2, 3]) == (0 if patched else 1)
    assert forced_after(first, [5]) == 0


def test_a_checkpoint_manager_without_the_counts_it_reads_leaves_the_patch_out(monkeypatch, caplog):
    """The counts the patch reads are set per instance, in ``__init__``: a Ray
    whose ``__init__`` sets none of them gets Ray's own method and one warning line."""
    monkeypatch.setattr(_ExperimentCheckpointManager, "on_trial_checkpoint",
                        ray_s_own(_ExperimentCheckpointManager.on_trial_checkpoint))
    monkeypatch.setattr(_ExperimentCheckpointManager, "__init__", lambda self, **kwargs: None)
    with caplog.at_level(logging.WARNING, logger=ray_compat.__name__):
        assert fewer_forced_snapshots() is False
    one_warning_line(caplog, "_ExperimentCheckpointManager._should_force_sync_up")
    assert not getattr(_ExperimentCheckpointManager.on_trial_checkpoint, "_scenetune", False)
