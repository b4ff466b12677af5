"""Multi-objective sweeps: Optuna searches the accuracy-versus-time front and
`scenetune best` prints a true Pareto set."""

import json
import os

import numpy as np
import pytest

from scenetune.analysis import load_experiment
from scenetune.analysis.pareto import pareto_mask
from scenetune.cli import main

OBJECTIVES = [{"metric": "val_accuracy", "mode": "max"}, {"metric": "train_time_s", "mode": "min"}]


def brute_force_front(points, maximize):
    signed = np.where(maximize, 1, -1) * points
    return np.array([not any((signed[j] >= signed[i]).all() and (signed[j] > signed[i]).any()
                             for j in range(len(points))) for i in range(len(points))])


def test_pareto_mask_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(50):
        points = rng.integers(0, 6, size=(12, 2)).astype(float)  # many ties on purpose
        maximize = [bool(rng.integers(2)), bool(rng.integers(2))]
        assert (pareto_mask(points, maximize) == brute_force_front(points, maximize)).all()


@pytest.mark.parametrize("changes, message", [
    ({"objectives": [{"metric": "val_accuracy", "mode": "max"}]}, "objectives: list two or more"),
    ({"objectives": OBJECTIVES + [{"metric": "nope", "mode": "min"}]}, "objectives[2].metric: 'nope' is not reported"),
    ({"objectives": OBJECTIVES, "search": {"algorithm": "random"}}, "multi-objective search needs search.algorithm optuna"),
    ({"objectives": OBJECTIVES, "metric": "val_loss"}, "metric: with objectives, metric and mode are the first"),
])
def test_bad_objectives(make_spec, capsys, changes, message):
    assert main(["sweep", make_spec(changes)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("second", ["train_time_s", "model_mb"])  # against training time, or the model's size
def test_multi_objective_sweep_prints_a_true_pareto_set(ray_local, make_spec, capsys, second):
    objectives = [OBJECTIVES[0], {"metric": second, "mode": "min"}]
    path = make_spec({
        "name": f"front-{second}", "metric": None, "mode": None, "objectives": objectives,
        "search": {"algorithm": "optuna", "sampler": "nsga2", "num_samples": 6, "seed": 2},
        "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2, "brackets": 1},
        "space": {"image_size": {"choice": [16, 24, 32, 40]}, "cnn_filters": {"choice": [4, 8, 16]},
                  "learning_rate": {"loguniform": [3.0e-4, 3.0e-3]}},
        "fixed": {"image_size": None, "cnn_filters": None}})
    assert main(["sweep", path]) == 0
    uri = path.rsplit("/", 1)[0] + f"/results/front-{second}"
    capsys.readouterr()
    assert main(["best", uri, "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["objectives"] == objectives
    printed = {e["trial_id"]: (e["val_accuracy"], e[second]) for e in document["pareto"]}
    assert printed and all("config" in e for e in document["pareto"])

    exp = load_experiment(uri)
    last = exp.epochs.sort_values("training_iteration").groupby("trial_id").tail(1)
    everyone = last[["val_accuracy", second]].to_numpy()
    for trial_id, (acc, secs) in printed.items():
        dominated = ((everyone[:, 0] >= acc) & (everyone[:, 1] <= secs)
                     & ((everyone[:, 0] > acc) | (everyone[:, 1] < secs))).any()
        assert not dominated, f"{trial_id} is dominated by another trial"
    front = set(last["trial_id"][brute_force_front(everyone, [True, False])])
    assert set(printed) == front, "every non-dominated trial is printed, and only those"
    assert main(["best", uri]) == 0
    assert capsys.readouterr().out.startswith("Pareto set of")

    import pandas as pd

    from scenetune.analysis.report import write_report
    html = write_report(uri)
    table = pd.read_csv(os.path.join(os.path.dirname(html), "tables", "pareto_front.csv"), dtype={"trial_id": str})
    assert set(table["trial_id"]) == front
    assert os.path.isfile(os.path.join(os.path.dirname(html), "figures", "pareto_front.png"))
    assert "Pareto front" in open(html).read()
