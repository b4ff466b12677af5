"""Spec validation: every bad spec gives one line naming the key, exit 2,
before Ray starts and without writing anything."""

import os
import subprocess
import sys

import pytest
import yaml

from scenetune.cli import main
from scenetune.core.errors import UserError
from scenetune.search.spec import SpecError, load_spec, parse_spec
from tests.conftest import BASE_SPEC, deep_update

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
    # strict types (issue 17): true is not a number, "8" is not a number, 8.0 is not an integer
    ({"search": {"num_samples": True}}, "search.num_samples: Input should be a valid integer (got True)"),
    ({"search": {"num_samples": "8"}}, "search.num_samples: Input should be a valid integer (got '8')"),
    ({"search": {"max_concurrent": 2.0}}, "search.max_concurrent: Input should be a valid integer (got 2.0)"),
    ({"resources": {"cpu": "1"}}, "resources.cpu: Input should be a valid number (got '1')"),
    ({"resources": {"gpu": float("nan")}}, "resources.gpu: Input should be a finite number"),
    ({"fixed": {"epochs": True}}, "fixed.epochs: Input should be a valid integer (got True)"),
    ({"fixed": {"dropout": "0.2"}}, "fixed.dropout: Input should be a valid number (got '0.2')"),
    ({"space": {"dense_units": {"choice": [16, True]}}, "fixed": {"dense_units": None}},
     "space.dense_units: value True is not accepted: Input should be a valid integer"),
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


def parse(tmp_path, changes: dict | None = None):
    """parse_spec of BASE_SPEC (data.root: tmp_path) updated by ``changes``."""
    return parse_spec(deep_update(deep_update(BASE_SPEC, {"data": {"root": str(tmp_path)}}), changes or {}))


def test_an_int_is_a_float_and_a_yaml_pair_is_a_tuple(tmp_path):
    """Strict types keep what YAML writes for a number or a pair."""
    spec = parse(tmp_path, {"resources": {"cpu": 2, "gpu": 0}, "scheduler": {"name": "asha", "reduction_factor": 2},
                            "fixed": {"learning_rate": 1, "augment": {"zoom_range": [0.9, 1.1], "rotation_range": 5}}})
    assert spec.resources.cpu == 2.0 and spec.scheduler.reduction_factor == 2.0
    assert spec.fixed["augment"]["zoom_range"] == [0.9, 1.1]


@pytest.mark.parametrize("changes, message", [
    ({"search": {"seed": -1}}, "search.seed: Input should be greater than or equal to 0"),
    ({"data": {"split": {"seed": 2 ** 32}}}, "data.split.seed: Input should be less than or equal to 4294967295"),
    ({"fixed": {"seed": 2 ** 32}}, "fixed.seed: Input should be less than or equal to 4294967295"),
    ({"fixed": {"augment": {"cval": float("nan")}}}, "fixed.augment.cval: Input should be a finite number"),
    ({"fixed": {"augment": {"zoom_range": ["0.9", 1.1]}}}, "fixed.augment.zoom_range: Input should be a valid number"),
])
def test_seeds_numpy_cannot_take_and_non_finite_numbers_are_refused(tmp_path, changes, message):
    with pytest.raises(SpecError) as info:
        parse(tmp_path, changes)
    assert str(info.value).startswith(message)


# Found by tests/fuzz/test_spec_fuzz.py (or by reading the code it pointed at):
# each spec below once raised something other than a one-line SpecError, or
# hung, or parsed into a spec that its own stored form (--resume) refused.
@pytest.mark.parametrize("changes, message", [
    ({"trainable": []}, "trainable: Input should be a valid string"),  # was TypeError: unhashable type
    ({"trainable": {"a": 1}}, "trainable: Input should be a valid string"),
    ({"fixed": {"a\nb": 1}}, "fixed.'a\\nb': unknown key"),  # was a message over two lines
    ({"resources": {"\u2028": 1}}, "resources.'\\u2028': unknown key"),
    ({"space": {"a\u2028b": {"choice": [1]}}}, "space.'a\\u2028b': parameter names are dotted names"),
    ({"data": {"root": "/no/such\ndir"}}, "data.root: '/no/such\\ndir' does not exist"),
    ({"space": {"learning_rate": {"loguniform": [1e-4, 1e-2]}}, "search": {"points": [{"learning_rate": "0.01"}]}},
     "search.points[0].learning_rate: '0.01' is outside space.learning_rate"),  # was TypeError from '<='
    ({"space": {"augment.cval": {"choice": [float("nan"), 1.0]}}},
     "space.augment.cval: choice values must be finite numbers"),  # was stored as null: --resume refused it
    ({"space": {"dropout": {"quniform": [0, 0.5, float("nan")]}}}, "space.dropout: quniform takes finite numbers"),
    ({"space": {"trainable_layers": {"int": [0, float("inf")]}}}, "space.trainable_layers: int takes finite numbers"),
    ({"scheduler": {"name": "asha", "reduction_factor": 1.000000001, "max_t": 1000}},  # a list of billions:
     "scheduler.reduction_factor: 1.000000001 makes 690775"),  # milestones, at most 100: it hung
    ({"scheduler": {"name": "hyperband", "reduction_factor": 1.0001}, "search": {"max_concurrent": None}},
     "scheduler.reduction_factor: 1.0001 makes 6932 milestones"),
    ({"scheduler": {"name": "hyperband"}, "fixed": {"epochs": 10 ** 30}},  # was TypeError from numpy.log
     "fixed.epochs: Input should be less than or equal to 10000"),
    ({"scheduler": {"name": "asha", "max_t": 10 ** 6}}, "scheduler.max_t: Input should be less than or equal to 10000"),
    ({"scheduler": {"name": "asha", "brackets": 10 ** 6}}, "scheduler.brackets: Input should be less than or equal to 8"),
    ({"space": {1: {"choice": [1]}}}, "space: key 1: Input should be a valid string"),
])
def test_fuzzer_findings_are_one_line_spec_errors(tmp_path, changes, message):
    with pytest.raises(UserError) as info:
        parse(tmp_path, changes)
    assert str(info.value).startswith(message), str(info.value)
    assert len(str(info.value).splitlines()) == 1


def _laughs(levels: int = 9, width: int = 10):
    """YAML's billion laughs as Python builds it: each level ``width`` references to the one below."""
    tree = {f"k{i}": 1 for i in range(width)}
    for _ in range(levels - 1):
        tree = {f"k{i}": tree for i in range(width)}
    return tree


def test_aliases_nested_into_a_billion_leaves_are_refused_at_once(tmp_path):
    """flatten() walked every leaf of a search point and repr() wrote every
    leaf of a wrong value: a billion of them for nine levels of ten aliases."""
    space = {"augment.rotation_range": {"uniform": [0, 10]}}
    with pytest.raises(SpecError, match=r"^search.points\[0\].augment.k\d: not declared in space"):
        parse(tmp_path, {"space": space, "search": {"points": [{"augment": _laughs()}]}})
    with pytest.raises(SpecError) as info:
        parse(tmp_path, {"search": {"num_samples": [_laughs()]}})
    assert str(info.value).startswith("search.num_samples: Input should be a valid integer (got [{")
    assert len(str(info.value)) < 300


def test_the_stored_spec_parses_again(tmp_path):
    """--resume parses the experiment's resolved spec (to_yaml) again."""
    here = os.path.join(os.path.dirname(__file__), "..", "..", "sweeps")
    for name in sorted(os.listdir(here)):
        with open(os.path.join(here, name), encoding="utf-8") as f:
            raw = yaml.safe_load(f)
        raw["data"]["root"] = str(tmp_path)
        spec = parse_spec(raw)
        assert parse_spec(yaml.safe_load(spec.to_yaml())).model_dump() == spec.model_dump(), name


def write(tmp_path, text: str | bytes) -> str:
    path = tmp_path / "spec.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def base_yaml(tmp_path) -> str:
    return yaml.safe_dump(deep_update(BASE_SPEC, {"data": {"root": str(tmp_path)}}), sort_keys=False)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t + "search: {num_samples: 3}\n", "search is given twice (lines 13 and 36)"),
    (lambda t: t.replace("  num_samples: 1\n", "  num_samples: 1\n  num_samples: 2\n"),
     "search.num_samples is given twice (lines 15 and 16)"),
    (lambda t: t.replace("space: {}", "space: {dropout: {uniform: [0, 1]}, dropout: {choice: [0.1]}}"),
     "space.dropout is given twice (lines 26 and 26)"),
    (lambda t: t.replace("  epochs: 2\n", "  epochs: 2\n  'epochs': 3\n"), "fixed.epochs is given twice (lines 31 and 32)"),
    (lambda t: t.replace("  seed: 0\n", "  seed: 0\n  points:\n  - {dropout: 0.1, dropout: 0.2}\n", 1),
     "search.points[0].dropout is given twice (lines 19 and 19)"),
])
def test_a_key_given_twice_is_refused_with_both_lines(tmp_path, edit, message):
    """PyYAML's safe_load keeps the last of two equal keys without a word."""
    text = edit(base_yaml(tmp_path))
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text))
    assert str(info.value) == f"{tmp_path / 'spec.yaml'}: {message}"


def test_merge_keys_may_be_overridden_and_keys_may_repeat_in_other_mappings(tmp_path):
    text = base_yaml(tmp_path).replace("fixed:\n", "fixed:\n  <<: {epochs: 9, seed: 3}\n")
    spec = load_spec(write(tmp_path, text))
    assert spec.fixed["epochs"] == 2 and spec.fixed["seed"] == 3  # seed: 0 is search's, not fixed's


@pytest.mark.parametrize("content, message", [
    (b"name: t\nsearch: \xff\xfe\n", "not UTF-8 text (line 2, byte 0xff)"),  # was UnicodeDecodeError
    ("name: t\n\x00\n", "not valid YAML (line 2): special characters are not allowed (#x0000)"),  # was 2 lines
    ("a: " + "[" * 5000 + "]" * 5000, "not a spec: its YAML nests too deeply"),  # was RecursionError
    ("- [unclosed\n", "not valid YAML (line 2)"),
])
def test_unreadable_yaml_is_one_line(tmp_path, content, message):
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, content))
    assert str(info.value).startswith(f"{tmp_path / 'spec.yaml'}: {message}")
    assert len(str(info.value).splitlines()) == 1
