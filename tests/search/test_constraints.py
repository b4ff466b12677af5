"""Constraints (``constraints:`` in a spec, core/constraints.py): each finished
trial's excess over its bounds reaches Optuna's study (what TPE and NSGA-II
learn the feasible region from), ``best`` ranks the trials within them and
names the others, the report marks them; bad constraints are one line, exit 2.
Real Ray Tune, Optuna and classifier trials on the synthetic scenes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from scenetune.cli import main
from tests.search.test_warm_start import saved_study

# cnn_filters 4 or 32: a model of about 0.002 MB or 0.08 MB of float32 weights
MAX_MB = 0.01
SWEEP = {"name": "bounded", "search": {"num_samples": 4, "seed": 0},
         "constraints": [{"metric": "model_mb", "max": MAX_MB}],
         "space": {"cnn_filters": {"choice": [4, 32]}}, "fixed": {"epochs": 1, "cnn_filters": None}}


@pytest.mark.parametrize("constraints, message", [
    ([{"metric": "nope", "max": 1}], "constraints[0].metric: 'nope' is not reported by classifier; known:"),
    ([{"metric": "latency_ms"}], "constraints[0]: give max, min or both for latency_ms"),
    ([{"metric": "model_mb", "min": 2, "max": 1}], "constraints[0]: min 2 is above max 1"),
    ([{"metric": "model_mb", "max": 1}, {"metric": "model_mb", "min": 0}], "constraints: a metric is listed twice"),
    ([{"metric": "model_mb", "below": 1}], "constraints.0.below"),
])
def test_a_bad_constraint_is_one_line_and_exit_2(make_spec, capsys, tmp_path, constraints, message):
    assert main(["sweep", make_spec({"constraints": constraints})]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_the_study_best_and_report_see_the_constraints(ray_local, make_spec, tmp_path, capsys):
    assert main(["sweep", make_spec(SWEEP)]) == 0
    experiment = str(tmp_path / "results" / "bounded")
    capsys.readouterr()
    assert main(["best", experiment, "--top", "4", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)

    from scenetune.analysis import load_experiment

    exp = load_experiment(experiment)
    last = exp.epochs.sort_values("training_iteration").groupby("trial_id").tail(1).set_index("trial_id")
    past = sorted(last.index[last["model_mb"] > MAX_MB])
    assert past and len(past) < len(last), "the sweep drew both sizes"
    assert sorted(document["infeasible"]) == past
    assert document["constraints"] == [{"metric": "model_mb", "max": MAX_MB, "min": None}]
    assert sorted(e["trial_id"] for e in document["best"]) == sorted(set(last.index) - set(past))
    assert all(e["metrics"]["model_mb"] <= MAX_MB for e in document["best"])

    # what the sampler learns from: each trial's excess over the bound, in the study Ray Tune saved
    told = {t.params["cnn_filters"]: t.constraints for t in saved_study(experiment)}
    assert told[4] == {"model_mb": 0.0}
    assert told[32]["model_mb"] == pytest.approx(last.loc[past[0], "model_mb"] - MAX_MB)

    assert main(["report", experiment]) == 0
    trials = pd.read_csv(f"{experiment}/report/tables/trials.csv", dtype={"trial": str}).set_index("trial")
    assert sorted(trials.index[~trials["feasible"]]) == past
    assert f"{len(past)} of the {len(last)} trials that reported results break them" in \
        open(f"{experiment}/report/report.md").read()
    deployment = pd.read_csv(f"{experiment}/report/tables/deployment.csv", dtype={"trial": str}).set_index("trial")
    assert sorted(deployment.index[~deployment["feasible"]]) == past
    assert (deployment["model_mb"] == last.loc[deployment.index, "model_mb"]).all()

    # a warm start from it carries the new sweep's constraints into its study, from each trial's last epoch
    from scenetune.analysis.warm_start import read_warm_start

    tighter = [{"metric": "model_mb", "max": MAX_MB / 2, "min": None}]
    warm = read_warm_start([experiment], "classifier", [("val_accuracy", "max")], SWEEP["space"],
                           {"epochs": 1}, tighter)
    size_of = {exp.configs[t]["cnn_filters"]: last.loc[t, "model_mb"] for t in last.index}
    assert len(warm.trials) == len(last)
    for trial in warm.trials:
        excess = max(0.0, size_of[trial.params["cnn_filters"]] - MAX_MB / 2)
        assert trial.constraints == {"model_mb": pytest.approx(excess)}
