"""Spec validation: every bad spec gives one line naming the key, exit 2,
before Ray starts and without writing anything."""

import os
import subprocess
import sys

import pytest
import yaml

from scenetune.cli import main
from scenetune.search.spec import load_spec

BAD_SPECS = [
    ({"search": {"num_samplez": 3}}, "search.num_samplez: unknown key"),
    ({"search": {"num_samples": "many"}}, "search.num_samples: Input should be a valid integer"),
    ({"search": {"num_samples": 0}}, "search.num_samples: Input should be greater than or equal to 1"),
    ({"space": {"learning_rate": {"loguniform": [1.0e-2, 1.0e-5]}}}, "space.learning_rate: low (0.01) > high (1e-05)"),
    ({"space": {"backbone": {"choice": []}}, "fixed": {"backbone": None}}, "space.backbone: choice needs a non-empty list of values; the list is empty"),
    ({"data": {"root": "/no/such/dataset"}}, "data.root: /no/such/dataset does not exist"),
    ({"space": {"backbone": {"choice": ["mobilenet_v2", "vgg99"]}}, "fixed": {"backbone": None}}, "space.backbone: value 'vgg99' is not accepted: unknown backbone 'vgg99'"),
    ({"fixed": {"learning_rat": 0.1}}, "fixed.learning_rat: unknown key"),
    ({"fixed": {"epochs": "ten"}}, "fixed.epochs: Input should be a valid integer"),
    ({"space": {"augment.rotation_rang": {"uniform": [0, 10]}}}, "space.augment.rotation_rang: value 0.0 is not accepted: unknown key"),
    ({"mode": "maximize"}, "mode: Input should be 'max' or 'min'"),
    ({"metric": "val_acc"}, "metric: 'val_acc' is not reported by classifier"),
    ({"trainable": "svm"}, "trainable: unknown trainable 'svm'"),
    ({"scheduler": {"name": "asha", "max_t": 2, "grace_period": 5}}, "scheduler.grace_period: 5 exceeds scheduler.max_t (2)"),
    ({"data": {"split": {"train": 0.7, "val": 0.2, "test": 0.2}}}, "data.split: train + val + test must add up to 1"),
    ({"space": {"epochs": {"int": [1, 3]}}}, "space.epochs: also set in fixed"),
    ({"space": {"image_size": {"grid": [32, 64]}}, "fixed": {"image_size": None}}, "space.image_size: grid declarations need search.algorithm grid or random"),
    ({"space": {"backbone": {"choice": ["basic_cnn", "inception_resnet_v2"]}, "image_size": {"choice": [32, 96]}},
      "fixed": {"backbone": None, "image_size": None}},
     "space.image_size: image_size 32 is below inception_resnet_v2's minimum of 75"),
    ({"name": "bad name/with slash"}, "name: String should match pattern"),
    ({"resources": {"gpu": -1}}, "resources.gpu: Input should be greater than or equal to 0"),
    ({"scheduler": {"name": "asha", "metric": "val_loss"}}, "scheduler.metric and scheduler.mode: give both"),
    ({"scheduler": {"name": "asha", "metric": "val_los", "mode": "min"}},
     "scheduler.metric: 'val_los' is not reported by classifier"),
    ({"scheduler": {"name": "none", "metric": "val_loss", "mode": "min"}}, "scheduler.metric: only ASHA and HyperBand rank"),
    ({"scheduler": {"name": "hyperband", "grace_period": 2}}, "scheduler.grace_period: applies to ASHA only"),
    ({"scheduler": {"name": "hyperband", "brackets": 3}}, "scheduler.brackets: applies to ASHA only"),
    ({"scheduler": {"name": "hyperband", "reduction_factor": 2}, "search": {"max_concurrent": 2},
      "fixed": {"epochs": 4}}, "search.max_concurrent: HyperBand (max_t 4, factor 2) keeps a band of 10 trials"),
    ({"scheduler": {"name": "asha", "brackets": 0}}, "scheduler.brackets: Input should be greater than or equal to 1"),
    ({"scheduler": {"name": "median"}}, "scheduler.name: Input should be 'asha', 'hyperband' or 'none'"),
    ({"fixed": {"backbone": "mobilenet_v2", "pooling": "flatten"}},
     "fixed: pooling flatten applies to basic_cnn only: mobilenet_v2's last feature map is too wide"),
    ({"space": {"backbone": {"choice": ["basic_cnn", "resnet50_v2"]}, "pooling": {"choice": ["avg", "flatten"]}},
      "fixed": {"backbone": None}},
     "space.pooling: pooling flatten applies to basic_cnn only: resnet50_v2's last feature map is too wide"),
    ({"checkpoint": {"frequency": 0}}, "checkpoint.frequency: every N epochs needs N >= 1"),
    ({"checkpoint": {"frequency": "often"}}, "checkpoint.frequency"),
    ({"checkpoint": {"frequency": True}}, "checkpoint.frequency"),
    ({"resources": {"reuse_processes": "sometimes"}}, "resources.reuse_processes: Input should be a valid boolean"),
]


@pytest.mark.parametrize("changes, message", BAD_SPECS, ids=[m.split(":")[0] for _, m in BAD_SPECS])
def test_bad_spec_names_the_key_and_exits_2(make_spec, capsys, tmp_path, changes, message):
    path = make_spec(changes)
    assert main(["sweep", path]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("scenetune: error: ")
    assert message in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "results").exists(), "a rejected spec must write nothing"


def test_missing_required_key(make_spec, capsys, tmp_path):
    path = make_spec()
    raw = yaml.safe_load(open(path))
    del raw["data"]["root"]
    open(path, "w").write(yaml.safe_dump(raw))
    assert main(["sweep", path]) == 2
    assert "data.root: required key is missing" in capsys.readouterr().err


def test_not_yaml_and_missing_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert main(["sweep", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "nope.yaml")]) == 2
    assert "no such spec file" in capsys.readouterr().err


def test_cli_entry_point_reports_one_line_without_traceback(make_spec):
    path = make_spec({"search": {"num_samplez": 3}})
    scenetune = os.path.join(os.path.dirname(sys.executable), "scenetune")
    proc = subprocess.run([scenetune, "sweep", path], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "scenetune: error: search.num_samplez: unknown key"
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("argv, usage, message", [
    (["sweep"], "usage: scenetune sweep ", "sweep: the following arguments are required: spec"),
    (["best", "x", "--top", "three"], "usage: scenetune best ", "best: argument --top: invalid int value: 'three'"),
    (["frobnicate"], "usage: scenetune ", "argument COMMAND: invalid choice: 'frobnicate'"),
])
def test_bad_cli_arguments_give_the_usage_and_one_error_line(capsys, argv, usage, message):
    """argparse's usage line, then one line naming the command and what is wrong; exit 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(usage) and err[-1].startswith(f"scenetune: error: {message}")
    assert sum(line.startswith("scenetune: error") for line in err) == 1


def test_good_spec_resolves_defaults(make_spec, synth_root):
    spec = load_spec(make_spec({"scheduler": {"name": "asha"}}))
    assert spec.scheduler.max_t == 2  # the trials' epochs
    assert spec.data.root == os.path.abspath(synth_root)
    assert spec.search.sampler == "tpe"


@pytest.mark.parametrize("scheduler, frequency, epochs, expected", [
    ({"name": "asha", "grace_period": 1, "reduction_factor": 3}, "rungs", 9, [1, 3]),  # 9 is the last epoch
    ({"name": "asha", "grace_period": 1, "reduction_factor": 2, "max_t": 6}, "rungs", 6, [1, 2, 4]),
    ({"name": "asha", "grace_period": 1, "reduction_factor": 1.5, "max_t": 10}, "rungs", 10, [1, 2, 3, 4, 6, 8]),
    ({"name": "asha", "grace_period": 1, "reduction_factor": 3, "max_t": 4}, "rungs", 8, [1, 3, 4]),  # ASHA stops at 4
    ({"name": "none"}, "rungs", 5, []),
    ({"name": "none"}, 2, 7, [2, 4, 6]),
    ({"name": "none"}, "auto", 20, [5, 10, 15]),  # every quarter: a retry loses at most 5 epochs
    ({"name": "asha", "grace_period": 1, "reduction_factor": 3}, "auto", 9, [1, 3, 6]),
    ({"name": "asha", "grace_period": 1, "reduction_factor": 2, "max_t": 6}, "auto", 6, [1, 2, 4]),
    ({"name": "asha", "grace_period": 1, "reduction_factor": 3, "brackets": 2}, "rungs", 9, [1, 3]),
    ({"name": "asha", "grace_period": 2, "reduction_factor": 2, "brackets": 2}, "rungs", 16, [2, 4, 8]),
    ({"name": "hyperband", "reduction_factor": 3}, "rungs", 9, [1, 3]),  # HyperBand pauses there: resumes need them
    ({"name": "hyperband", "reduction_factor": 3}, "rungs", 20, [2, 6, 18]),
])
def test_trials_checkpoint_at_the_rungs_or_every_n_epochs(make_spec, scheduler, frequency, epochs, expected):
    spec = load_spec(make_spec({"scheduler": scheduler, "checkpoint": {"frequency": frequency},
                                "fixed": {"epochs": epochs}, "search": {"max_concurrent": None}}))
    assert spec.checkpoint_epochs() == expected
    assert spec.resources.reuse_processes, "warm trial processes by default"
    assert load_spec(make_spec({"scheduler": scheduler})).checkpoint.frequency == "auto"


def test_progressive_phases_start_at_the_epochs_asha_judges_at(make_spec):
    """Ray judges a milestone of 2.25 at epoch 3: the next size starts there, not at int(2.25)."""
    spec = load_spec(make_spec({"scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 1.5},
                                "fixed": {"progressive_resize": [16, 24, 32], "image_size": None, "epochs": 10}}))
    assert spec.fixed["resize_epochs"] == [0, 1, 2]
    spec = load_spec(make_spec({"scheduler": {"name": "asha", "grace_period": 2, "reduction_factor": 1.5},
                                "fixed": {"progressive_resize": [16, 24, 32], "image_size": None, "epochs": 10}}))
    assert spec.fixed["resize_epochs"] == [0, 2, 3]


def test_the_shipped_sweeps_are_valid(tmp_path):
    """The example specs parse (their data roots are replaced by a stand-in)."""
    here = os.path.join(os.path.dirname(__file__), "..", "..", "sweeps")
    for name in sorted(os.listdir(here)):
        raw = yaml.safe_load(open(os.path.join(here, name)))
        raw["data"]["root"] = str(tmp_path)
        from scenetune.search.spec import parse_spec
        parse_spec(raw)
