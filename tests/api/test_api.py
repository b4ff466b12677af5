"""The public Python API, as a notebook uses it: a sweep from a dict, the
best trials as a table, the report, the Optuna export, and bad input as a
UserError (never sys.exit)."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pandas as pd
import pytest

import scenetune
from scenetune.analysis import best_trials
from tests.conftest import BASE_SPEC, deep_update


def test_importing_scenetune_loads_none_of_the_stack():
    code = ("import sys, scenetune\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'optuna', 'pandas', 'tensorflow', "
            "'keras', 'pyarrow', 'numpy'})\nprint(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_the_version_is_the_installed_distributions():
    from importlib.metadata import version

    assert scenetune.__version__ == version("scenetune")


def test_bad_input_raises_a_user_error_not_system_exit(tmp_path):
    with pytest.raises(scenetune.UserError, match="no such spec file"):
        scenetune.sweep(tmp_path / "missing.yaml")
    with pytest.raises(scenetune.UserError, match="num_samples"):
        scenetune.sweep(deep_update(BASE_SPEC, {"data": {"root": str(tmp_path)}, "search": {"num_samples": 0}}))
    with pytest.raises(scenetune.UserError, match="no such experiment"):
        scenetune.load_experiment(tmp_path / "nothing")


@pytest.mark.slow
def test_a_notebook_sweep_from_a_dict(tmp_path, synth_root, ray_local):
    lines = []
    spec = deep_update(BASE_SPEC, {"data": {"root": synth_root}, "search": {"num_samples": 2},
                                   "space": {"dropout": {"choice": [0.0, 0.2]}}})
    exp = scenetune.sweep(spec, name="nb", storage=str(tmp_path), progress=lines.append)
    assert exp.uri == os.path.join(str(tmp_path), "nb") and len(exp.trials) == 2
    assert "nb" in repr(exp)

    best = exp.best(top=2)
    assert isinstance(best, pd.DataFrame) and list(best.columns[:4]) == ["trial_id", "status", "epoch", "val_accuracy"]
    assert best["val_accuracy"].is_monotonic_decreasing and "config.dropout" in best
    assert best["trial_id"].tolist() == [e["trial_id"] for e in best_trials(exp.logs, top=2)]

    html = exp.report(out=str(tmp_path / "report"))
    assert html.endswith("report.html") and os.path.isfile(html)
    assert any(line.startswith("drawing tables") for line in lines), lines

    study = exp.export_optuna(f"sqlite:///{tmp_path}/study.db")
    loaded = optuna.load_study(study_name=study.study_name, storage=f"sqlite:///{tmp_path}/study.db")
    assert sorted(t.user_attrs["trial_id"] for t in loaded.trials) == sorted(exp.trials["trial_id"])

    again = scenetune.load_experiment(exp.uri)
    assert again.best(top=2)["trial_id"].tolist() == best["trial_id"].tolist()


def test_the_cli_reports_bad_input_in_one_line_and_a_bug_with_its_traceback(tmp_path, capsys, monkeypatch):
    from scenetune import cli

    assert cli.main(["best", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.strip() == f"scenetune: error: {tmp_path / 'nothing'}: no such experiment directory"

    def bug(args):  # a ValueError that is not the user's: once reported as bad input, now a bug
        raise ValueError("cannot reshape array of size 3 into shape (2,)")

    monkeypatch.setitem(cli.COMMANDS, "best", bug)
    assert cli.main(["best", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ValueError: cannot reshape" in err
    assert err.rstrip().splitlines()[-1].startswith("scenetune: internal error: this is a bug in scenetune")
