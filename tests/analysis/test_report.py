"""``scenetune report`` on real Ray Tune experiments: every file written,
the known numbers in them, damaged logs reported with warnings, and bad
input refused with one line and exit status 2."""

import os
import re

import pandas as pd
import pytest

from scenetune.analysis import load_experiment
from scenetune.analysis.importance import param_importances, rebuild_study
from scenetune.cli import main

pytestmark = pytest.mark.slow

TABLES = ["trials", "table1_by_image_size", "table2_models", "table3_classification", "importance"]
FIGURES = ["anytime", "best_trial_curves", "accuracy_vs_time", "all_trials", "confusion_matrix", "importance"]


def test_report_writes_tables_figures_markdown_and_html(known_experiment, copy_of, capsys):
    uri = copy_of(known_experiment)
    assert main(["report", uri]) == 0
    out = os.path.join(uri, "report")
    assert capsys.readouterr().out.strip().endswith(f"report: {out}/report.html")
    for stem in TABLES:
        for ext in ("csv", "md", "tex"):
            assert os.path.getsize(os.path.join(out, "tables", f"{stem}.{ext}")) > 0, (stem, ext)
    for name in FIGURES:
        with open(os.path.join(out, "figures", f"{name}.png"), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", name
    table1 = pd.read_csv(os.path.join(out, "tables", "table1_by_image_size.csv"))
    assert table1[["image_size", "best_val_accuracy", "train_time_s"]].values.tolist() == [
        [50, 0.44, 99.0], [150, 0.75, 386.0], [224, 0.79, 746.0]]
    markdown = open(os.path.join(out, "report.md")).read()
    assert "- **7 trials**: 7 completed, 0 stopped early by the scheduler, 0 errored." in markdown
    assert "No final evaluation yet" in markdown and "classification report on the validation split" in markdown
    assert "| 224 | 0.79 | | 746 |" in re.sub(r" +", " ", markdown)
    assert "\\begin{tabular}" in open(os.path.join(out, "tables", "table1_by_image_size.tex")).read()
    html = open(os.path.join(out, "report.html")).read()
    assert html.count('src="data:image/png;base64,') == len(FIGURES)
    assert "figures/" not in html.split("<body>")[1], "the page must not link to files beside it"


def test_report_by_another_parameter_into_another_folder(known_experiment, tmp_path):
    out = tmp_path / "by-backbone"
    assert main(["report", known_experiment, "--by", "backbone", "--out", str(out)]) == 0
    table = pd.read_csv(out / "tables" / "table1_by_backbone.csv").set_index("backbone")
    assert table.loc["basic_cnn", "best_val_accuracy"] == 0.32
    assert main(["report", known_experiment, "--by", "backbone", "--out", str(out)]) == 0, "its own report: rewritten"


def test_damaged_experiment_still_gives_a_report_with_the_warnings(damaged_experiment, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", damaged_experiment, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "result.json: line 2 is not valid JSON (truncated?)" in err
    assert "train_known_empty_00000: empty trial directory; skipped" in err
    markdown = (out / "report.md").read_text()
    assert "- **3 trials**: 1 completed, 1 stopped early by the scheduler (1 at rung 1), 1 errored." in markdown
    assert "rungs at epochs 1, 2, 4" in markdown
    assert "Read with warnings:" in markdown and "empty trial directory" in markdown
    assert "RuntimeError: known failure at epoch 3" in (out / "tables" / "errored_trials.csv").read_text()
    # saved: the stopped trial's 3 epochs not run, at its 2 s an epoch
    assert "about 6.0 s of training" in markdown
    assert (out / "figures" / "all_trials.png").stat().st_size > 0


def test_importance_study_is_rebuilt_from_the_logs(known_experiment):
    exp = load_experiment(known_experiment)
    study = rebuild_study(exp)
    assert len(study.trials) == 7
    rebuilt = sorted((t.params["backbone"], t.params["image_size"], t.params["seed"], t.value) for t in study.trials)
    logged = sorted(zip(exp.trials["config/backbone"], exp.trials["config/image_size"], exp.trials["config/seed"],
                        exp.trials["last_val_accuracy"]))
    assert rebuilt == logged
    scores, evaluator = param_importances(exp)
    assert set(scores.index) == {"backbone", "image_size", "seed"} and scores.sum() == pytest.approx(1.0)
    assert scores["image_size"] > scores["seed"], "the known accuracies depend on the image size, hardly the seed"


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "no such experiment directory"),
    (["{uri}", "--by", "colour"], "--by: 'colour' is not a parameter of this experiment; known: "),
    (["{uri}", "--out", "{busy}"], "holds other files (no earlier report.html); choose an empty or new folder"),
    (["{uri}", "--out", "{file}"], "is a file, not a folder"),
    (["{empty}"], "no trials to report on"),
])
def test_bad_input_is_one_line_and_exit_2(known_experiment, tmp_path, capsys, args, message):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    (tmp_path / "file").write_text("x")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "scenetune_spec.yaml").write_text("name: empty\ntrainable: classifier\n")
    names = {"missing": tmp_path / "nope", "uri": known_experiment, "busy": busy, "file": tmp_path / "file",
             "empty": empty}
    before = sorted(os.listdir(known_experiment))
    assert main(["report"] + [a.format(**names) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scenetune: error: ") and message in err and err.count("\n") == 1, err
    assert sorted(os.listdir(known_experiment)) == before, "nothing written into the experiment"
    assert os.listdir(busy) == ["notes.txt"] and (busy / "notes.txt").read_text() == "mine"


def test_report_of_an_experiment_on_s3(known_experiment, damaged_experiment, moto_s3, tmp_path, monkeypatch,
                                       capsys):
    uri = moto_s3(known_experiment, "scenetune/runs/known")
    monkeypatch.chdir(tmp_path)
    assert main(["report", uri]) == 0  # a remote experiment's report lands in ./report-<name>/
    table1 = pd.read_csv(tmp_path / "report-known" / "tables" / "table1_by_image_size.csv")
    assert table1["best_val_accuracy"].tolist() == [0.44, 0.75, 0.79]
    assert "classification report on the validation split" in (tmp_path / "report-known" / "report.md").read_text()
    damaged = moto_s3(damaged_experiment, "scenetune/runs/damaged")
    assert main(["report", damaged, "--out", str(tmp_path / "damaged")]) == 0
    # pyarrow uploads the empty trial folder as a directory marker: read back, and warned about, with its URI
    assert f"warning: {damaged}/train_known_empty_00000: empty trial directory" in capsys.readouterr().err
    assert "1 errored" in (tmp_path / "damaged" / "report.md").read_text()
