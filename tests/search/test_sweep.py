"""An end-to-end sweep on the embedded Ray: OptunaSearch + ASHA, then
`scenetune best` on its experiment in every output format."""

import json
import os

import pytest
import yaml

from scenetune.analysis import load_experiment
from scenetune.cli import main
from scenetune.search.spec import load_spec, parse_spec

pytestmark = pytest.mark.slow

SWEEP = {
    "name": "e2e",
    "metric": "val_loss",
    "mode": "min",
    # Two good learning rates first, then one too small to learn in an epoch: whatever TPE
    # samples after, ASHA has a trial below its first rung's cutoff to stop.
    "search": {"algorithm": "optuna", "sampler": "tpe", "num_samples": 6, "max_concurrent": 2, "seed": 3,
               "points": [{"learning_rate": 1.0e-3}, {"learning_rate": 2.0e-3}, {"learning_rate": 1.0e-6}]},
    "scheduler": {"name": "asha", "max_t": 4, "grace_period": 1, "reduction_factor": 2, "brackets": 1},
    "space": {"learning_rate": {"loguniform": [1.0e-6, 3.0e-3]},
              "dense_units": {"choice": [8, 16]},
              "augment.rotation_range": {"uniform": [0, 15]}},
    "fixed": {"epochs": 4, "dense_units": None},
}


@pytest.fixture(scope="module")
def experiment(ray_local, tmp_path_factory, synth_root):
    from tests.conftest import sweep_of

    tmp = tmp_path_factory.mktemp("e2e")
    return sweep_of(tmp, synth_root, SWEEP), str(tmp / "e2e")


def test_the_report_draws_the_best_so_far_against_time_and_epochs(experiment, tmp_path):
    from tests.anytime_checks import check_anytime_section

    check_anytime_section(load_experiment(experiment[1]), str(tmp_path))


def test_sweep_runs_optuna_trials_and_asha_stops_some(experiment):
    _, uri = experiment
    exp = load_experiment(uri)
    assert len(exp.trials) == 6
    statuses = exp.trials["status"].value_counts()
    assert statuses.get("stopped", 0) >= 1, statuses
    assert statuses.get("errored", 0) == 0
    stopped = exp.trials[exp.trials["status"] == "stopped"]
    assert (stopped["epochs"] < 4).all()
    assert set(stopped["epochs"]) <= {1, 2}  # ASHA's rungs below max_t for grace 1, factor 2
    slowest = exp.trials.loc[exp.trials["config/learning_rate"].idxmin()]
    assert slowest["config/learning_rate"] == 1e-6 and slowest["status"] == "stopped" and slowest["epochs"] == 1
    rates = exp.trials["config/learning_rate"]
    assert rates.nunique() == 6 and rates.between(1e-6, 3e-3).all()
    assert os.path.isfile(os.path.join(uri, "split.csv"))
    stored = yaml.safe_load(open(os.path.join(uri, "scenetune_spec.yaml")))
    assert stored["search"]["num_samples"] == 6 and stored["scheduler"]["max_t"] == 4
    assert any(name.startswith("searcher-state") for name in os.listdir(uri)), "Optuna's state is saved"
    assert sorted(exp.trials["trial_dir"]) == sorted(f"classifier_{t}" for t in exp.trials["trial_id"])


def test_best_text(experiment, capsys):
    _, uri = experiment
    assert main(["best", uri, "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("best 3 by val_loss (min, scope last):")
    assert "paste under `fixed:`" in out and "learning_rate:" in out


@pytest.mark.parametrize("fmt, load", [("json", json.loads), ("yaml", yaml.safe_load)])
def test_best_json_and_yaml_rank_trials_and_feed_back_as_fixed(experiment, capsys, fmt, load, synth_root):
    spec_path, uri = experiment
    assert main(["best", uri, "--format", fmt, "--top", "6", "--scope", "all"]) == 0
    document = load(capsys.readouterr().out)
    assert (document["metric"], document["mode"], document["scope"]) == ("val_loss", "min", "all")
    losses = [entry["val_loss"] for entry in document["best"]]
    assert losses == sorted(losses) and len(losses) == 6
    exp = load_experiment(uri)
    assert losses[0] == pytest.approx(exp.epochs["val_loss"].min())
    best = document["best"][0]
    assert "data" not in best["config"] and best["config"]["learning_rate"] > 0
    raw = yaml.safe_load(open(spec_path))
    raw.update(name="again", space={}, fixed=best["config"])
    raw["search"]["points"] = []
    assert parse_spec(raw).fixed["learning_rate"] == best["config"]["learning_rate"]


def test_best_by_another_metric_and_bad_metric(experiment, capsys):
    _, uri = experiment
    assert main(["best", uri, "--metric", "val_accuracy", "--mode", "max", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["best"][0]["val_accuracy"] >= 0
    assert main(["best", uri, "--metric", "nope"]) == 2
    assert "--metric: 'nope' was not reported" in capsys.readouterr().err
    assert main(["best", uri + "-missing"]) == 2
    assert "no such experiment directory" in capsys.readouterr().err


def test_same_name_again_refuses_and_keeps_the_experiment(experiment, capsys):
    spec_path, uri = experiment
    before = sorted(os.listdir(uri))
    assert main(["sweep", spec_path]) == 2
    err = capsys.readouterr().err
    assert "experiment 'e2e' already exists" in err and "--resume" in err
    assert sorted(os.listdir(uri)) == before


def test_resume_of_a_finished_sweep_runs_nothing_new(experiment, capsys):
    spec_path, uri = experiment
    trials_before = load_experiment(uri).trials.set_index("trial_id")["epochs"].to_dict()
    assert main(["sweep", spec_path, "--resume"]) == 0
    assert load_experiment(uri).trials.set_index("trial_id")["epochs"].to_dict() == trials_before


def test_resume_without_an_experiment_is_bad_input(make_spec, capsys):
    assert main(["sweep", make_spec({"name": "never-ran"}), "--resume"]) == 2
    assert "--resume: experiment 'never-ran'" in capsys.readouterr().err


def test_points_pin_the_first_trials_then_random_samples(ray_local, make_spec):
    spec = load_spec(make_spec({
        "name": "points",
        "search": {"algorithm": "random", "num_samples": 3, "points": [
            {"learning_rate": 0.002, "augment.horizontal_flip": True},
            {"learning_rate": 0.0005, "augment": {"horizontal_flip": False}}]},
        "space": {"learning_rate": {"loguniform": [1.0e-4, 1.0e-2]},
                  "augment.horizontal_flip": {"choice": [True, False]}},
        "fixed": {"epochs": 1}}))
    from scenetune.search.run import run_sweep

    exp = load_experiment(run_sweep(spec))
    configs = sorted(exp.configs.values(), key=lambda c: c["learning_rate"])
    pinned = {(c["learning_rate"], c["augment"]["horizontal_flip"]) for c in configs}
    assert {(0.002, True), (0.0005, False)} <= pinned
    assert len(exp.trials) == 3


def test_points_outside_the_space_are_refused(make_spec, capsys):
    path = make_spec({"search": {"algorithm": "random", "points": [{"learning_rate": 0.5}]},
                      "space": {"learning_rate": {"loguniform": [1.0e-4, 1.0e-2]}}})
    assert main(["sweep", path]) == 2
    assert "search.points[0].learning_rate: 0.5 is outside space.learning_rate" in capsys.readouterr().err
