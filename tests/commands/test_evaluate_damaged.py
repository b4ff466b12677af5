"""``scenetune evaluate`` on an experiment whose logs are damaged in the ways
the log fuzzer (tests/fuzz/test_log_fuzz.py) found ending in a traceback
(exit 1): each is now one line of bad input (exit 2), found before any
model is loaded. A hand-written experiment (no Ray, no TensorFlow): one
trial with an empty checkpoint folder."""

from __future__ import annotations

import json

import pytest

from scenetune.commands.evaluate import EvaluationError, evaluate_experiment


@pytest.fixture
def experiment(tmp_path):
    root = tmp_path / "exp"
    trial = root / "train_a_00000_0"
    (trial / "checkpoint_000001").mkdir(parents=True)
    data = tmp_path / "images"
    data.mkdir()
    (root / "scenetune_spec.yaml").write_text("trainable: classifier\nmetric: val_accuracy\nmode: max\n")
    (root / "split.csv").write_text("path,label,split\nx/1.jpg,x,test\ny/2.jpg,y,test\n")
    config = {"backbone": "basic_cnn", "weights": "none", "image_size": 32, "epochs": 1, "seed": 0,
              "data": {"root": str(data), "manifest": str(root / "split.csv"), "classes": ["x", "y"]}}
    (trial / "params.json").write_text(json.dumps(config))
    (trial / "result.json").write_text(json.dumps({"training_iteration": 1, "trial_id": "a_00000",
                                                   "val_accuracy": 0.5}) + "\n")
    return root


def evaluate(root):
    with pytest.raises(EvaluationError) as caught:
        evaluate_experiment(str(root), progress=lambda message: None)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def damage_config(root, **changes):
    params = root / "train_a_00000_0" / "params.json"
    params.write_text(json.dumps({**json.loads(params.read_text()), **changes}))


def test_a_checkpoint_without_its_model_file_is_bad_input(experiment):
    """Was: Keras' ValueError (file not found) from load_model."""
    assert "checkpoint_000001: no model.keras in the best trial's (a_00000) checkpoint" in evaluate(experiment)


@pytest.mark.parametrize("changes", [{"image_size": "1e999"}, {"epochs": [1, "two", None]}, {"data": None},
                                     {"cnn_blocks": 2.5}])
def test_a_best_trial_config_the_classifier_cannot_take_is_bad_input(experiment, changes):
    """Was: pydantic's ValidationError from ClassifierConfig."""
    damage_config(experiment, **changes)
    message = evaluate(experiment)
    assert "params.json: the best trial's (a_00000) config is not one the classifier takes" in message
    assert next(iter(changes)) in message


def test_manifest_labels_missing_from_the_config_classes_are_bad_input(experiment):
    """Was: KeyError from the split's label index (a line of params.json lost)."""
    damage_config(experiment, data={"root": str(experiment.parent / "images"),
                                    "manifest": str(experiment / "split.csv"), "classes": ["x"]})
    assert "split.csv: labels 'y' are not among the classes of the trial's config" in evaluate(experiment)
