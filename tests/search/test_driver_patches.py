"""search/ray_compat.py's ``keep_the_drivers_trial_logs`` at work, with Ray
Tune's own ``Trial``, storage and ``JsonLoggerCallback`` (``ray-alone``: Ray's
own method): a paused trial that resumes keeps the result.json rows its
driver logged (Ray copies storage's older copy over them);
tests/search/test_hyperband.py shows it in a whole HyperBand band."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from ray import tune
from ray.train import Checkpoint, CheckpointConfig
from ray.train._internal.session import _TrainingResult
from ray.train._internal.storage import StorageContext
from ray.tune.experiment import Trial
from ray.tune.logger import JsonLoggerCallback
from ray.tune.logger.logger import LoggerCallback

from scenetune.search.ray_compat import keep_the_drivers_trial_logs
from tests.known_curves import checkpointed_lines
from tests.search.test_ray_compat import ray_s_own

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
