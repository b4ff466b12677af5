"""Trial logs damaged in the ways the log fuzzer (tests/fuzz/test_log_fuzz.py)
found crashing ``load_experiment``, ``scenetune best`` and the report's
tables: each is now skipped or read as missing with a warning naming the
file. The experiments are written by hand (no Ray): two trials of two epochs."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from scenetune.analysis import best_trials, load_experiment
from scenetune.analysis.experiment import ExperimentError
from scenetune.analysis.importance import rebuild_study
from scenetune.analysis.tables import group_keys, model_summary, table_by
from scenetune.cli import main

TRIALS = {"train_a_00000_0": ("a_00000", "basic_cnn", [0.5, 0.6]),
          "train_a_00001_1": ("a_00001", "mobilenet_v2", [0.7, 0.8])}


def config_of(backbone: str) -> dict:
    return {"backbone": backbone, "image_size": 32, "epochs": 2, "seed": 0, "augment": {"rotation_range": 10}}


def result_line(trial_id: str, epoch: int, accuracy: float, **changes) -> str:
    row = {"training_iteration": epoch, "trial_id": trial_id, "val_accuracy": accuracy, "val_loss": 0.5,
           "time_total_s": 10.0 * epoch, "train_time_s": 9.0 * epoch, "epoch": epoch}
    row.update(changes)
    return json.dumps(row)


@pytest.fixture
def experiment(tmp_path):
    """Two completed trials (params.json, result.json, progress.csv); no
    Ray state file, so statuses come from the logs."""
    root = tmp_path / "exp"
    for name, (trial_id, backbone, accuracies) in TRIALS.items():
        trial = root / name
        trial.mkdir(parents=True)
        (trial / "params.json").write_text(json.dumps(config_of(backbone)))
        lines = [result_line(trial_id, e, a) for e, a in enumerate(accuracies, 1)]
        (trial / "result.json").write_text("\n".join(lines) + "\n")
        pd.DataFrame([json.loads(line) for line in lines]).to_csv(trial / "progress.csv", index=False)
    return root


def trial_file(root, name: str, trial: str = "train_a_00000_0"):
    return root / trial / name


def load(root) -> tuple:
    with pytest.warns(UserWarning) as caught:
        exp = load_experiment(str(root))
    return exp, [str(w.message) for w in caught]


def test_a_result_line_that_is_not_utf8_costs_that_epoch_only(experiment):
    result = trial_file(experiment, "result.json")
    lines = result.read_bytes().splitlines()
    result.write_bytes(lines[0] + b"\n" + lines[1][:20] + b"\xe9t\xe9" + lines[1][20:] + b"\n")
    exp, notes = load(experiment)
    assert any(n.endswith("result.json: line 2 is not UTF-8 text; skipped") for n in notes), notes
    assert exp.trials.set_index("trial_id").loc["a_00000", "epochs"] == 1


@pytest.mark.parametrize("name", ["params.json", "progress.csv"])
def test_a_params_or_progress_file_that_is_not_utf8_is_skipped_with_a_warning(experiment, name):
    path = trial_file(experiment, name)
    path.write_bytes(b"\xff\xfe" + path.read_bytes())
    if name == "progress.csv":
        trial_file(experiment, "result.json").unlink()  # progress.csv is read only then
    exp, notes = load(experiment)
    assert any(f"{name}: not UTF-8 text (byte 0xff at offset 0)" in n for n in notes), notes
    assert "a_00001" in set(exp.trials["trial_id"])


def test_a_state_file_that_is_not_utf8_or_has_damaged_entries_leaves_statuses_to_the_logs(experiment):
    state = experiment / "experiment_state-2026-01-01_00-00-00.json"
    state.write_bytes(b'{"trial_data": [0, \xff]}')
    exp, notes = load(experiment)
    assert any("experiment_state-2026-01-01_00-00-00.json: not UTF-8 text" in n for n in notes), notes
    state.write_text(json.dumps({"trial_data": [0, ["{", "{}"], [json.dumps({"trial_id": "a_00000",
                                                                               "status": 5}), "[]"]]}))
    exp, notes = load(experiment)
    assert sum("of trial_data unreadable" in n for n in notes) == 3, notes
    assert set(exp.trials["status"]) == {"completed"}


def test_a_state_file_without_a_list_of_trials_leaves_statuses_to_the_logs(experiment):
    """The state file is read a trial at a time (core/state_file.py): what
    is not Ray's experiment state gives one note naming it."""
    state = experiment / "experiment_state-2026-01-01_00-00-00.json"
    for text in ('{"trial_data": {"a": 1}}', '{"runner_data": {}}', '{"trial_data": [["{}", "{}"]', "[]"):
        state.write_text(text)
        exp, notes = load(experiment)
        assert any("experiment_state-2026-01-01_00-00-00.json: unreadable (" in n and n.endswith("inferred from the "
                   "trial logs") for n in notes), (text, notes)
        assert set(exp.trials["status"]) == {"completed"}


def test_a_lone_surrogate_escape_in_the_state_file_makes_that_trial_unreadable(experiment):
    """The file's own escape decodes to half a UTF-16 pair inside the
    trial's text: that entry is damaged, the other is read."""
    state = experiment / "experiment_state-2026-01-01_00-00-00.json"
    good = json.dumps({"trial_id": "a_00001", "status": "TERMINATED"})
    bad = json.dumps({"trial_id": "a_00000", "status": "TERMINATED"}).replace("TERMINATED", "TERM@")
    text = json.dumps({"trial_data": [[bad, "{}"], [good, "{}"]]}).replace("@", "\\ud800")
    state.write_text(text)
    exp, notes = load(experiment)
    assert sum("trial 1 of trial_data unreadable" in n for n in notes) == 1, notes
    assert not any("trial 2 of trial_data" in n for n in notes), notes


@pytest.mark.parametrize("line", ["5", "null", '"text"', "[1, 2]"])
def test_a_result_line_that_is_not_a_json_object_is_skipped(experiment, line):
    result = trial_file(experiment, "result.json")
    result.write_text(result.read_text().replace(result.read_text().splitlines()[0], line, 1))
    exp, notes = load(experiment)
    assert any(n.endswith("result.json: line 1 is not a JSON object; skipped") for n in notes), notes
    assert any(n.endswith("result.json: epochs [1] missing; taken from progress.csv") for n in notes), notes
    assert len(exp.epochs) == 4


@pytest.mark.parametrize("value", ["text", [], None, 2.5, "1e999"])
def test_a_result_without_a_whole_epoch_number_is_skipped(experiment, value):
    """Was: '<' between str and int (sorting the epochs), unhashable list,
    and ``int(NaN)`` in ``scenetune best``."""
    result = trial_file(experiment, "result.json")
    result.write_text(result_line("a_00000", 1, 0.5) + "\n" + result_line("a_00000", 2, 0.9,
                                                                          training_iteration=value) + "\n")
    exp, notes = load(experiment)
    assert any("result.json: line 2: no epoch number" in n for n in notes), notes
    assert sorted(exp.epochs["training_iteration"]) == [1, 1, 2]  # a last epoch lost: no gap to fill
    assert best_trials(exp)[0]["trial_id"] == "a_00001"


def test_a_result_without_a_trial_id_takes_it_from_the_directory(experiment):
    result = trial_file(experiment, "result.json")
    rows = [json.loads(line) for line in result.read_text().splitlines()]
    result.write_text("\n".join(json.dumps({k: v for k, v in r.items() if k != "trial_id"}) for r in rows) + "\n")
    with pytest.warns(UserWarning, match="no experiment_state"):
        exp = load_experiment(str(experiment))
    assert sorted(exp.trials["trial_id"]) == ["a", "a_00001"]  # "train_a_..." -> "a": the name's second part


def test_two_trials_claiming_one_id_keep_the_first(experiment):
    result = trial_file(experiment, "result.json", "train_a_00001_1")
    result.write_text(result.read_text().replace('"a_00001"', '"a_00000"'))
    exp, notes = load(experiment)
    assert any("trial id 'a_00000' already read from another trial directory; left out" in n for n in notes)
    assert list(exp.trials["trial_id"]) == ["a_00000"]


@pytest.mark.parametrize("document", ["[1, 2]", "1.5", "null"])
def test_params_json_that_is_not_an_object_falls_back_to_the_results(experiment, document):
    trial_file(experiment, "params.json").write_text(document)
    exp, notes = load(experiment)
    assert any("params.json: not a JSON object" in n for n in notes), notes
    assert any(n.endswith("train_a_00000_0: no readable config or result yet (a trial just starting?); skipped")
               for n in notes), notes  # its results hold no config either
    assert list(exp.trials["trial_id"]) == ["a_00001"]


@pytest.mark.parametrize("epochs", ["text", float("nan"), [], "", 2.5, True])
def test_an_epochs_config_that_is_not_a_whole_number_leaves_the_plan_unknown(experiment, epochs):
    """Was: ValueError (ASHA's cap: int(NaN)), TypeError ('<' against a list or text)."""
    (experiment / "scenetune_spec.yaml").write_text(
        "scheduler: {name: asha, max_t: 4, grace_period: 1, reduction_factor: 2}\n")
    trial_file(experiment, "params.json").write_text(json.dumps({**config_of("basic_cnn"), "epochs": epochs}))
    with pytest.warns(UserWarning, match="no experiment_state"):
        exp = load_experiment(str(experiment))
    trial = exp.trials.set_index("trial_id").loc["a_00000"]
    assert pd.isna(trial["planned_epochs"]) and trial["status"] == "completed"


@pytest.mark.parametrize("value", ["text", "0.5", {"nested": 1}, [], True, 10 ** 400])
def test_a_metric_value_of_the_wrong_type_reads_as_missing(experiment, value):
    """Was: float() of text, a list or a dict in ``scenetune best``, and
    sorting text among floats with ``--scope all``."""
    result = trial_file(experiment, "result.json", "train_a_00001_1")
    result.write_text(result_line("a_00001", 1, 0.7) + "\n" + result_line("a_00001", 2, value) + "\n")
    exp, notes = load(experiment)
    assert any("train_a_00001_1" in n and "val_accuracy" in n for n in notes), notes
    assert pd.api.types.is_float_dtype(exp.epochs["val_accuracy"])
    assert exp.epochs["val_accuracy"].isna().sum() == 1
    for scope in ("last", "all"):  # its last epoch with a value: 0.7
        assert best_trials(exp, scope=scope)[0] | {"metrics": None, "config": None} == {
            "trial_id": "a_00001", "status": "completed", "epoch": 1, "val_accuracy": 0.7, "metrics": None,
            "config": None}


def test_a_lone_surrogate_escape_skips_its_line(experiment):
    """Was: pyarrow refusing the string when the epochs frame is built."""
    result = trial_file(experiment, "result.json")
    lines = result.read_text().splitlines()
    result.write_text(lines[0] + "\n" + lines[1].replace('"epoch"', '"ep\\ud800och"') + "\n")
    exp, notes = load(experiment)
    assert any(n.endswith("result.json: line 2 is not valid JSON (truncated?); skipped") for n in notes), notes
    assert len(exp.epochs) == 3


def test_best_of_a_metric_that_is_text_only_is_bad_input(experiment, capsys):
    for name, (trial_id, _, _) in TRIALS.items():
        (experiment / name / "result.json").write_text(result_line(trial_id, 1, 0.5, extractor="inception") + "\n")
    with pytest.warns(UserWarning):
        exp = load_experiment(str(experiment))
    with pytest.raises(ExperimentError, match="'extractor' was not reported as a number"):
        best_trials(exp, metric="extractor")


@pytest.mark.parametrize("backbone", [[1, "two", None], {}, 5])
def test_the_report_tables_group_a_damaged_config_value_as_its_text(experiment, backbone):
    """Was: ``groupby`` on an unhashable list or object, or sorting a number
    among text (Table 1, Table 2, the importance study)."""
    trial_file(experiment, "params.json").write_text(json.dumps({**config_of("basic_cnn"), "backbone": backbone,
                                                                 "augment": "text"}))
    with pytest.warns(UserWarning, match="no experiment_state"):
        exp = load_experiment(str(experiment))
    table = model_summary(exp)
    assert sorted(map(str, table["model"])) == sorted([str(backbone), "mobilenet_v2"])
    assert "text" in set(table["data augmentation"])  # an augment that is not an object, shown as it is
    assert len(table_by(exp, "backbone")) == 2
    rebuild_study(exp)  # too few trials to measure; no crash on the way


def test_group_keys_leave_one_kind_of_value_as_it_is():
    numbers = pd.Series([224, 150, None, 224])
    assert group_keys(numbers) is numbers
    mixed = group_keys(pd.Series([224, "224px", [1], None]))
    assert list(mixed[:3]) == ["224", "224px", "[1]"] and pd.isna(mixed[3])


def test_the_cli_warns_and_exits_0_on_such_an_experiment(experiment, capsys):
    trial_file(experiment, "result.json").write_bytes(b'5\n{"training_iteration": "x"}\n\xff\n')
    assert main(["best", str(experiment)]) == 0
    err = capsys.readouterr().err
    for warning in ("line 1 is not a JSON object", "line 2: no epoch number (training_iteration 'x')",
                    "line 3 is not UTF-8 text"):
        assert f"train_a_00000_0/result.json: {warning}; skipped" in err, err
    assert "Traceback" not in err
