"""CompactFinishedTrials (search/finished_trials.py): a finished trial's
running statistics dropped from Ray Tune's driver, but the ranked metrics',
and its last result and checkpoints' results cut to the ranked metrics and
Ray's own keys, with Ray Tune's own Tuner, Trial and experiment-state
snapshots."""

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


def three_epochs_checkpointed(config):
    import tempfile

    for epoch in range(1, 4):
        with tempfile.TemporaryDirectory() as folder:
            open(os.path.join(folder, "epoch"), "w").close()
            tune.report({"score": config["x"] * epoch, "val_loss": 1.0 / epoch, "spare": 7.0},
                        checkpoint=tune.Checkpoint.from_directory(folder))


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


def test_finished_trials_last_and_checkpoint_results_keep_the_ranked_metrics_and_ray_s_keys(ray_up, tmp_path):  # noqa: F811
    """What Ray Tune's ResultGrid gives back reads the same for the ranked
    metrics, Ray's own keys and the configuration; the rest of each result is
    in the trial's own files (result.json)."""
    def fit(name: str, callbacks: list):
        return tune.Tuner(three_epochs_checkpointed, param_space={"x": tune.grid_search([1.0, 2.0])},
                          run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), callbacks=callbacks,
                                                    verbose=0, checkpoint_config=tune.CheckpointConfig(num_to_keep=2))
                          ).fit()

    cut, whole = fit("cut", [CompactFinishedTrials({"score"})]), fit("whole", [])
    best = cut.get_best_result("score", "max")
    assert best.metrics["score"] == 6.0 and best.config == {"x": 2.0} and best.metrics["config"] == {"x": 2.0}
    assert "spare" not in best.metrics and "val_loss" not in best.metrics
    assert {"training_iteration", "time_total_s", "pid", "node_ip"} <= set(best.metrics)
    assert [m["score"] for _, m in best.best_checkpoints] == [4.0, 6.0]
    assert all(set(m) <= set(best.metrics) | {"checkpoint_dir_name"} for _, m in best.best_checkpoints)
    assert best.checkpoint.path.endswith("checkpoint_000002")
    ray_s = whole.get_best_result("score", "max")
    assert "spare" in ray_s.metrics and all("spare" in m for _, m in ray_s.best_checkpoints)
    with open(os.path.join(best.path, "result.json")) as f:
        assert all("spare" in json.loads(line) for line in f), "the trial's own files keep every metric"
    (path,) = glob.glob(os.path.join(tmp_path, "cut", "experiment_state-*.json"))
    with open(path) as f:
        saved = [json.loads(meta)["last_result"] for _, meta in json.load(f)["trial_data"]]
    assert sorted(r["score"] for r in saved) == [3.0, 6.0] and not any("spare" in r for r in saved)


def test_a_result_is_cut_only_after_the_step_in_which_its_trial_ended(tmp_path):
    """Ray reads a trial's last result after the trial-complete callbacks
    (whether its warm process is kept: ``process_rss_mb``); a trial that is
    not ended at the step's end (run again) keeps its whole result. A
    TERMINATED trial (never run again) loses its moving averages' windows,
    not the averages; an errored one (which a resume may run again) keeps them."""
    trials = [Trial("three_epochs", config={"x": x}, checkpoint_config=CheckpointConfig(),
                    storage=StorageContext(storage_path=str(tmp_path), experiment_dir_name="e", trial_dir_name=f"t{x}"))
              for x in (1, 2, 3)]
    compact = CompactFinishedTrials({"score"})
    for trial in trials:
        trial.update_last_result({"score": 0.5, "process_rss_mb": 300.0, "training_iteration": 1})
        compact.on_trial_complete(1, trials, trial)
        assert trial.last_result["process_rss_mb"] == 300.0
    trials[0].set_status(Trial.TERMINATED)
    trials[1].set_status(Trial.PENDING)
    trials[2].set_status(Trial.ERROR)
    compact.on_step_end(1, trials)
    assert set(trials[0].last_result) - {"trial_id"} == {"score", "training_iteration"}
    assert trials[1].last_result["process_rss_mb"] == 300.0
    terminated, errored = trials[0].run_metadata, trials[2].run_metadata
    assert terminated.metric_n_steps == {} and terminated.metric_analysis["score"]["last-5-avg"] == 0.5
    assert set(errored.metric_n_steps) == {"score"} and set(errored.metric_analysis) == {"score"}
    assert json.loads(terminated.get_json_state())["metric_n_steps"] == {}


def test_the_searcher_lets_go_of_a_trial_s_optuna_handle_once_the_study_has_it(ray_up, tmp_path):  # noqa: F811
    """Ray's OptunaSearch keeps each suggested trial's ``optuna.Trial``; the
    sweep's searcher drops it at the trial's end, the study keeping every
    trial with its values by epoch; a late completion is ignored, as Ray does."""
    import optuna

    from scenetune.search.finished_trials import CompactOptunaSearch

    searcher = CompactOptunaSearch(space={"x": optuna.distributions.FloatDistribution(1.0, 2.0)}, metric="score",
                                   mode="max", sampler=optuna.samplers.RandomSampler(seed=0))
    tune.Tuner(three_epochs, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=4),
               run_config=tune.RunConfig(name="optuna", storage_path=str(tmp_path), verbose=0)).fit()
    assert searcher._ot_trials == {} and len(searcher._completed_trials) == 4
    assert sorted(searcher.optuna_numbers.values()) == [0, 1, 2, 3]
    assert set(searcher.optuna_numbers) == searcher._completed_trials
    trials = searcher._ot_study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert all(t.value == 3 * t.params["x"] and sorted(t.intermediate_values) == [1, 2, 3] for t in trials)
    searcher.on_trial_complete(next(iter(searcher._completed_trials)), {"score": 9.0})
    assert len(searcher._ot_study.get_trials()) == 4


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
