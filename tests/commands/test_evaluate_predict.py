"""``scenetune evaluate`` and ``scenetune predict`` on a small real sweep
(basic_cnn, random init, synthetic scenes, 2 trials x 2 epochs)."""

import json
import os
import shutil

import pandas as pd
import pytest
from sklearn.metrics import classification_report

from scenetune.analysis import best_trials, load_experiment
from scenetune.cli import main
from scenetune.search.run import run_sweep
from scenetune.search.spec import load_spec

pytestmark = pytest.mark.slow

FINAL_FILES = ["test_predictions.csv", "metrics.json", "model.keras"]


@pytest.fixture(scope="module")
def swept(ray_local, tmp_path_factory, synth_root):
    import yaml

    from tests.conftest import BASE_SPEC, deep_update

    tmp = tmp_path_factory.mktemp("evaluate")
    raw = deep_update(BASE_SPEC, {"name": "evalme", "data": {"root": synth_root}, "storage": str(tmp),
                                  "search": {"num_samples": 2},
                                  "space": {"learning_rate": {"loguniform": [1.0e-3, 1.0e-2]}}})
    (tmp / "spec.yaml").write_text(yaml.safe_dump(raw))
    return run_sweep(load_spec(str(tmp / "spec.yaml")))


@pytest.fixture(scope="module")
def evaluated(swept, tmp_path_factory):
    uri = str(tmp_path_factory.mktemp("evaluated") / "evalme")
    shutil.copytree(swept, uri)
    assert main(["evaluate", uri]) == 0
    return uri


def manifest(uri):
    return pd.read_csv(os.path.join(uri, "split.csv"))


def test_evaluate_writes_every_file_for_the_best_trial(evaluated):
    final = os.path.join(evaluated, "final")
    for name in FINAL_FILES:
        assert os.path.getsize(os.path.join(final, name)) > 0, name
    metrics = json.load(open(os.path.join(final, "metrics.json")))
    exp = load_experiment(evaluated)
    assert metrics["trial_id"] == best_trials(exp)[0]["trial_id"]
    assert metrics["retrain"] is False and metrics["checkpoint"].endswith("checkpoint_000001")
    predictions = pd.read_csv(os.path.join(final, "test_predictions.csv"))
    classes = metrics["classes"]
    assert list(predictions.columns) == ["path", "true", "predicted"] + [f"prob_{c}" for c in classes]
    assert metrics["accuracy"] == pytest.approx((predictions["true"] == predictions["predicted"]).mean())
    cams = sorted(os.listdir(os.path.join(final, "gradcam")))
    assert cams and cams == sorted(c["file"] for c in metrics["gradcam"])
    assert {c["correct"] for c in metrics["gradcam"]} <= {True, False}
    for c in metrics["gradcam"]:
        row = predictions.set_index("path").loc[c["path"]]
        assert (row["true"], row["predicted"]) == (c["true"], c["predicted"])
        assert c["correct"] == (c["true"] == c["predicted"])


def test_the_test_split_is_read_once_by_the_evaluation_and_never_by_the_trials(evaluated, capsys):
    split = manifest(evaluated)
    test_paths = split.loc[split["split"] == "test", "path"]
    predictions = pd.read_csv(os.path.join(evaluated, "final", "test_predictions.csv"))
    assert sorted(predictions["path"]) == sorted(test_paths), "exactly the test rows of split.csv"
    assert predictions["path"].is_unique, "each test image once"
    metrics = json.load(open(os.path.join(evaluated, "final", "metrics.json")))
    assert metrics["test_images"] == len(test_paths)
    exp = load_experiment(evaluated)
    for trial_dir in exp.trials["trial_dir"]:
        seen = pd.read_csv(os.path.join(evaluated, trial_dir, "val_predictions.csv"))["path"]
        assert not set(seen) & set(test_paths), f"{trial_dir} read test images"
        assert set(seen) == set(split.loc[split["split"] == "val", "path"])
    # a second evaluation is refused and changes nothing
    before = {name: open(os.path.join(evaluated, "final", name), "rb").read() for name in FINAL_FILES}
    assert main(["evaluate", evaluated]) == 2
    err = capsys.readouterr().err
    assert "already holds the final evaluation: the test split is used once" in err and err.count("\n") == 1
    assert {name: open(os.path.join(evaluated, "final", name), "rb").read() for name in FINAL_FILES} == before


def test_report_after_evaluate_uses_the_test_predictions(evaluated, tmp_path):
    out = tmp_path / "report"
    assert main(["report", evaluated, "--out", str(out)]) == 0
    predictions = pd.read_csv(os.path.join(evaluated, "final", "test_predictions.csv"))
    expected = classification_report(predictions["true"], predictions["predicted"], output_dict=True,
                                     zero_division=0)
    table3 = pd.read_csv(out / "tables" / "table3_classification.csv").set_index("class")
    for name in sorted(set(predictions["true"])) + ["macro avg", "weighted avg"]:
        assert table3.loc[name, "f1-score"] == pytest.approx(expected[name]["f1-score"], abs=1e-12)
        assert table3.loc[name, "support"] == expected[name]["support"]
    metrics = json.load(open(os.path.join(evaluated, "final", "metrics.json")))
    table1 = pd.read_csv(out / "tables" / "table1_by_image_size.csv")
    assert table1["test_accuracy"].dropna().tolist() == [pytest.approx(metrics["accuracy"])]
    markdown = (out / "report.md").read_text()
    assert "classification report on the test split" in markdown and "Figure 2: where the model looks" in markdown
    assert (out / "figures" / "gradcam.png").stat().st_size > 0


def test_evaluate_retrain_fits_afresh_on_train_and_val(swept, tmp_path, capsys):
    uri = str(tmp_path / "evalme")
    shutil.copytree(swept, uri)
    assert main(["evaluate", uri, "--retrain"]) == 0
    assert "retraining trial" in capsys.readouterr().out
    metrics = json.load(open(os.path.join(uri, "final", "metrics.json")))
    exp = load_experiment(uri)
    best = exp.trials.set_index("trial_id").loc[metrics["trial_id"]]
    assert metrics["retrain"] is True and metrics["checkpoint"] is None and metrics["epochs"] == best["epochs"]
    assert metrics["test_images"] == (manifest(uri)["split"] == "test").sum()


def test_evaluate_bad_input(swept, tmp_path, capsys):
    no_checkpoint = str(tmp_path / "nockpt")
    shutil.copytree(swept, no_checkpoint)
    for trial_dir in load_experiment(no_checkpoint).trials["trial_dir"]:
        for name in os.listdir(os.path.join(no_checkpoint, trial_dir)):
            if name.startswith("checkpoint_"):
                shutil.rmtree(os.path.join(no_checkpoint, trial_dir, name))
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in [([str(tmp_path / "missing")], "no such experiment directory"),
                          ([no_checkpoint], "has no checkpoint; pass --retrain"),
                          ([str(empty)], "no trial has reported a result")]:
        assert main(["evaluate"] + args) == 2
        err = capsys.readouterr().err
        assert err.startswith("scenetune: error: ") and message in err and err.count("\n") == 1, err
    assert not os.path.exists(os.path.join(no_checkpoint, "final"))


def test_predict_a_folder_with_an_unreadable_file(evaluated, synth_root, tmp_path, capsys):
    split = manifest(evaluated)
    images = tmp_path / "new"
    images.mkdir()
    chosen = split.loc[split["split"] == "test", "path"].tolist()[:3]
    for path in chosen:
        shutil.copy(os.path.join(synth_root, path), images / os.path.basename(path))
    (images / "broken.jpg").write_bytes(b"this is not a jpeg")
    (images / "notes.txt").write_text("not an image, and not named like one: left alone")
    cams = tmp_path / "cams"
    assert main(["predict", os.path.join(evaluated, "final"), str(images), "--gradcam", str(cams)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 3
    final = pd.read_csv(os.path.join(evaluated, "final", "test_predictions.csv")).set_index("path")
    for line, path in zip(lines, sorted(chosen, key=os.path.basename)):
        assert line.startswith(str(images / os.path.basename(path)) + ": ")
        ranked = line.split(": ", 1)[1].split("  [")[0].split(", ")
        assert len(ranked) == 3
        assert ranked[0].split()[0] == final.loc[path, "predicted"], "same model, same answer as the evaluation"
    assert f"skipped {images / 'broken.jpg'}: " in captured.err and "not an image" in captured.err
    assert "notes.txt" not in captured.err + captured.out
    assert len([n for n in os.listdir(cams) if n.endswith("_gradcam.png")]) == 3

    assert main(["predict", os.path.join(evaluated, "final"), str(images), "--format", "json", "--top", "2"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert len(document["predictions"]) == 3 and all(len(p["top"]) == 2 for p in document["predictions"])
    assert document["skipped"][0]["path"].endswith("broken.jpg")


def test_predict_with_a_trial_checkpoint_takes_classes_from_its_params(evaluated, synth_root, capsys):
    exp = load_experiment(evaluated)
    trial_dir = os.path.join(evaluated, exp.trials["trial_dir"].iloc[0])
    checkpoint = next(os.path.join(trial_dir, n) for n in os.listdir(trial_dir) if n.startswith("checkpoint_"))
    image = os.path.join(synth_root, manifest(evaluated)["path"].iloc[0])
    assert main(["predict", checkpoint, image, "--top", "1"]) == 0
    classes = exp.configs[exp.trials["trial_id"].iloc[0]]["data"]["classes"]
    assert capsys.readouterr().out.split(": ")[1].split()[0] in classes


def test_predict_bad_input(evaluated, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"\x89PNG but not really")
    final = os.path.join(evaluated, "final")
    for args, message in [([str(tmp_path / "no-model.keras"), str(broken)], "no such model file"),
                          ([final, str(broken)], "no readable image among 1 input(s)"),
                          ([final, str(broken), "--top", "0"], "--top: must be at least 1")]:
        assert main(["predict"] + args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("scenetune: error: ") and message in err[-1], err


def test_evaluate_and_report_an_experiment_on_s3(swept, moto_s3, tmp_path, monkeypatch):
    import io

    from scenetune.core import storage

    uri = moto_s3(swept, "scenetune/runs/evalme")
    assert main(["evaluate", uri]) == 0
    final = storage.join(uri, "final")
    names = {name for name, _ in storage.list_dir(final)}
    assert set(FINAL_FILES) | {"gradcam"} <= names
    predictions = pd.read_csv(io.StringIO(storage.read_text(storage.join(final, "test_predictions.csv"))))
    split = manifest(swept)
    assert sorted(predictions["path"]) == sorted(split.loc[split["split"] == "test", "path"])
    monkeypatch.chdir(tmp_path)
    assert main(["report", uri]) == 0
    markdown = (tmp_path / "report-evalme" / "report.md").read_text()
    assert "classification report on the test split" in markdown and "Figure 2: where the model looks" in markdown
