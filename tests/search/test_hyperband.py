"""`scheduler.name: hyperband`: a real sweep of the classifier under Ray's
HyperBandScheduler (trials paused at its milestones resume from their
checkpoints), and the report draws its brackets' rungs."""

import os

import matplotlib
import pytest
import yaml

from scenetune.analysis import load_experiment
from scenetune.analysis.figures import all_trial_curves
from scenetune.cli import main

pytestmark = pytest.mark.slow

SWEEP = {
    "name": "hb",
    "metric": "val_loss",
    "mode": "min",
    # max_t 4, factor 2: brackets start at 4 (3 trials), 2 (3 trials) and 1; the
    # second bracket pauses its trials at epoch 2 and stops the worst of three.
    "search": {"algorithm": "optuna", "sampler": "random", "num_samples": 6, "seed": 1, "max_concurrent": None},
    "scheduler": {"name": "hyperband", "reduction_factor": 2},
    "space": {"learning_rate": {"loguniform": [1.0e-6, 3.0e-3]}},
    "fixed": {"epochs": 4, "dense_units": 8},
}


@pytest.fixture(scope="module")
def experiment(ray_local, tmp_path_factory, synth_root):
    from tests.conftest import sweep_of

    tmp = tmp_path_factory.mktemp("hb")
    sweep_of(tmp, synth_root, SWEEP)
    return str(tmp / "hb")


def test_hyperband_sweep_pauses_resumes_and_stops_at_its_milestones(experiment):
    exp = load_experiment(experiment)
    assert exp.rungs == [1, 2, 4]
    assert len(exp.trials) == 6
    statuses = exp.trials["status"].value_counts()
    assert set(statuses.index) <= {"completed", "stopped"}, statuses  # none left paused
    assert statuses.get("stopped", 0) >= 1, statuses
    stopped = exp.trials[exp.trials["status"] == "stopped"]
    assert set(stopped["epochs"]) <= {1, 2}
    for trial_id, rows in exp.epochs.groupby("trial_id"):  # a paused trial resumed where it stopped
        epochs = sorted(rows["training_iteration"])
        assert epochs == list(range(1, len(epochs) + 1)), (trial_id, epochs)
    checkpoints = {name for trial in exp.trials["trial_dir"] for name in os.listdir(os.path.join(experiment, trial))
                   if name.startswith("checkpoint_")}
    assert checkpoints, "trials checkpoint at the milestones (where HyperBand pauses them)"
    stored = yaml.safe_load(open(os.path.join(experiment, "scenetune_spec.yaml")))
    assert stored["scheduler"]["name"] == "hyperband" and stored["scheduler"]["max_t"] == 4


def test_report_draws_the_brackets_rungs(experiment, tmp_path):
    assert main(["report", experiment, "--out", str(tmp_path / "report")]) == 0
    markdown = open(tmp_path / "report" / "report.md").read()
    assert "HyperBand (max_t 4, reduction factor 2, ranking by val_loss; its brackets halve at epochs 1, 2, 4)" \
        not in markdown  # the sweep's own metric is val_loss: no separate ranking metric
    assert "HyperBand (max_t 4, reduction factor 2; its brackets halve at epochs 1, 2, 4)" in markdown
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text kept as text in the SVG
        svg = open(all_trial_curves(load_experiment(experiment), None, str(tmp_path / "curves.svg"))).read()
    assert "dotted: HyperBand rungs" in svg
    for rung in (1, 2, 4):
        assert f"rung {rung}<" in svg
