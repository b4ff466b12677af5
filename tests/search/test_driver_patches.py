"""Two of search/ray_compat.py's patches of the sweep's driver at work, with
Ray Tune's own ``Trial``, storage, ``JsonLoggerCallback`` and experiment
checkpoint manager (``ray-alone``: Ray's own method):

- ``keep_the_drivers_trial_logs``: a paused trial that resumes keeps the
  result.json rows its driver logged (Ray copies storage's older copy over
  them); tests/search/test_hyperband.py shows it in a whole HyperBand band;
- ``paced_forced_snapshots``: a snapshot Ray forces waits until its pace
  allows, and is then taken (benchmarks/driver_scale.py measures what that
  saves)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time

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
from scenetune.search.ray_compat import SNAPSHOT_PACE, keep_the_drivers_trial_logs, paced_forced_snapshots
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


SAVE_S = 0.05  # how long the test's snapshot takes to save


def snapshot_manager(monkeypatch, tmp_path, patched: bool):
    """A trial and Ray's own experiment checkpoint manager of its storage, with
    Ray's throttle out of the way (a period of 10**9 s: only forced snapshots
    are taken); paced by scenetune when ``patched``."""
    monkeypatch.setattr(_ExperimentCheckpointManager, "sync_up_experiment_state",
                        ray_s_own(_ExperimentCheckpointManager.sync_up_experiment_state))
    if patched:
        assert paced_forced_snapshots()
    trial = a_trial(tmp_path)
    return trial, _ExperimentCheckpointManager(storage=trial.storage, checkpoint_period=10**9,
                                               sync_every_n_trial_checkpoints=KEEP)


@pytest.mark.parametrize("patched", [False, True], ids=["ray-alone", "scenetune"])
def test_a_forced_snapshot_waits_for_its_pace_and_is_then_taken(ray_up, monkeypatch, tmp_path, patched):
    """As the controller does: each trial checkpoint is handed to the manager,
    which is then asked for a snapshot at every step; Ray's own throttle is
    out of the way here (a period of 10**9 s), so only forced ones are taken."""
    trial, manager = snapshot_manager(monkeypatch, tmp_path, patched)
    saved = []

    def step(force=False):
        def save():
            os.makedirs(trial.storage.experiment_driver_staging_path, exist_ok=True)
            time.sleep(SAVE_S)
            saved.append(time.monotonic())
        manager.sync_up_experiment_state(save_fn=save, force=force, wait=True)

    step(force=True)  # the sweep's start
    for number in (1, 2):  # KEEP checkpoints since that snapshot: Ray forces one
        folder = tmp_path / f"checkpoint_{number:06d}"
        folder.mkdir()
        trial.on_checkpoint(_TrainingResult(checkpoint=Checkpoint.from_directory(str(folder)),
                                            metrics={"epoch": number}))
        manager.on_trial_checkpoint(trial)
    asked = time.monotonic()
    step()
    if not patched:
        assert len(saved) == 2, "Ray alone takes the forced snapshot at once"
        return
    assert len(saved) == 1 and manager._should_force_sync_up, "held back, still asked for"
    while len(saved) == 1 and time.monotonic() - asked < 10:
        step()
        time.sleep(0.01)
    assert len(saved) == 2 and not manager._should_force_sync_up
    waited = saved[1] - SAVE_S - saved[0]
    assert SNAPSHOT_PACE * SAVE_S * 0.9 <= waited <= SNAPSHOT_PACE * SAVE_S + 1.0, waited
    step(force=True)  # the sweep's end or a stop: never held back
    assert len(saved) == 3


UPLOAD_S = 0.8  # how long the test's previous upload of the experiment state runs


@pytest.mark.parametrize("patched", [False, True], ids=["ray-alone", "scenetune"])
def test_a_forced_snapshot_due_during_an_upload_is_taken_after_it_without_the_driver_waiting(
        ray_up, monkeypatch, tmp_path, patched):
    """Ray waits in the driver for the previous upload to storage before a
    forced snapshot; scenetune's driver goes on and takes the snapshot at its
    first step after the upload, or after UPLOAD_HOLD_S (then as Ray does)."""
    trial, manager = snapshot_manager(monkeypatch, tmp_path, patched)
    saved, steps = [], []

    def step(force=False):
        def save():
            os.makedirs(trial.storage.experiment_driver_staging_path, exist_ok=True)
            saved.append(time.monotonic())
        started = time.monotonic()
        manager.sync_up_experiment_state(save_fn=save, force=force, wait=False)
        steps.append(time.monotonic() - started)

    def upload(seconds: float) -> float:
        """A previous upload that runs ``seconds``; when it ends."""
        manager._storage.syncer.wait()
        manager._storage.syncer._launch_sync_process((lambda: time.sleep(seconds), {}))
        return time.monotonic() + seconds

    def force_one(number: int):
        for n in (2 * number - 1, 2 * number):  # KEEP checkpoints since the last snapshot: Ray forces one
            (folder := tmp_path / f"checkpoint_{n:06d}").mkdir()
            trial.on_checkpoint(_TrainingResult(checkpoint=Checkpoint.from_directory(str(folder)), metrics={}))
            manager.on_trial_checkpoint(trial)
        time.sleep(0.05)  # past the pace of a snapshot that takes no time

    step(force=True)  # the sweep's start
    ends = upload(UPLOAD_S)
    force_one(1)
    steps.clear()
    while len(saved) == 1:
        step()
        time.sleep(0.01)
    if not patched:
        assert steps[0] >= UPLOAD_S * 0.5, "Ray alone: the driver waits for the upload (after saving)"
        return
    assert max(steps) < 0.2 and len(steps) > 10, "the driver went on while the upload ran"
    assert ends - 0.05 <= saved[1] <= ends + 0.3 and not manager._should_force_sync_up
    monkeypatch.setattr(ray_compat, "UPLOAD_HOLD_S", 0.3)  # an upload that runs longer than the hold
    held = time.monotonic()
    ends = upload(3 * UPLOAD_S)
    force_one(2)
    while len(saved) == 2:
        step()
        time.sleep(0.01)
    assert 0.3 <= saved[2] - held < ends - held, "taken after the hold, before the upload ended"


def test_a_manager_without_the_force_flag_leaves_the_pacing_out_with_one_warning_line(monkeypatch, caplog):
    """The flag and the time it reads are set per instance, in ``__init__``."""
    monkeypatch.setattr(_ExperimentCheckpointManager, "sync_up_experiment_state",
                        ray_s_own(_ExperimentCheckpointManager.sync_up_experiment_state))
    monkeypatch.setattr(_ExperimentCheckpointManager, "__init__", lambda self, **kwargs: None)
    with caplog.at_level(logging.WARNING, logger=ray_compat.__name__):
        assert paced_forced_snapshots() is False
    one_warning_line(caplog, "_ExperimentCheckpointManager._should_force_sync_up")
    assert not getattr(_ExperimentCheckpointManager.sync_up_experiment_state, "_scenetune", False)
