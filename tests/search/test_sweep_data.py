"""A sweep over a tree with bad files: checked before it starts, refused
above data.max_bad_fraction (naming the files, writing nothing), otherwise
run to the end with every bad file listed in the experiment."""

import json
import os
import re
import shutil

import pandas as pd
import pytest

from scenetune.analysis import load_experiment
from scenetune.cli import main
from tests.bad_images import write_kinds

BAD_KINDS = ("truncated.jpg", "zero.jpg", "page.jpg")
CONVERTED_KINDS = ("cmyk.jpg", "rotated.jpg", "png_as.jpg", "gray16.png")


@pytest.fixture
def messy_root(tmp_path, synth_root):
    """The synthetic scenes (3 classes x 16) plus 3 bad files and 4 odd but
    decodable ones, spread over the classes."""
    root = tmp_path / "messy"
    shutil.copytree(synth_root, root)
    kinds = tmp_path / "kinds"
    write_kinds(str(kinds), big=False)
    classes = sorted(os.listdir(root / "Images"))
    for i, name in enumerate(BAD_KINDS + CONVERTED_KINDS):
        shutil.copy(kinds / name, root / "Images" / classes[i % 3] / f"odd_{name}")
    return str(root)


@pytest.mark.slow
def test_a_sweep_over_bad_files_finishes_and_lists_each_one(ray_local, make_spec, messy_root, capsys):
    spec = make_spec({"name": "messy", "data": {"root": messy_root, "max_bad_fraction": 0.1},
                      "fixed": {"epochs": 1}})
    assert main(["sweep", spec]) == 0
    out = capsys.readouterr().out
    assert "data check: 55 images, 3 bad left out" in out
    uri = os.path.join(os.path.dirname(spec), "results", "messy")
    exp = load_experiment(uri)
    assert list(exp.trials["status"]) == ["completed"]
    check = json.load(open(os.path.join(uri, "data_check.json")))
    assert exp.data_check == check
    bad = {os.path.basename(e["path"]): e["reason"] for e in check["bad"]}
    assert set(bad) == {f"odd_{n}" for n in BAD_KINDS}
    assert check["usable"] == 52 and len(check["converted"]) == len(CONVERTED_KINDS)
    manifest = pd.read_csv(os.path.join(uri, "split.csv"), keep_default_na=False)
    listed = manifest[manifest["split"] == "bad"]
    assert {os.path.basename(p): r for p, r in zip(listed["path"], listed["reason"])} == bad
    usable = set(manifest.loc[manifest["split"] != "bad", "path"])
    assert {f"odd_{n}" for n in CONVERTED_KINDS} <= {os.path.basename(p) for p in usable}
    (trial,) = exp.trials.itertuples()
    predicted = pd.read_csv(os.path.join(uri, trial.trial_dir, "val_predictions.csv"))
    assert set(predicted["path"]) == set(manifest.loc[manifest["split"] == "val", "path"])
    assert not set(predicted["path"]) & set(listed["path"])


def test_too_many_bad_files_refuse_the_sweep_naming_them(make_spec, messy_root, capsys):
    spec = make_spec({"name": "refused", "data": {"root": messy_root, "max_bad_fraction": 0.01}})
    assert main(["sweep", spec]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("scenetune: error: data.max_bad_fraction: 3 of 55 files are bad (5.5% > 1.0%): ")
    for name in BAD_KINDS:
        assert f"odd_{name}" in last
    assert not os.path.exists(os.path.join(os.path.dirname(spec), "results", "refused")), "nothing written"


@pytest.mark.parametrize("data, message", [
    ({"root": "MISSING"}, r"data.root: .*missing-data does not exist"),
    ({"root": "EMPTY"}, r"data.root: no images under .*Images"),
    ({"categories": ["library", "kitchen"]}, r"data.categories: not found under .*: kitchen"),
])
def test_sweep_exits_2_naming_what_is_missing(make_spec, tmp_path, capsys, data, message):
    empty = tmp_path / "empty-data"
    (empty / "Images" / "library").mkdir(parents=True)
    replace = {"MISSING": str(tmp_path / "missing-data"), "EMPTY": str(empty)}
    data = {k: replace.get(v, v) if isinstance(v, str) else v for k, v in data.items()}
    spec = make_spec({"name": "missing", "data": data})
    assert main(["sweep", spec]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("scenetune: error: ") and "Traceback" not in err
    assert re.search(message, last), last
    assert not os.path.exists(os.path.join(os.path.dirname(spec), "results", "missing"))
