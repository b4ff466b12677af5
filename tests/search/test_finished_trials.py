"""CompactFinishedTrials (search/finished_trials.py): a finished trial's
running statistics dropped from Ray Tune's driver, but the ranked metrics',
with Ray Tune's own Tuner, Trial and experiment-state snapshots."""

from __future__ import annotations

import glob
import json
import os

from ray import tune
from ray.train import CheckpointConfig
from ray.train._internal.storage import StorageContext
from ray.tune.experiment import Trial

from scenetune.search.finished_trials import CompactFinishedTrials, ranked_metrics
from scenetune.search.spec import parse_spec
from tests.search.test_driver_patches import ray_up  # noqa: F401 (a fixture)


def three_epochs(config):
    for epoch in range(1, 4):
        tune.report({"score": config["x"] * epoch, "val_loss": 1.0 / epoch, "spare": 7.0})


def saved_statistics(experiment: str) -> list[set]:
    """Each trial's metrics with statistics, in the experiment's last snapshot."""
    (path,) = glob.glob(os.path.join(experiment, "experiment_state-*.json"))
    with open(path) as f:
        state = json.load(f)
    return [set(json.loads(meta)["metric_analysis"]) for _, meta in state["trial_data"]]


def sweep(tmp_path, name: str, callbacks: list) -> list[set]:
    tune.Tuner(three_epochs, param_space={"x": tune.grid_search([1.0, 2.0])},
               run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), callbacks=callbacks, verbose=0)).fit()
    return saved_statistics(str(tmp_path / name))


def test_finished_trials_keep_only_the_ranked_metrics_statistics(ray_up, tmp_path):  # noqa: F811
    kept = sweep(tmp_path, "compact", [CompactFinishedTrials({"score", "val_loss"})])
    assert kept == [{"score", "val_loss"}] * 2
    whole = sweep(tmp_path, "whole", [])  # Ray's own: every number reported, its own timings among them
    assert all({"score", "val_loss", "spare", "time_this_iter_s", "training_iteration"} <= metrics for metrics in whole)


def test_a_trial_run_again_after_it_was_compacted_updates_its_ranked_statistics(tmp_path):
    trial = Trial("three_epochs", config={"x": 1.0}, checkpoint_config=CheckpointConfig(),
                  storage=StorageContext(storage_path=str(tmp_path), experiment_dir_name="e", trial_dir_name="t"))
    for epoch, score in ((1, 0.2), (2, 0.5)):
        trial.update_last_result({"score": score, "spare": 1.0, "training_iteration": epoch})
    CompactFinishedTrials({"score"}).compact(trial)
    assert set(trial.run_metadata.metric_analysis) == {"score"} and set(trial.run_metadata.metric_n_steps) == {"score"}
    trial.update_last_result({"score": 0.9, "spare": 1.0, "training_iteration": 3})  # a retry goes on
    assert trial.run_metadata.metric_analysis["score"]["max"] == 0.9
    assert trial.run_metadata.metric_analysis["score"]["last-5-avg"] == (0.2 + 0.5 + 0.9) / 3


def test_a_sweep_ranks_by_its_metric_its_scheduler_s_and_its_objectives():
    spec = parse_spec({"name": "x", "trainable": "classifier", "data": {"root": "/tmp"}, "metric": "val_accuracy",
                       "mode": "max", "space": {"dropout": {"uniform": [0.0, 0.5]}},
                       "scheduler": {"name": "asha", "metric": "val_loss", "mode": "min"}})
    assert ranked_metrics(spec) == {"val_accuracy", "val_loss"}
