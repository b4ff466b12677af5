"""``scenetune report A B``: a series of experiments read as one (analysis/series.py):
their trials ranked together, each row naming its experiment, each one's own
report in a folder; a series ranked by two metrics is refused. The warm-start
marks are checked on a real warm-started sweep in tests/search/test_warm_start.py."""

import json
import os
import shutil

import pandas as pd
import pytest
import yaml

from scenetune.cli import main

pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n"


def best_of(uri: str, capsys) -> dict:
    capsys.readouterr()
    assert main(["best", uri, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)["best"][0]


def test_two_experiments_are_ranked_together_each_with_its_own_report(known_experiment, damaged_experiment,
                                                                      tmp_path, capsys):
    out = tmp_path / "series"
    assert main(["report", known_experiment, damaged_experiment, "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"report: {out}/report.html")
    for name in ("known", "damaged"):
        assert os.path.getsize(out / name / "report.html") > 0 and (out / name / "tables" / "trials.csv").exists()
    with open(out / "figures" / "series.png", "rb") as f:
        assert f.read(8) == PNG

    trials = pd.read_csv(out / "tables" / "series_trials.csv")
    each = {name: pd.read_csv(out / name / "tables" / "trials.csv") for name in ("known", "damaged")}
    assert trials.groupby("experiment").size().to_dict() == {name: len(t) for name, t in each.items()}
    values = trials["last_val_accuracy"].dropna().tolist()
    assert values == sorted(values, reverse=True) and values[0] == max(t["last_val_accuracy"].max()
                                                                        for t in each.values())
    assert trials["warm_start_of"].isna().all(), "neither was warm-started"

    overview = pd.read_csv(out / "tables" / "series.csv").set_index("experiment")
    for name, uri in (("known", known_experiment), ("damaged", damaged_experiment)):
        best = best_of(uri, capsys)
        assert overview.loc[name, "best_val_accuracy"] == pytest.approx(best["val_accuracy"])
        assert overview.loc[name, "best_trial"] == best["trial_id"] and overview.loc[name, "warm_started_with"] == 0
    assert "2 experiments" in open(out / "report.md").read()


def test_experiments_of_one_name_get_a_folder_each(known_experiment, tmp_path):
    first, second = tmp_path / "a" / "known", tmp_path / "b" / "known"
    shutil.copytree(known_experiment, first)
    shutil.copytree(known_experiment, second)
    out = tmp_path / "series"
    assert main(["report", str(first), str(second), "--out", str(out)]) == 0
    assert (out / "known" / "report.html").exists() and (out / "known-2" / "report.html").exists()
    assert set(pd.read_csv(out / "tables" / "series_trials.csv")["experiment"]) == {"known", "known-2"}


def test_a_series_ranked_by_two_metrics_is_refused_and_nothing_is_written(known_experiment, tmp_path, capsys):
    other = tmp_path / "by_loss"
    shutil.copytree(known_experiment, other)
    spec_path = other / "scenetune_spec.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec.update(metric="val_loss", mode="min")
    spec_path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "series"
    capsys.readouterr()
    assert main(["report", known_experiment, str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ranked by val_loss (min)" in err and "one metric" in err, err
    assert not out.exists()
