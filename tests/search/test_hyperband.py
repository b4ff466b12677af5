"""`scheduler.name: hyperband`: a real sweep of the classifier under Ray's
HyperBandScheduler (trials paused at its milestones resume from their
checkpoints), and the report draws its brackets' rungs."""

import json
import os
import subprocess
import sys

import matplotlib
import pytest
import yaml

from scenetune.analysis import load_experiment
from scenetune.analysis.figures import all_trial_curves
from scenetune.cli import main
from scenetune.search.spec import parse_spec

pytestmark = pytest.mark.slow

SWEEP = {
    "name": "hb",
    "metric": "val_loss",
    "mode": "min",
    # max_t 4, factor 2: brackets start at 4 (3 trials), 2 (3 trials) and 1; the
    # second bracket pauses its trials at epoch 2 and stops the worst of three.
    "search": {"algorithm": "optuna", "sampler": "random", "num_samples": 6, "seed": 1, "max_concurrent": None},
    "scheduler": {"name": "hyperband", "reduction_factor": 2},
    # checkpoints at the milestones and the last epoch only (not every quarter, as "auto" would: every epoch here)
    "checkpoint": {"num_to_keep": 1, "frequency": "rungs"},
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
    stored = yaml.safe_load(open(os.path.join(experiment, "scenetune_spec.yaml")))
    assert stored["scheduler"]["name"] == "hyperband" and stored["scheduler"]["max_t"] == 4
    assert_checkpoints_at_the_milestones(exp, parse_spec(stored))


def assert_checkpoints_at_the_milestones(exp, spec) -> None:
    """What ``checkpoint.frequency: rungs`` promises: a checkpoint at each
    HyperBand milestone (where it pauses a trial, which resumes from there)
    and at a trial's last epoch, at no other epoch; with ``num_to_keep: 1``
    the trial's folder keeps the newest, its last epoch's (a stopped trial
    stops at a milestone)."""
    assert spec.checkpoint_epochs() == [1, 2], "the milestones below max_t"
    promised = {*spec.checkpoint_epochs(), spec.max_epochs()}
    trials = exp.trials.set_index("trial_id")
    for trial_id, rows in exp.epochs.groupby("trial_id"):
        ran = sorted(rows["training_iteration"])
        checkpointed = sorted(rows.loc[rows["checkpoint_mb"] > 0, "training_iteration"])
        assert checkpointed == [e for e in ran if e in promised], (trial_id, ran, checkpointed)
        trial_dir = os.path.join(exp.uri, trials.loc[trial_id, "trial_dir"])
        (kept,) = [name for name in os.listdir(trial_dir) if name.startswith("checkpoint_")]
        with open(os.path.join(trial_dir, kept, "state.json")) as f:
            assert json.load(f)["epoch"] == ran[-1], (trial_id, kept)


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


FULL_BAND = {
    "name": "band",
    "metric": "val_accuracy",
    "mode": "max",
    # max_t 9, factor 3: brackets of 3 trials run to 9 epochs, 5 paused at 3
    # and 9 paused at 1: one band, 17 trials, with warm processes.
    "search": {"algorithm": "optuna", "sampler": "random", "num_samples": 17, "seed": 2, "max_concurrent": None},
    "scheduler": {"name": "hyperband", "reduction_factor": 3},
    "space": {"learning_rate": {"loguniform": [1.0e-4, 3.0e-2]}},
    "fixed": {"epochs": 9, "dense_units": 8, "cnn_filters": 4},
}


def test_a_full_band_with_warm_processes_finishes(ray_local, tmp_path, synth_root):
    """The real classifier under HyperBand, trial processes reused: every
    trial ends (none left paused or pending), a paused trial resumes where it
    stopped, the brackets stop trials at their milestones, and processes did
    serve several trials."""
    from tests.conftest import sweep_of

    sweep_of(tmp_path, synth_root, FULL_BAND)
    exp = load_experiment(str(tmp_path / "band"))
    assert len(exp.trials) == 17
    assert set(exp.trials["status"]) <= {"completed", "stopped"}, exp.trials["status"].value_counts()
    assert sorted(exp.trials["epochs"].value_counts().index) == [1, 3, 9]
    pids = set()
    for trial_dir in exp.trials["trial_dir"]:
        rows = [json.loads(line) for line in open(os.path.join(exp.uri, trial_dir, "result.json")) if line.strip()]
        assert [r["training_iteration"] for r in rows] == list(range(1, len(rows) + 1)), trial_dir
        pids |= {r["pid"] for r in rows}
    assert len(pids) < 17, "trials ran in reused processes"


@pytest.mark.parametrize("patched", [False, True], ids=["ray-alone", "scenetune"])
def test_a_process_that_cannot_be_reset_is_replaced_not_left_to_hang_the_band(tmp_path, patched):
    """Every reuse of a warm process fails (its previous trial's thread gets
    no time to end). Ray alone marks the trial errored without telling
    HyperBand, whose bracket then waits for it until the time budget ends the
    sweep; scenetune starts the trial in a new process and the band finishes."""
    out = tmp_path / "band.json"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([sys.executable, "-m", "tests.search.reset_failures", str(out)] + (["--patched"] if patched else []),
                   cwd=root, check=True, timeout=300, capture_output=True)
    band = json.load(open(out))
    if not patched:
        assert any("reset_config()" in error for error in band["errors"]), band["errors"]
        assert band["seconds"] >= 59, "the band waited for its errored trials until the time budget ran out"
        return
    assert band["statuses"] == ["TERMINATED"] * 17, band
    assert not band["errors"]
    assert band["seconds"] < 170, "finished, not stopped by the time budget (180 s)"
    for name, epochs in band["epochs"].items():
        assert epochs == list(range(1, len(epochs) + 1)), (name, epochs)
    assert band["logged"] == band["epochs"], "result.json keeps every row of a trial paused and resumed"
