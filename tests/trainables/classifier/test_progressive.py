"""Progressive resizing: a trial grows its images at ASHA's rungs and keeps
what it learned at the small size."""

import json
import math
import os

import pytest

from scenetune.analysis import load_experiment
from scenetune.search.run import run_sweep
from scenetune.search.spec import load_spec
from scenetune.trainables.classifier.config import ClassifierConfig


def test_phases_follow_resize_epochs():
    cfg = ClassifierConfig(backbone="basic_cnn", progressive_resize=[16, 32, 48], resize_epochs=[0, 1, 3], epochs=6)
    assert cfg.image_size == 48
    assert cfg.phases() == [(0, 1, 16), (1, 3, 32), (3, 6, 48)]
    short = ClassifierConfig(backbone="basic_cnn", progressive_resize=[16, 32, 48], resize_epochs=[0, 1, 3], epochs=2)
    assert short.phases() == [(0, 1, 16), (1, 2, 32)]


@pytest.mark.parametrize("kwargs, message", [
    ({"progressive_resize": [32, 16]}, "distinct sizes, smallest first"),
    ({"progressive_resize": [16, 32], "image_size": 64}, "differs from progressive_resize's last size 32"),
    ({"progressive_resize": [16, 32], "resize_epochs": [1, 2]}, "increasing start epoch from 0"),
    ({"resize_epochs": [0, 2]}, "resize_epochs needs progressive_resize"),
])
def test_bad_progressive_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassifierConfig(backbone="basic_cnn", **kwargs)


def test_sweep_sets_resize_epochs_to_the_asha_rungs(make_spec, capsys):
    spec = load_spec(make_spec({"scheduler": {"name": "asha", "grace_period": 2, "reduction_factor": 3},
                                "fixed": {"progressive_resize": [16, 24, 32], "image_size": None, "epochs": 9}}))
    assert spec.fixed["resize_epochs"] == [0, 2, 6]
    from scenetune.cli import main
    path = make_spec({"scheduler": {"name": "none"}, "fixed": {"progressive_resize": [16, 32], "image_size": None}},
                     filename="none.yaml")
    assert main(["sweep", path]) == 2
    assert "without ASHA, set fixed.resize_epochs" in capsys.readouterr().err


@pytest.mark.slow
def test_a_trial_grows_at_the_rungs_and_keeps_its_accuracy(ray_local, make_spec, tmp_path_factory):
    from scenetune.trainables.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("progressive")
    write_synthetic(str(root), classes=3, per_class=80, size=48, seed=3)
    spec = load_spec(make_spec({
        "name": "grow", "data": {"root": str(root)},
        "scheduler": {"name": "asha", "grace_period": 4, "reduction_factor": 2},
        "fixed": {"progressive_resize": [24, 48], "image_size": None, "epochs": 6, "learning_rate": 1.0e-2,
                  "cnn_filters": 16, "dense_units": 32, "batch_size": 16}}))
    exp = load_experiment(run_sweep(spec))
    (trial,) = exp.trials.itertuples()
    with open(os.path.join(exp.uri, trial.trial_dir, "result.json")) as f:
        rows = [json.loads(line) for line in f]
    assert [r["image_size"] for r in rows] == [24, 24, 24, 24, 48, 48]
    before, after = rows[3], rows[4]
    chance_loss = math.log(3)
    assert before["val_accuracy"] > 0.5, "the small phase must have learned something"
    # A model restarted at 48 px would start at chance (accuracy 1/3, val_loss
    # near ln 3); this one carries on from where the small phase left it.
    assert after["val_accuracy"] > 1 / 3 + 0.15
    assert after["val_loss"] < min(before["val_loss"] + 0.1, chance_loss - 0.1)
    assert rows[0]["full_size_epoch_time_s"] == pytest.approx(rows[0]["epoch_time_s"] * 4)
    assert rows[5]["full_size_epoch_time_s"] == pytest.approx(rows[5]["epoch_time_s"])

    from scenetune.analysis.report import write_report
    report = open(os.path.join(os.path.dirname(write_report(exp.uri)), "report.md")).read()
    spent = sum(r["epoch_time_s"] for r in rows)
    full = sum(r["full_size_epoch_time_s"] for r in rows)
    assert "## Progressive resizing" in report
    assert f"spent {spent:.0f} s of fit time" in report and f"about {full:.0f} s" in report
