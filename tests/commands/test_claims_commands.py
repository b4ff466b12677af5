"""Claims of README.md, docs/pipeline.md, docs/spec.md and docs/gan.md about
the commands, each checked once (issue 17: every claim has a test):

- pipeline.md: `scenetune data synth OUT --classes N --per-class N --size PX
  --seed S` writes the mit67 layout, the same seed the same bytes, and
  refuses an OUT whose Images/ holds files;
- pipeline.md, the data check: above `data.max_bad_fraction` the sweep
  "refuses to start, exit status 2, naming the first five and the count, and
  writes nothing"; `scenetune data check` lists them all and exits 1;
- spec.md, replay: the schedulers `hyperband` and `median` replay a recorded
  experiment (`scenetune replay EXPERIMENT --scheduler hyperband,median
  --repeats 1`);
- gan.md: `scenetune generate ... --seed S` (the seed draws the latents),
  `gen_activation: leaky_relu` in a trained generator, and the report "warns
  when trials differ" in their FID feature extractor.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys

import numpy as np
import pytest
import ray.cloudpickle
import yaml
from PIL import Image

from scenetune.analysis import load_experiment
from scenetune.cli import main
from scenetune.commands.replay import load_recording
from scenetune.trainables.data.datacheck import check_dataset
from tests.bad_images import write_kinds
from tests.conftest import BASE_SPEC, deep_update

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import test modules


def tree_digest(root) -> str:
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            h.update(os.path.relpath(os.path.join(dirpath, name), root).encode())
            with open(os.path.join(dirpath, name), "rb") as f:
                h.update(f.read())
    return h.hexdigest()


# --- scenetune data synth


def test_data_synth_writes_the_layout_and_refuses_a_non_empty_out(tmp_path, capsys):
    out = str(tmp_path / "synth")
    args = ["data", "synth", out, "--classes", "3", "--per-class", "2", "--size", "24", "--seed", "5"]
    assert main(args) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote 6 images of 3 classes to {out}/Images"
    classes = sorted(os.listdir(os.path.join(out, "Images")))
    assert len(classes) == 3 and os.listdir(out) == ["Images"]
    for label in classes:
        files = sorted(os.listdir(os.path.join(out, "Images", label)))
        assert files == [f"{label}_00000.jpg", f"{label}_00001.jpg"]
        for name in files:
            with Image.open(os.path.join(out, "Images", label, name)) as image:
                assert (image.format, image.size, image.mode) == ("JPEG", (24, 24), "RGB")
    written = tree_digest(out)
    assert main([*args[:2], str(tmp_path / "again"), *args[3:]]) == 0
    assert tree_digest(tmp_path / "again") == written, "the same seed writes the same bytes"
    capsys.readouterr()
    assert main(args) == 2  # into the same OUT: refused, nothing touched
    err = capsys.readouterr().err.strip()
    assert err == f"scenetune: error: {out}/Images already holds files; choose an empty OUT"
    assert tree_digest(out) == written


# --- the data check: the first five bad files and the count


@pytest.fixture
def seven_bad(tmp_path, synth_root):
    """The synthetic scenes (48 images) plus 7 files that do not decode."""
    root = tmp_path / "seven-bad"
    shutil.copytree(synth_root, root)
    kinds = tmp_path / "kinds"
    bad = [name for name, kind in write_kinds(str(kinds), big=False).items() if kind.reason]
    assert len(bad) == 5
    classes = sorted(os.listdir(root / "Images"))
    for i, name in enumerate(bad + bad[:2]):
        shutil.copy(kinds / name, root / "Images" / classes[i % 3] / f"bad{i}_{name}")
    return str(root)


def test_too_many_bad_files_name_the_first_five_and_count_the_rest(seven_bad, tmp_path, capsys):
    spec = deep_update(BASE_SPEC, {"name": "refused", "data": {"root": seven_bad, "max_bad_fraction": 0.01},
                                   "storage": str(tmp_path / "results")})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(path)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    first = check_dataset(seven_bad).bad
    assert len(first) == 7
    assert last.startswith("scenetune: error: data.max_bad_fraction: 7 of 55 files are bad (12.7% > 1.0%): ")
    named = [entry for entry in first if f"{entry['path']} ({entry['reason']})" in last]
    assert named == first[:5], "the first five, in the check's order"
    assert "and 2 more;" in last and f"scenetune data check {seven_bad} --layout mit67` lists them all" in last
    assert not (tmp_path / "results" / "refused").exists(), "nothing written"
    assert main(["data", "check", seven_bad]) == 1  # ... and it does list them all
    out = capsys.readouterr().out
    assert "bad files (left out of the dataset): 7" in out
    assert all(f"  {entry['path']}: {entry['reason']}" in out for entry in first)


# --- replay with HyperBand and the median stopping rule


@pytest.fixture(scope="module")
def recorded(ray_local, tmp_path_factory, synth_root):
    from tests.commands.test_replay import record

    return record(tmp_path_factory.mktemp("rec"), synth_root, "claims", {"name": "none"}, 8, seed=1)


@pytest.mark.slow
def test_replay_with_hyperband_and_the_median_rule(recorded, capsys):
    assert main(["replay", recorded, "--searcher", "random", "--scheduler", "hyperband,median", "--repeats", "1",
                 "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    rec = load_recording(recorded)
    assert document["best_recorded"] == rec.best
    assert [(s["searcher"], s["scheduler"]) for s in document["summary"]] == [("random", "hyperband"),
                                                                              ("random", "median")]
    runs = {run["scheduler"]: run for run in document["runs"]}
    assert set(runs) == {"hyperband", "median"}
    whole = {trial: sum(seconds for _, seconds in curve) for trial, curve in rec.curves.items()}
    for name, run in runs.items():
        assert sorted(run["replayed_trials"]) == sorted(rec.curves), name  # all 8, each once
        assert run["best"] <= rec.best
        assert run["stopped_early"] >= 1, f"{name} stopped nothing: it did not act"
        assert 0 < run["compute_s"] < sum(whole.values()), name  # stopped trials' unrun epochs not counted
        assert set(run["stopped_trials"]) <= set(rec.curves)
    assert runs["hyperband"]["stopped_early"] == 3  # max_t 6, factor 3: one bracket of 5 cut to 2 at epoch 2


# --- the GAN: generate --seed, gen_activation, different FID extractors


@pytest.fixture(scope="module")
def gan_experiment(ray_local, synth_root, tmp_path_factory):
    """Two 1-epoch GAN trials with a leaky-ReLU generator, one measuring FID
    in the random conv features, one in a (tiny, untrained) classifier's."""
    from scenetune.search.run import run_sweep
    from scenetune.search.spec import load_spec
    from scenetune.trainables.classifier.config import ClassifierConfig
    from scenetune.trainables.classifier.models import build_classifier

    tmp = tmp_path_factory.mktemp("gan_claims")
    classifier = str(tmp / "classifier" / "model.keras")
    os.makedirs(os.path.dirname(classifier))
    build_classifier(ClassifierConfig(backbone="basic_cnn", weights="none", image_size=32, cnn_blocks=2,
                                      cnn_filters=4, dense_units=8), num_classes=3).save(classifier)
    spec = deep_update(BASE_SPEC, {
        "name": "gan-claims", "trainable": "gan", "metric": "fid", "mode": "min",
        "data": {"root": synth_root}, "storage": str(tmp / "results"),
        "search": {"algorithm": "grid", "num_samples": 1, "max_concurrent": 1},  # one process: TensorFlow once
        "space": {"feature_extractor": {"choice": ["random", "classifier"]}},
        "fixed": {"image_size": 32, "gen_filters": 4, "disc_filters": 4, "latent_dim": 8, "batch_size": 8,
                  "steps_per_epoch": 2, "fid_samples": 16, "grid_size": 2, "epochs": 1,
                  "gen_activation": "leaky_relu", "classifier_checkpoint": classifier}})
    spec["fixed"] = {k: v for k, v in spec["fixed"].items()
                     if k not in ("backbone", "weights", "dense_units", "cnn_blocks", "cnn_filters")}
    path = tmp / "gan.yaml"
    path.write_text(yaml.safe_dump(spec))
    return load_experiment(run_sweep(load_spec(str(path)))), tmp


@pytest.mark.slow
def test_the_trials_measured_fid_in_two_extractors_and_the_report_warns(gan_experiment):
    from scenetune.analysis.gan_report import gan_sections

    exp, tmp = gan_experiment
    assert sorted(exp.trials["status"]) == ["completed", "completed"]
    by_trial = exp.epochs.groupby("trial_id")["fid_extractor"].first()
    assert sorted(by_trial) == ["classifier", "random_conv"]
    sections = {s.title: s for s in gan_sections(exp, str(tmp / "report"), top=2)}
    text = sections["GAN: FID and diversity by epoch"].text
    assert ("Warning: trials measured FID with different extractors (classifier, random_conv); "
            "their values are not comparable.") in text


@pytest.mark.slow
def test_a_leaky_relu_generator_is_trained_and_saved_with_leaky_relu_layers(gan_experiment):
    import keras

    exp, _ = gan_experiment
    for trial in exp.trials.itertuples():
        trial_dir = os.path.join(exp.uri, trial.trial_dir)
        (checkpoint,) = [d for d in os.listdir(trial_dir) if d.startswith("checkpoint_")]
        generator = keras.models.load_model(os.path.join(trial_dir, checkpoint, "generator.keras"), compile=False)
        kinds = {type(layer).__name__ for layer in generator.layers}
        assert "LeakyReLU" in kinds and "ReLU" not in kinds


@pytest.mark.slow
def test_generate_seed_draws_the_latents(gan_experiment, capsys):
    exp, tmp = gan_experiment

    def images(seed: int, folder: str) -> list[np.ndarray]:
        out = tmp / folder
        assert main(["generate", exp.uri, "--n", "3", "--seed", str(seed), "--out", str(out)]) == 0
        return [np.asarray(Image.open(out / f"image_{i:04d}.png")) for i in range(3)]

    first, again, other = images(7, "seed7"), images(7, "seed7-again"), images(8, "seed8")
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)  # the same seed: the same images
    assert all(not np.array_equal(a, b) for a, b in zip(first, other)), "another seed: other images"
    assert not np.array_equal(first[0], first[1])
    assert capsys.readouterr().out.count("wrote 3 images to") == 3
