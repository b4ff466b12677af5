"""Warm start (``search.warm_start``, ``scenetune sweep --warm-start``): an
earlier sweep's finished trials enter the new sweep's Optuna study before its
first trial, when they lie in its space; real Ray Tune, Optuna and classifier
trials on the synthetic scenes (analysis/warm_start.py, search/tuner.py)."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from scenetune.analysis.warm_start import WarmStartError, read_warm_start
from scenetune.cli import main
from scenetune.search.tuner import STUDY_NAME, startup_trials
from scenetune.spaces import parse_space, to_optuna
from tests.conftest import BASE_SPEC, deep_update

pytestmark = pytest.mark.slow

EARLIER_SPACE = {"learning_rate": {"loguniform": [1e-4, 3e-3]}, "image_size": {"choice": [32, 48]}}
EARLIER = {"name": "earlier", "search": {"num_samples": 6, "seed": 3},
           "scheduler": {"name": "asha", "max_t": 3, "grace_period": 1, "reduction_factor": 3, "brackets": 1},
           "space": EARLIER_SPACE, "fixed": {"epochs": 3, "image_size": None}}
ACCURACY = [("val_accuracy", "max")]


def spec_file(folder, synth_root, storage, changes: dict) -> str:
    spec = deep_update(deep_update(BASE_SPEC, {"data": {"root": synth_root}, "storage": str(storage)}), changes)
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


@pytest.fixture(scope="module")
def earlier(ray_local, tmp_path_factory, synth_root) -> str:
    """A 6-trial ASHA sweep: some trials completed, some stopped at a rung."""
    folder = tmp_path_factory.mktemp("warm")
    assert main(["sweep", spec_file(folder, synth_root, folder / "results", EARLIER)]) == 0
    return str(folder / "results" / "earlier")


def finished(uri: str) -> dict[str, dict]:
    """trial_id -> config of the earlier sweep's trials."""
    from scenetune.analysis import load_experiment

    exp = load_experiment(uri)
    assert set(exp.trials["status"]) == {"completed", "stopped"}, "ASHA stopped some and let others finish"
    return {t: {**exp.resolved.get(t, {}), **exp.configs[t]} for t in exp.trials["trial_id"]}


def test_the_study_holds_the_earlier_trials_first_and_tpe_skips_its_random_start(earlier, tmp_path, synth_root,
                                                                                  capsys):
    path = spec_file(tmp_path, synth_root, tmp_path / "results",
                     {**EARLIER, "name": "later", "search": {"num_samples": 2, "seed": 5}})
    assert main(["sweep", path, "--warm-start", earlier]) == 0
    assert "warm start: 6 of 6 earlier trials used\n" in capsys.readouterr().err
    experiment = str(tmp_path / "results" / "later")
    record = json.load(open(os.path.join(experiment, "warm_start.json")))
    assert record["experiments"] == [earlier] and sorted(record["used"][earlier]) == sorted(finished(earlier))

    trials = saved_study(experiment)  # the searcher's saved state: what Ray Tune restores on --resume
    warm, new = trials[:6], trials[6:]
    assert all(t.user_attrs.get("warm_start") == earlier for t in warm) and len(new) == 2
    assert not any("warm_start" in t.user_attrs for t in new)
    assert {t.state for t in warm} == {TrialState.COMPLETE, TrialState.PRUNED}
    for t in warm:
        assert t.intermediate_values and t.datetime_start < t.datetime_complete, t
        if t.state == TrialState.PRUNED:
            assert len(t.intermediate_values) < 3 and t.value == t.intermediate_values[max(t.intermediate_values)]
    assert max(t.datetime_complete for t in warm) < min(t.datetime_start for t in new)

    # the first new trial is TPE's: what TPE draws after the warm trials, not what its random start draws
    with open(os.path.join(experiment, "scenetune_spec.yaml")) as f:  # its order: the order TPE draws in
        space = to_optuna(parse_space(yaml.safe_load(f)["space"]).values())

    def first_draw(with_warm: bool) -> dict:
        sampler = optuna.samplers.TPESampler(seed=5, n_startup_trials=startup_trials(2))
        study = optuna.create_study(study_name=STUDY_NAME, sampler=sampler, direction="maximize")
        study.add_trials(warm if with_warm else [])
        return study.ask(fixed_distributions=space).params

    assert new[0].params == first_draw(with_warm=True) != first_draw(with_warm=False)

    # the series read as one: `best` ranks both experiments' trials together, each naming its experiment
    capsys.readouterr()
    assert main(["best", earlier, experiment, "--top", "8", "--format", "json"]) == 0
    best = json.loads(capsys.readouterr().out)["best"]
    assert {e["experiment"] for e in best} == {"earlier", "later"} and len(best) == 8
    values = [e["val_accuracy"] for e in best]
    assert values == sorted(values, reverse=True)

    # `report` of the series: the earlier trials the warm start used are marked, and the later report says so
    out = tmp_path / "series"
    assert main(["report", earlier, experiment, "--out", str(out)]) == 0
    import pandas as pd

    trials = pd.read_csv(out / "tables" / "series_trials.csv").fillna("")
    marked = trials.set_index(["experiment", "trial"])["warm_start_of"].to_dict()
    assert {t for (e, t), by in marked.items() if by == "later"} == set(record["used"][earlier])
    assert all(by == "" for (e, _), by in marked.items() if e == "later")
    warm_table = pd.read_csv(out / "later" / "tables" / "warm_start_trials.csv")
    assert sorted(warm_table["trial"]) == sorted(record["used"][earlier])
    assert "## Warm start" in open(out / "later" / "report.md").read()
    assert "## Warm start" not in open(out / "earlier" / "report.md").read()


@pytest.mark.parametrize("space, fixed, used, line", [
    (EARLIER_SPACE, {"epochs": 3}, 6, "warm start: 6 of 6 earlier trials used"),
    # searched before, fixed now (warm_start_other_sizes: leave_out; the default, prior, is the next test's)
    ({"learning_rate": EARLIER_SPACE["learning_rate"]}, {"epochs": 3, "image_size": 48}, None,
     "with image_size 32, fixed at 48 here"),
    # fixed before (BASE_SPEC's dense_units 16), searched now; and a parameter new here: dropout (its default 0.0)
    ({**EARLIER_SPACE, "dense_units": {"choice": [16, 32]}, "dropout": {"uniform": [0.0, 0.5]}}, {"epochs": 3}, 6,
     "warm start: 6 of 6 earlier trials used"),
    # a range that shrank, a choice that dropped a value and added one
    ({"learning_rate": {"loguniform": [1e-4, 1e-3]}, "image_size": EARLIER_SPACE["image_size"]}, {"epochs": 3}, None,
     "with learning_rate outside [0.0001, 0.001] here"),
    ({"learning_rate": EARLIER_SPACE["learning_rate"], "image_size": {"choice": [48, 64]}}, {"epochs": 3}, None,
     "with image_size outside [48, 64] here"),
    # a fidelity changed: every trial ran 3 epochs
    (EARLIER_SPACE, {"epochs": 6}, 0, "warm start: 0 of 6 earlier trials used; 6 with epochs 3, fixed at 6 here"),
], ids=["same", "searched-then-fixed", "fixed-then-searched-and-new", "range-shrank", "choice-changed", "epochs"])
def test_a_trial_is_used_when_it_lies_in_the_new_space(earlier, space, fixed, used, line):
    configs = finished(earlier)
    fixed = {**{k: v for k, v in BASE_SPEC["fixed"].items() if k != "image_size"}, **fixed}
    warm = read_warm_start([earlier], "classifier", ACCURACY, space, fixed, other_sizes="leave_out")
    params = parse_space(space)
    inside = [t for t, c in configs.items()
              if all(p.contains(c.get(k)) for k, p in params.items())
              and all(c.get(k, v) == v for k, v in fixed.items())]
    assert len(warm.trials) == len(inside) == (len(inside) if used is None else used)
    assert sorted(warm.used.get(earlier, [])) == sorted(inside)
    assert line in warm.line() and "\n" not in warm.line()
    assert warm.line().startswith(f"warm start: {len(inside)} of 6 earlier trials used")
    if 0 < len(inside) < 6:
        assert warm.line().endswith(f"; {6 - len(inside)} {line}")
    for trial in warm.trials:
        assert set(trial.params) == {"/".join(p.path) for p in params.values()}, trial.params


def test_trials_at_another_fixed_image_size_are_a_prior_by_default(earlier):
    """Issue 25's measurement (benchmarks/warm_start.py, scenario 2): an
    earlier sweep at another image size helps as a prior; it enters with its
    results as they were, in the order its trials started."""
    from scenetune.analysis import load_experiment

    space = {"learning_rate": EARLIER_SPACE["learning_rate"]}
    fixed = {**{k: v for k, v in BASE_SPEC["fixed"].items() if k != "image_size"}, "epochs": 3, "image_size": 48}
    warm = read_warm_start([earlier], "classifier", ACCURACY, space, fixed)
    at_32 = [t for t, c in finished(earlier).items() if c["image_size"] == 32]
    assert at_32 and len(warm.trials) == 6 and warm.prior == {"with image_size 32, fixed at 48 here": len(at_32)}
    assert warm.line() == (f"warm start: 6 of 6 earlier trials used ({len(at_32)} with image_size 32, fixed at 48 "
                           "here: as a prior)")
    assert all(set(t.params) == {"learning_rate"} for t in warm.trials), "the image size aside"
    assert sorted(t.user_attrs.get("warm_start_other_size") for t in warm.trials
                  if "warm_start_other_size" in t.user_attrs) == [32] * len(at_32)
    exp = load_experiment(earlier)
    assert warm.used[earlier] == list(exp.trials.sort_values("started_at")["trial_id"]), "in the order they started"
    assert [t.datetime_start for t in warm.trials] == sorted(t.datetime_start for t in warm.trials)


def test_a_sweep_at_another_image_size_runs_the_earlier_best_configurations_first(earlier, tmp_path, synth_root,
                                                                                  capsys):
    """``search.warm_start_rerun_best`` (3 by default): a sweep fixed at 64 px,
    warm-started from trials that ran at 32 and 48, runs the configurations of
    the earlier best trials first (by their last value, as ``scenetune best``
    ranks), best first, with the earlier trials in its study as the prior."""
    from scenetune.analysis import load_experiment

    exp = load_experiment(earlier)
    last = exp.epochs.sort_values("training_iteration").groupby("trial_id").tail(1).set_index("trial_id")
    value_of = {exp.configs[t]["learning_rate"]: last.loc[t, "val_accuracy"] for t in exp.trials["trial_id"]}
    spec = {**EARLIER, "name": "at-64", "search": {"num_samples": 2, "seed": 5},
            "space": {"learning_rate": EARLIER_SPACE["learning_rate"]}, "fixed": {"epochs": 3, "image_size": 64}}
    assert main(["sweep", spec_file(tmp_path, synth_root, tmp_path / "results", spec), "--warm-start", earlier]) == 0
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("warm start:"))
    assert line.endswith(": as a prior); the 2 best of those run first"), line  # 3 by default, 2 trials here
    experiment = str(tmp_path / "results" / "at-64")
    first = [p["learning_rate"] for p in json.load(open(os.path.join(experiment, "warm_start.json")))["run_first"]]
    assert [value_of[rate] for rate in first] == sorted(value_of.values(), reverse=True)[:2], "the best, best first"
    new = saved_study(experiment)[6:]
    assert len(new) == 2, "no rerun left waiting past num_samples"
    assert [t.params["learning_rate"] for t in new] == pytest.approx(first[:2]), "run first"


@pytest.mark.parametrize("trainable, objectives, said", [
    ("classifier", [("val_loss", "min")], "its trials are ranked by val_accuracy (max); this sweep's by "
                                          "val_loss (min)"),
    ("gan", ACCURACY, "its trials are classifier trials; this sweep's are gan"),
])
def test_another_task_s_trials_are_refused(earlier, trainable, objectives, said):
    with pytest.raises(WarmStartError) as refused:
        read_warm_start([earlier], trainable, objectives, EARLIER_SPACE, {"epochs": 3})
    assert str(refused.value) == f"--warm-start {earlier}: {said}"


@pytest.mark.parametrize("warm", ["missing", "other-metric"])
def test_a_refused_warm_start_exits_2_with_one_line_and_writes_nothing(earlier, tmp_path, synth_root, capsys, warm):
    change = {"metric": "val_loss", "mode": "min"} if warm == "other-metric" else {}
    path = spec_file(tmp_path, synth_root, tmp_path / "results", {**EARLIER, "name": "refused", **change})
    source = earlier if warm == "other-metric" else str(tmp_path / "nowhere")
    assert main(["sweep", path, "--warm-start", source]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("scenetune: error:") and source in err, err
    assert not os.path.exists(tmp_path / "results")


def saved_study(experiment: str) -> list:
    """The trials of the Optuna study in the searcher state Ray Tune saved (what --resume restores)."""
    # a resume adds a file of its own; names carry each session's start, as Ray Tune picks the newest
    state = sorted(glob.glob(os.path.join(experiment, "searcher-state-*.pkl")))[-1]
    searcher = OptunaSearch()
    searcher.restore(state)
    return searcher._ot_study.trials


def test_resume_of_a_warm_started_sweep_continues_the_same_study(earlier, tmp_path, synth_root):
    """Ctrl-C after a new trial's first epoch, then --resume: the earlier
    experiment is not read again (its line is not printed), and the finished
    study holds the same warm trials, first, then every new one."""
    from tests.cli.test_cli import SCENETUNE, wait_for_a_result

    path = spec_file(tmp_path, synth_root, tmp_path / "results",
                     {**EARLIER, "name": "resumed", "search": {"num_samples": 6, "seed": 5, "max_concurrent": 1},
                      "scheduler": {"name": "none"}})
    experiment = str(tmp_path / "results" / "resumed")
    proc = subprocess.Popen([SCENETUNE, "sweep", path, "--warm-start", earlier], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_a_result(experiment, proc)
    proc.send_signal(signal.SIGINT)  # one trial at a time, 3 epochs each: five trials to come
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "warm start: 6 of 6 earlier trials used" in err, err

    def warm_part(trials) -> list:
        return [(t.number, t.params, t.state, t.intermediate_values) for t in trials if "warm_start" in t.user_attrs]

    before = saved_study(experiment)
    assert [t.number for t in before if "warm_start" in t.user_attrs] == list(range(6)) and len(before) < 12
    resumed = subprocess.run([SCENETUNE, "sweep", path, "--name", "resumed", "--resume"], capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0 and "warm start:" not in resumed.stderr, resumed.stderr
    after = saved_study(experiment)
    assert warm_part(after) == warm_part(before)
    assert [t.state for t in after[6:]] == [TrialState.COMPLETE] * 6, "every new trial told to the same study"
