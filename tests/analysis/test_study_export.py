"""``scenetune export --optuna``: an experiment written as an Optuna study,
read back with ``optuna.load_study`` and held against the experiment's logs
and ``scenetune best``."""

from __future__ import annotations

import datetime
import json
import os
import warnings

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState

from scenetune.analysis import best_trials, load_experiment, pareto_trials
from scenetune.analysis.importance import rebuild_study
from scenetune.analysis.study import ExportError, export_study
from scenetune.cli import main
from scenetune.core.errors import UserError
from scenetune.spaces import optuna_distribution, parse_space

STATE_OF = {"completed": TrialState.COMPLETE, "stopped": TrialState.PRUNED, "errored": TrialState.FAIL}


def _read(uri: str):
    with warnings.catch_warnings():  # the damaged experiment's own warnings: test_experiment_read checks them
        warnings.simplefilter("ignore")
        return load_experiment(uri)


def _edit_spec(uri: str, change) -> None:
    path = os.path.join(uri, "scenetune_spec.yaml")
    with open(path) as f:
        spec = yaml.safe_load(f)
    change(spec)
    with open(path, "w") as f:
        yaml.safe_dump(spec, f)


def _by_id(study: optuna.Study) -> dict[str, optuna.trial.FrozenTrial]:
    return {t.user_attrs["trial_id"]: t for t in study.trials}


def _snapshot(study: optuna.Study) -> list[tuple]:
    return [(t.number, t.state, t.values, t.params, t.distributions, t.user_attrs, t.intermediate_values)
            for t in study.trials]


def _epoch_values(exp, trial_id: str, metric: str) -> dict[int, float]:
    rows = exp.epochs[exp.epochs["trial_id"] == trial_id].dropna(subset=[metric])
    return {int(s): float(v) for s, v in zip(rows["training_iteration"], rows[metric])}


def test_every_trial_is_exported_with_its_params_distributions_values_and_epochs(known_experiment, tmp_path):
    exp = load_experiment(known_experiment)
    url = f"sqlite:///{tmp_path}/study.db"
    exported = datetime.datetime.now()
    export_study(exp, url)
    study = optuna.load_study(study_name="known", storage=url)  # default name: the experiment's
    assert study.directions == [StudyDirection.MAXIMIZE] and study.metric_names == ["val_accuracy"]
    assert study.user_attrs["experiment"] == exp.uri
    trials = _by_id(study)
    assert set(trials) == set(exp.trials["trial_id"]) and len(study.trials) == 7
    space = {k: optuna_distribution(p) for k, p in parse_space(exp.spec["space"]).items()}
    for _, row in exp.trials.iterrows():
        trial = trials[row["trial_id"]]
        assert trial.state == TrialState.COMPLETE
        assert trial.value == row["last_val_accuracy"] == trial.user_attrs["last_val_accuracy"]
        assert trial.intermediate_values == _epoch_values(exp, row["trial_id"], "val_accuracy")
        assert list(trial.intermediate_values) == [1, 2]
        assert trial.params == {k: row[f"config/{k}"] for k in ("backbone", "image_size", "seed")}
        assert trial.distributions == space
        assert trial.user_attrs["trial_dir"] == row["trial_dir"] and trial.user_attrs["epochs"] == 2
        assert trial.user_attrs["status"] == "completed" and trial.user_attrs["train_time_s"] == row["train_time_s"]
        # each trial's own first start and last result (optuna-dashboard's timeline), not the export's moment
        assert trial.datetime_start == datetime.datetime.fromtimestamp(row["started_at"])
        assert trial.datetime_complete == datetime.datetime.fromtimestamp(row["ended_at"])
        assert trial.datetime_start < trial.datetime_complete < exported
    assert len({t.datetime_start for t in study.trials}) > 1, "the trials started at different moments"


@pytest.mark.parametrize("experiment", ["known_experiment", "damaged_experiment"])
def test_the_study_ranks_its_trials_as_scenetune_best_top_n(experiment, request, tmp_path):
    uri = request.getfixturevalue(experiment)
    exp = _read(uri)
    url = f"sqlite:///{tmp_path}/study.db"
    export_study(exp, url)
    study = optuna.load_study(study_name=exp.name, storage=url)
    for trial in study.trials:  # Optuna gives a FAIL trial no value; it keeps it as a user attribute
        assert trial.state == STATE_OF[trial.user_attrs["status"]]
        assert trial.value == (None if trial.state == TrialState.FAIL else trial.user_attrs["last_val_accuracy"])
    ranked = sorted(study.trials, key=lambda t: t.user_attrs["last_val_accuracy"], reverse=True)
    for top in range(1, len(exp.trials) + 1):
        best = best_trials(exp, top=top)
        assert [t.user_attrs["trial_id"] for t in ranked[:top]] == [e["trial_id"] for e in best]
        assert [t.user_attrs["last_val_accuracy"] for t in ranked[:top]] == [e["val_accuracy"] for e in best]
        assert [t.state for t in ranked[:top]] == [STATE_OF[e["status"]] for e in best]
    if experiment == "known_experiment":  # all complete: Optuna's own best is scenetune's
        assert study.best_trial.user_attrs["trial_id"] == best_trials(exp)[0]["trial_id"]


def test_asha_stopped_trials_are_pruned_and_errored_ones_failed(damaged_experiment, tmp_path):
    exp = _read(damaged_experiment)
    before = sorted(os.listdir(damaged_experiment))
    url = f"sqlite:///{tmp_path}/study.db"
    export_study(exp, url, "asha")
    trials = {t.params["seed"]: t for t in optuna.load_study(study_name="asha", storage=url).trials}
    assert trials[10].state == TrialState.COMPLETE and trials[10].value == 0.80
    assert trials[10].intermediate_values == {1: 0.50, 2: 0.60, 3: 0.70, 4: 0.80}
    assert trials[11].state == TrialState.PRUNED and trials[11].value == 0.10  # its last value, as Optuna's pruned
    assert trials[11].intermediate_values == {1: 0.10} and trials[11].user_attrs["status"] == "stopped"
    assert trials[12].state == TrialState.FAIL and trials[12].value is None
    assert trials[12].intermediate_values == {1: 0.90} and trials[12].user_attrs["last_val_accuracy"] == 0.90
    assert "known failure at epoch 3" in trials[12].user_attrs["error"]
    assert sorted(os.listdir(damaged_experiment)) == before, "nothing written into the experiment"


def test_running_and_pending_trials_are_exported_as_failed(known_experiment, copy_of, tmp_path):
    uri = copy_of(known_experiment)
    state_file = next(n for n in sorted(os.listdir(uri)) if n.startswith("experiment_state-"))
    with open(os.path.join(uri, state_file)) as f:
        state = json.load(f)
    marked = {}
    for entry, status in zip(state["trial_data"], ["RUNNING", "PENDING"]):
        trial = json.loads(entry[0])
        trial["status"] = status
        entry[0] = json.dumps(trial)
        marked[trial["trial_id"]] = status.lower()
    with open(os.path.join(uri, state_file), "w") as f:
        json.dump(state, f)
    exp = load_experiment(uri)
    url = f"sqlite:///{tmp_path}/study.db"
    export_study(exp, url)
    trials = _by_id(optuna.load_study(study_name="known", storage=url))
    assert len(trials) == 7
    for trial_id, trial in trials.items():
        if trial_id in marked:
            assert trial.state == TrialState.FAIL and trial.value is None
            assert trial.user_attrs["status"] == marked[trial_id] and "last_val_accuracy" in trial.user_attrs
            assert len(trial.intermediate_values) == 2 and len(trial.params) == 3
        else:
            assert trial.state == TrialState.COMPLETE


def test_a_value_outside_an_edited_space_is_left_out_of_the_params_and_kept(known_experiment, copy_of, tmp_path):
    uri = copy_of(known_experiment)
    _edit_spec(uri, lambda spec: spec["space"].update(image_size={"choice": [50, 150]}))
    exp = load_experiment(uri)
    url = f"sqlite:///{tmp_path}/study.db"
    export_study(exp, url)
    trials = optuna.load_study(study_name="known", storage=url).trials
    assert len(trials) == 7 and all(t.state == TrialState.COMPLETE for t in trials)
    outside = [t for t in trials if "outside_space" in t.user_attrs]
    assert len(outside) == 3  # the three 224-pixel trials
    for trial in outside:
        assert trial.user_attrs["outside_space"] == {"image_size": 224}
        assert set(trial.params) == {"backbone", "seed"} and "image_size" not in trial.distributions
    for trial in trials:
        if trial not in outside:
            assert trial.distributions["image_size"] == CategoricalDistribution([50, 150])
    assert len(rebuild_study(exp).trials) == 4, "importance still leaves such trials out"


def test_without_a_spec_space_the_distributions_are_inferred(known_experiment, copy_of, tmp_path):
    uri = copy_of(known_experiment)
    _edit_spec(uri, lambda spec: spec.pop("space"))
    exp = load_experiment(uri)
    url = f"sqlite:///{tmp_path}/study.db"
    export_study(exp, url)
    trial = optuna.load_study(study_name="known", storage=url).trials[0]
    assert trial.distributions == {"backbone": CategoricalDistribution(["basic_cnn", "mobilenet_v2"]),
                                   "image_size": IntDistribution(50, 224), "seed": IntDistribution(0, 1)}


def test_a_multi_objective_experiment_has_a_value_per_objective_and_the_same_pareto_set(known_experiment, copy_of,
                                                                                        tmp_path):
    uri = copy_of(known_experiment)
    _edit_spec(uri, lambda spec: spec.update(objectives=[{"metric": "val_accuracy", "mode": "max"},
                                                         {"metric": "train_time_s", "mode": "min"}]))
    exp = load_experiment(uri)
    url = f"sqlite:///{tmp_path}/study.db"
    export_study(exp, url)
    study = optuna.load_study(study_name="known", storage=url)
    assert study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    assert study.metric_names == ["val_accuracy", "train_time_s"]
    for _, row in exp.trials.iterrows():
        trial = _by_id(study)[row["trial_id"]]
        assert trial.values == [row["last_val_accuracy"], row["last_train_time_s"]]
    pareto = {e["trial_id"] for e in pareto_trials(exp)}
    assert {t.user_attrs["trial_id"] for t in study.best_trials} == pareto and 1 < len(pareto) < 7


def test_exporting_again_to_the_same_study_is_refused_and_changes_nothing(known_experiment, tmp_path):
    exp = load_experiment(known_experiment)
    url = f"sqlite:///{tmp_path}/study.db"
    export_study(exp, url)
    first = _snapshot(optuna.load_study(study_name="known", storage=url))
    with pytest.raises(ExportError, match=r"already holds a study named 'known'; pick another --study-name or "
                                          r"storage") as caught:
        export_study(exp, url)
    assert isinstance(caught.value, UserError) and "\n" not in str(caught.value)
    assert _snapshot(optuna.load_study(study_name="known", storage=url)) == first
    assert optuna.get_all_study_names(storage=url) == ["known"]
    export_study(exp, url, "known-2")  # another name in the same storage is fine
    assert sorted(optuna.get_all_study_names(storage=url)) == ["known", "known-2"]


@pytest.mark.parametrize("url, message", [
    ("study.db", "optuna cannot open this storage"),
    ("nosuchdb://host/study", "optuna cannot open this storage"),
    ("sqlite:///{tmp}/no/such/folder/study.db", "optuna cannot open this storage"),
    ("sqlite:///{tmp}/notes.txt", "optuna cannot open this storage"),
    ("sqlite://", "an in-memory database would vanish"),
])
def test_a_storage_optuna_cannot_open_is_refused_in_one_line(known_experiment, tmp_path, url, message):
    (tmp_path / "notes.txt").write_text("not a database\n" * 100)
    url = url.format(tmp=tmp_path)
    with pytest.raises(ExportError) as caught:
        export_study(load_experiment(known_experiment), url)
    assert message in str(caught.value) and f"--optuna {url}" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert (tmp_path / "notes.txt").read_text() == "not a database\n" * 100
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_cli_export_prints_one_line(damaged_experiment, tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/study.db"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["export", damaged_experiment, "--optuna", url]) == 0
        assert main(["export", damaged_experiment, "--optuna", url, "--study-name", "again"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"wrote 3 trials (1 complete, 1 pruned, 1 failed) to study {name} at {url}; "
                   f"view it with: optuna-dashboard {url}" for name in ("damaged", "again")]
    assert len(optuna.load_study(study_name="again", storage=url).trials) == 3


@pytest.mark.parametrize("args, message", [
    (["--optuna", "study.db"], "--optuna study.db: optuna cannot open this storage"),
    (["--optuna", "sqlite:///{tmp}/study.db", "--study-name", "taken"], "already holds a study named 'taken'"),
])
def test_cli_export_bad_input_is_one_line_and_exit_2(known_experiment, tmp_path, capsys, args, message):
    optuna.create_study(study_name="taken", storage=f"sqlite:///{tmp_path}/study.db")
    capsys.readouterr()  # optuna's own log line
    assert main(["export", known_experiment] + [a.format(tmp=tmp_path) for a in args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("scenetune: error: ") and message in captured.err
    assert captured.err.count("\n") == 1, captured.err
