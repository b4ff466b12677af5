"""The classifier trainable under Ray Tune: every registered backbone reports
the contract's metrics each epoch, and a retried trial resumes."""

import json
import os

import pandas as pd
import pytest

from scenetune.analysis import load_experiment
from scenetune.core.registry import TRAINABLES
from scenetune.search.run import run_sweep
from scenetune.search.spec import load_spec
from scenetune.trainables.classifier.backbones import BACKBONES

pytestmark = pytest.mark.slow


def read_results(trial_dir):
    with open(os.path.join(trial_dir, "result.json")) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_two_epochs_report_every_contract_metric(ray_local, make_spec, backbone):
    size = max(BACKBONES[backbone].min_size, 32)
    spec = load_spec(make_spec({"name": f"bb-{backbone}",
                                "fixed": {"backbone": backbone, "image_size": size, "trainable_layers": 4}}))
    exp = load_experiment(run_sweep(spec))
    (trial,) = exp.trials.itertuples()
    assert trial.status == "completed"
    rows = read_results(os.path.join(exp.uri, trial.trial_dir))
    assert [r["epoch"] for r in rows] == [1, 2]
    assert [r["training_iteration"] for r in rows] == [1, 2]
    for row in rows:
        for metric in TRAINABLES["classifier"].metrics:
            assert isinstance(row[metric], (int, float)), metric
        assert 0 <= row["val_accuracy"] <= 1 and row["val_loss"] > 0
        assert row["epoch_time_s"] > 0 and row["images_per_s"] > 0
    assert rows[1]["train_time_s"] == pytest.approx(rows[0]["train_time_s"] + rows[1]["epoch_time_s"])
    # deployment metrics: the float32 weights, and one image's latency measured once (the same every epoch)
    assert rows[0]["model_mb"] == pytest.approx(4 * rows[0]["total_params"] / 1e6)
    assert 0 < rows[0]["latency_ms"] == rows[1]["latency_ms"] < 10_000
    predictions = pd.read_csv(os.path.join(exp.uri, trial.trial_dir, "val_predictions.csv"))
    classes = spec_classes(exp)
    assert list(predictions.columns) == ["path", "true", "predicted"] + [f"prob_{c}" for c in classes]
    manifest = pd.read_csv(os.path.join(exp.uri, "split.csv"))
    assert sorted(predictions["path"]) == sorted(manifest.loc[manifest["split"] == "val", "path"])
    assert (predictions[[f"prob_{c}" for c in classes]].sum(axis=1) - 1).abs().max() < 1e-3


def spec_classes(exp):
    return next(iter(exp.configs.values()))["data"]["classes"]


# steps: steps_per_execution, restored too; frequency: checkpoints every N epochs (the
# fault comes after epoch 2, which checkpoints with both); the process is reused (the default).
@pytest.mark.parametrize("keep, steps, frequency", [(1, 1, 1), (3, 3, 2)])
def test_a_retried_trial_resumes_at_its_next_epoch(ray_local, make_spec, keep, steps, frequency):
    spec = load_spec(make_spec({"name": f"retry-{keep}", "failure": {"max_failures": 1},
                                "checkpoint": {"num_to_keep": keep, "frequency": frequency},
                                "fixed": {"epochs": 4, "debug_fault": {"epoch": 2, "mode": "once"},
                                          "steps_per_execution": steps}}))
    exp = load_experiment(run_sweep(spec))
    (trial,) = exp.trials.itertuples()
    assert trial.failures == 1, "the injected fault must have failed the first attempt"
    assert trial.status == "completed" and trial.epochs == 4
    rows = exp.epochs.sort_values("training_iteration")
    assert list(rows["epoch"]) == [1, 2, 3, 4], "epochs continue after the retry, not from 1"
    assert list(rows["training_iteration"]) == [1, 2, 3, 4]
    assert list(rows["iterations_since_restore"])[2] == 1, "epoch 3 ran in the retried process"
    assert rows["train_time_s"].is_monotonic_increasing
    written = list(rows["checkpoint_mb"] > 0)
    assert written == [e % frequency == 0 or e == 4 for e in range(1, 5)], "checkpoints at the asked epochs only"


def test_a_trial_that_always_fails_is_errored_after_its_retries(ray_local, make_spec):
    spec = load_spec(make_spec({"name": "always", "failure": {"max_failures": 1},
                                "fixed": {"debug_fault": {"epoch": 2, "mode": "always"}}}))
    exp = load_experiment(run_sweep(spec))
    (trial,) = exp.trials.itertuples()
    assert trial.status == "errored"
    assert trial.failures == 2  # the first attempt and its one retry
    assert "debug_fault: failing at epoch 2" in trial.error
