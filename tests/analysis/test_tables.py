"""The report's tables on real Ray Tune experiments with known numbers."""

import statistics

import pandas as pd
import pytest
from sklearn.metrics import classification_report

from scenetune.analysis import ExperimentError, load_experiment
from scenetune.analysis.classifier_report import best_val_predictions
from scenetune.analysis.tables import classification_table, model_summary, table_by
from tests.analysis.known_trials import KNOWN

pytestmark = pytest.mark.slow


def known_last(backbone, size, seed):
    entry = KNOWN[(backbone, size, seed)]
    return entry["val_accuracy"][-1], sum(entry["epoch_time_s"])


def test_table1_shows_the_known_accuracies_and_times(known_experiment):
    table = table_by(load_experiment(known_experiment), "image_size")
    assert list(table["image_size"]) == [50, 150, 224]
    rows = table.set_index("image_size")
    # the seed report's Table 1: 0.44 / 99 s, 0.75 / 386 s, 0.79 / 746 s
    assert rows["best_val_accuracy"].tolist() == [0.44, 0.75, 0.79]
    assert rows["train_time_s"].tolist() == [99.0, 386.0, 746.0]
    for size in (50, 150, 224):
        values = [known_last(b, s, seed)[0] for (b, s, seed) in KNOWN if s == size and seed in (0, 1)]
        assert rows.loc[size, "trials"] == len(values)
        assert rows.loc[size, "mean_val_accuracy"] == pytest.approx(statistics.mean(values), abs=1e-12)
        assert rows.loc[size, "std_val_accuracy"] == pytest.approx(statistics.stdev(values), abs=1e-12)
    assert rows["test_accuracy"].isna().all(), "no final evaluation: no test accuracy"


def test_table1_by_another_parameter_and_an_unknown_one(known_experiment):
    exp = load_experiment(known_experiment)
    table = table_by(exp, "backbone").set_index("backbone")
    assert table.loc["basic_cnn", "best_val_accuracy"] == 0.32 and table.loc["basic_cnn", "trials"] == 1
    assert table.loc["mobilenet_v2", "best_val_accuracy"] == 0.79 and table.loc["mobilenet_v2", "trials"] == 6
    with pytest.raises(ExperimentError, match="--by: 'colour' is not a parameter of this experiment; known: .*image_size"):
        table_by(exp, "colour")


def test_table2_lays_out_each_backbone_like_the_report(known_experiment):
    table = model_summary(load_experiment(known_experiment)).set_index("pretrained network")
    assert list(table.index) == ["N/A", "MobileNetV2"]
    mobilenet = table.loc["MobileNetV2"]
    assert mobilenet["model"] == "CNN_Pretrained" and mobilenet["val_accuracy"] == 0.79
    for part in ("Base model trainable layers: 8", "Activation: sigmoid", "Pooling: average",
                 "Learning rate: 0.0001", "Epochs: 2", "Batch size: 20", "Image size: 224"):
        assert part in mobilenet["parameters"]
    assert mobilenet["data augmentation"] == ('horizontal_flip = True, rotation_range = 20, zoom_range = 0.15, '
                                              'fill_mode = "nearest"')
    assert table.loc["N/A", "model"] == "Basic_CNN" and table.loc["N/A", "val_accuracy"] == 0.32
    assert mobilenet["trials"] == 6


def test_table3_equals_sklearn_classification_report(known_experiment):
    exp = load_experiment(known_experiment)
    best_id = exp.trials.loc[exp.trials["last_val_accuracy"].idxmax(), "trial_id"]
    predictions = best_val_predictions(exp, best_id)
    assert predictions is not None and len(predictions) > 0
    table = classification_table(predictions).set_index("class")
    expected = classification_report(predictions["true"], predictions["predicted"], output_dict=True)
    classes = sorted(set(predictions["true"]))
    assert list(table.index) == classes + ["accuracy", "macro avg", "weighted avg"]
    for name in classes + ["macro avg", "weighted avg"]:
        for column in ("precision", "recall", "f1-score", "support"):
            assert table.loc[name, column] == expected[name][column], (name, column)
    assert table.loc["accuracy", "f1-score"] == expected["accuracy"]
    assert table.loc["accuracy", "support"] == len(predictions)
    # and the text the report shows has sklearn's two-decimal numbers
    from scenetune.analysis.render import table_markdown

    shown = table_markdown(classification_table(predictions))
    text = classification_report(predictions["true"], predictions["predicted"], digits=2)
    for line in text.splitlines()[2:2 + len(classes)]:
        name, *numbers = line.split()
        row = next(r for r in shown.splitlines() if r.startswith(f"| {name} "))
        assert [c.strip() for c in row.strip("|").split("|")][1:] == numbers


def test_table3_handles_a_class_never_predicted():
    predictions = pd.DataFrame({"path": list("abcdef"), "true": ["x", "x", "y", "y", "z", "z"],
                                "predicted": ["x", "x", "x", "y", "y", "y"],
                                "prob_x": [1.0] * 6, "prob_y": [0.0] * 6, "prob_z": [0.0] * 6})
    table = classification_table(predictions).set_index("class")
    assert table.loc["z", "precision"] == 0 and table.loc["z", "recall"] == 0 and table.loc["z", "support"] == 2
