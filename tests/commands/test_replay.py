"""Replay: recorded curves answered back exactly, and ASHA deciding in replay
what it decided in the real run."""

import json
import math
import os
import sys

import pandas as pd
import pytest
import ray.cloudpickle
from ray import tune

from scenetune.analysis import load_experiment
from scenetune.cli import main
from scenetune.commands.replay import ReplayError, load_recording, nearest, replay, replay_once
from scenetune.core.layout import SPEC_FILE
from scenetune.search.schedulers import tune_ranking
from scenetune.search.spec import parse_spec
from scenetune.search.tuner import scheduler, searcher_and_space, trial_dirname
from tests.conftest import BASE_SPEC, deep_update

pytestmark = pytest.mark.slow
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import test modules

SPACE = {"learning_rate": {"loguniform": [1.0e-4, 1.0e-1]}, "dense_units": {"choice": [8, 16, 32]}}


def curve_trainable(config):
    """A trial with a closed-form learning curve: no TensorFlow, known values."""
    lr, width = config["learning_rate"], config["dense_units"]
    peak = 0.9 - 0.25 * abs(math.log10(lr) + 2.5)  # best near lr = 3e-3
    for epoch in range(1, config["epochs"] + 1):
        tune.report({"val_accuracy": round(peak * (1 - math.exp(-epoch * width / 24)), 6),
                     "epoch_time_s": 1.0 + width / 16, "epoch": epoch})


def tied_trainable(config):
    """Like curve_trainable, but every trial sits at chance (1/8) in epoch 1,
    as real ones do: only val_loss tells them apart there."""
    lr, width = config["learning_rate"], config["dense_units"]
    peak = 0.9 - 0.25 * abs(math.log10(lr) + 2.5)
    for epoch in range(1, config["epochs"] + 1):
        accuracy = 0.125 if epoch == 1 else round(peak * (1 - math.exp(-epoch * width / 24)), 6)
        tune.report({"val_accuracy": accuracy, "val_loss": round(2.2 - peak * epoch / 6, 6),
                     "epoch_time_s": 1.0 + width / 16, "epoch": epoch})


def record(tmp_path, synth_root, name, sched, num_samples, seed, trainable=curve_trainable):
    """A real sweep of ``trainable``, laid out like `scenetune sweep` lays it out."""
    raw = deep_update(BASE_SPEC, {"name": name, "data": {"root": synth_root}, "storage": str(tmp_path),
                                  "space": SPACE, "fixed": {"dense_units": None, "epochs": 6},
                                  "search": {"algorithm": "random", "num_samples": num_samples, "seed": seed,
                                             "max_concurrent": 1}, "scheduler": sched})
    spec = parse_spec(raw)
    search_alg, space = searcher_and_space(spec)
    chosen = scheduler(spec)
    metric, mode = tune_ranking(chosen, "val_accuracy", "max")  # as build_tuner
    tuner = tune.Tuner(trainable, param_space={**spec.fixed, **space},
                       tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=search_alg,
                                                   scheduler=chosen, num_samples=num_samples,
                                                   trial_dirname_creator=trial_dirname),
                       run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0))
    tuner.fit()
    uri = os.path.join(tmp_path, name)
    with open(os.path.join(uri, SPEC_FILE), "w") as f:
        f.write(spec.to_yaml())
    return uri


@pytest.fixture(scope="module")
def complete(ray_local, tmp_path_factory, synth_root):
    return record(tmp_path_factory.mktemp("rec"), synth_root, "complete", {"name": "none"}, 8, seed=1)


def test_replaying_a_recorded_configuration_gives_its_curve_exactly(complete, tmp_path):
    rec = load_recording(complete)
    exp = load_experiment(complete)
    points = [{"learning_rate": exp.configs[t]["learning_rate"], "dense_units": exp.configs[t]["dense_units"]}
              for t in rec.curves]
    for trial_id, point in zip(rec.curves, points):
        assert nearest(rec, point) == trial_id
    from ray.tune.search import BasicVariantGenerator

    from scenetune.commands.replay import replay_trainable
    from scenetune.spaces import to_tune
    grid = tune.Tuner(tune.with_parameters(replay_trainable, recording=rec),
                      param_space=to_tune(rec.params.values()),
                      tune_config=tune.TuneConfig(num_samples=len(points),
                                                  search_alg=BasicVariantGenerator(points_to_evaluate=points, max_concurrent=1)),
                      run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0)).fit()
    for result in grid:
        replayed = result.metrics_dataframe
        recorded = rec.curves[result.metrics["recorded_trial"]]
        assert list(replayed["val_accuracy"]) == [v for v, _ in recorded]
        assert list(replayed["epoch_time_s"]) == [s for _, s in recorded]


def test_each_recorded_trial_answers_one_replayed_trial_unless_asked_to_repeat(complete, tmp_path):
    rec = load_recording(complete)
    # TPE exploiting one region: as many trials as were recorded, each answered by a different one.
    distinct = replay_once(rec, "tpe", "none", seed=3, num_samples=len(rec.curves), storage=str(tmp_path))
    assert distinct["replayed_trials"] == sorted(rec.curves)
    repeated = replay_once(rec, "tpe", "none", seed=3, num_samples=len(rec.curves), storage=str(tmp_path),
                           repeat_recorded=True)
    assert len(repeated["replayed_trials"]) == len(rec.curves)
    assert len(set(repeated["replayed_trials"])) < len(rec.curves)  # the nearest answers again and again
    with pytest.raises(ReplayError, match="only 8 were recorded"):
        replay_once(rec, "random", "none", seed=0, num_samples=9, storage=str(tmp_path))


def test_asha_in_replay_stops_what_asha_stopped_in_the_real_run(ray_local, tmp_path, synth_root):
    # quorum 1: Ray's ASHA, which judges at once (these curves keep no checkpoint to resume a held trial from)
    asha = {"name": "asha", "grace_period": 1, "reduction_factor": 2, "brackets": 1, "quorum": 1,
            "metric": "val_accuracy", "mode": "max"}
    uri = record(tmp_path, synth_root, "real-asha", asha, 8, seed=5)
    exp = load_experiment(uri)
    really_stopped = set(exp.trials.loc[exp.trials["status"] == "stopped", "trial_id"])
    assert really_stopped, "the real run must have stopped some trials for this test to mean anything"
    outcome = replay_once(load_recording(uri), "random", "asha", seed=5, num_samples=8, storage=str(tmp_path))
    assert set(outcome["stopped_trials"]) == really_stopped


@pytest.mark.parametrize("searcher", ["random", "tpe"])
def test_hyperband_in_replay_fills_its_brackets_and_stops_paused_trials(complete, tmp_path, searcher):
    """max_t 6, factor 3: a band is a bracket of 3 trials run whole and one of
    5 paused at epoch 2 and cut to 2, whatever the searcher (Ray adds Optuna's
    trials one at a time unless told to keep a band pending: then every trial
    lands in the first bracket and none is stopped)."""
    rec = load_recording(complete)
    outcome = replay_once(rec, searcher, "hyperband", seed=2, num_samples=8, storage=str(tmp_path))
    assert outcome["stopped_early"] == 3, outcome["stopped_trials"]
    assert len(outcome["replayed_trials"]) == 8
    whole = sum(sum(s for _, s in rec.curves[t]) for t in outcome["replayed_trials"])
    assert outcome["compute_s"] < whole


def test_asha_ranking_by_val_loss_breaks_the_ties_at_chance_and_replays_the_same(ray_local, tmp_path, synth_root):
    asha = {"name": "asha", "grace_period": 1, "reduction_factor": 2, "brackets": 1, "quorum": 1,
            "metric": "val_loss", "mode": "min"}
    uri = record(tmp_path, synth_root, "asha-by-loss", asha, 8, seed=5, trainable=tied_trainable)
    exp = load_experiment(uri)
    epochs = exp.epochs.groupby("trial_id")["training_iteration"].max()
    at_first_rung = set(epochs[epochs == 1].index)
    assert at_first_rung, "ranked by val_loss, ASHA stops trials at epoch 1 although their accuracies tie"
    really_stopped = set(exp.trials.loc[exp.trials["status"] == "stopped", "trial_id"])
    rec = load_recording(uri)  # ranks as recorded: scheduler.metric val_loss
    assert rec.rank_by == ("val_loss", "min")
    outcome = replay_once(rec, "random", "asha", seed=5, num_samples=8, storage=str(tmp_path))
    assert set(outcome["stopped_trials"]) == really_stopped
    by_accuracy = load_recording(uri, rank_by=("val_accuracy", "max"))
    assert by_accuracy.rank_by is None
    outcome = replay_once(by_accuracy, "random", "asha", seed=5, num_samples=8, storage=str(tmp_path))
    assert not set(outcome["stopped_trials"]) & at_first_rung  # ties at chance: nobody stops at epoch 1


def test_replay_compares_strategies_with_compute_figures(complete):
    runs, summary = replay(complete, ["random", "tpe"], ["none", "asha"], repeats=2, num_samples=6)
    assert len(runs) == 8
    assert set(zip(summary["searcher"], summary["scheduler"])) == {
        ("random", "none"), ("random", "asha"), ("tpe", "none"), ("tpe", "asha")}
    no_stop = runs[runs["scheduler"] == "none"]
    assert (no_stop["stopped_early"] == 0).all()
    rec = load_recording(complete)
    full = {trial: sum(s for _, s in curve) for trial, curve in rec.curves.items()}
    for run in runs.itertuples():
        assert len(run.replayed_trials) == 6
        whole_curves = sum(full[t] for t in run.replayed_trials)
        if run.scheduler == "none":  # every replayed epoch counted once
            assert run.compute_s == pytest.approx(whole_curves)
        elif run.stopped_early:
            assert run.compute_s < whole_curves
    assert (runs["best"] <= rec.best + 1e-12).all()
    reached = runs.dropna(subset=["compute_to_target_s"])
    assert (reached["compute_to_target_s"] <= reached["compute_s"]).all()
    for run in runs.itertuples():  # each new best, in order: what "needed" at any tolerance is read from
        computes, values = zip(*run.improvements)
        assert list(computes) == sorted(computes) and list(values) == sorted(values)
        assert values[-1] == run.best and computes[-1] <= run.compute_s
        target = summary.attrs["target"]
        assert run.compute_to_target_s == next((c for c, v in run.improvements if v >= target), None) or (
            pd.isna(run.compute_to_target_s) and values[-1] < target)
    assert summary.attrs["best_recorded"] == rec.best


def test_cli_replay_and_its_bad_input(complete, capsys):
    assert main(["replay", complete, "--searcher", "random", "--scheduler", "asha", "--repeats", "1",
                 "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["summary"][0]["searcher"] == "random" and len(document["runs"]) == 1
    assert main(["replay", complete, "--rank-by", "val_loss"]) == 2
    assert "--rank-by: expected METRIC:max or METRIC:min" in capsys.readouterr().err
    assert main(["replay", complete, "--rank-by", "val_loss:min"]) == 2  # curve_trainable reports no val_loss
    assert "no recorded val_loss curves" in capsys.readouterr().err
    assert main(["replay", complete, "--searcher", "bohb"]) == 2
    assert "--searcher: unknown 'bohb'" in capsys.readouterr().err
    assert main(["replay", complete + "-nope"]) == 2
    assert "no such experiment directory" in capsys.readouterr().err
