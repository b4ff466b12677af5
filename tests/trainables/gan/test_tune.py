"""The GAN trainable under Ray Tune: its metrics, sample grids and resume;
an ASHA sweep on fid, its report sections, and `scenetune generate` on it."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from scenetune.analysis import load_experiment
from scenetune.analysis.gan_report import gan_sections
from scenetune.cli import main
from scenetune.core.layout import RESOLVED_CONFIG_FILE
from scenetune.core.registry import TRAINABLES
from scenetune.search.run import run_sweep
from scenetune.search.spec import load_spec
from scenetune.trainables.gan.config import GanConfig
from scenetune.trainables.gan.samples import PAD
from tests.conftest import BASE_SPEC, deep_update

pytestmark = pytest.mark.slow

# Tiny and fast: 32 px, narrow networks, few steps, a few dozen images for fid.
GAN_FIXED = {"image_size": 32, "gen_filters": 8, "disc_filters": 8, "latent_dim": 16, "batch_size": 8,
             "steps_per_epoch": 10, "fid_samples": 48, "feature_extractor": "random", "grid_size": 4, "epochs": 2}


def gan_spec(tmp_path, root, changes: dict) -> str:
    spec = {**BASE_SPEC, "trainable": "gan", "metric": "fid", "mode": "min", "fixed": GAN_FIXED}
    spec = deep_update(spec, {"data": {"root": root}, "storage": str(tmp_path / "results")})
    spec = deep_update(spec, changes)
    path = tmp_path / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def read_results(trial_dir):
    with open(os.path.join(trial_dir, "result.json")) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def conditional_experiment(ray_local, synth_root, tmp_path_factory):
    """Conditional, grayscale, on two of the three classes: the paths the sweep below does not take."""
    tmp = tmp_path_factory.mktemp("gan_two")
    return load_experiment(run_sweep(load_spec(gan_spec(tmp, synth_root, {
        "name": "gan-two", "fixed": {"conditional": True, "grayscale": True, "categories": ["cloister", "library"],
                                     "collapse_diversity": 0.3}}))))


def test_two_epochs_report_every_metric_and_write_sample_grids(conditional_experiment):
    exp = conditional_experiment
    (trial,) = exp.trials.itertuples()
    assert trial.status == "completed"
    trial_dir = os.path.join(exp.uri, trial.trial_dir)
    rows = read_results(trial_dir)
    assert [r["epoch"] for r in rows] == [1, 2] and [r["training_iteration"] for r in rows] == [1, 2]
    for row in rows:
        for metric in TRAINABLES["gan"].metrics:
            assert metric in row, metric
        assert isinstance(row["collapsed"], bool) and row["fid_extractor"] == "random_conv"
        assert row["fid"] > 0 and np.isfinite(row["kid"]) and row["diversity"] > 0
        assert 0 <= row["d_acc_real"] <= 1 and 0 <= row["d_acc_fake"] <= 1
        assert row["epoch_time_s"] > 0 and row["eval_time_s"] > 0 and row["images_per_s"] > 0
    assert not rows[0]["collapsed"], "one epoch of low diversity is not yet a collapse (patience 2)"
    assert rows[1]["train_time_s"] == pytest.approx(rows[0]["train_time_s"] + rows[1]["epoch_time_s"])
    samples = os.path.join(trial_dir, "samples")
    assert sorted(os.listdir(samples)) == ["epoch_0001.png", "epoch_0002.png", "fixed_labels.npy",
                                           "fixed_latents.npy", "grid.json", "latest.png"]
    grid = Image.open(os.path.join(samples, "latest.png"))
    assert grid.mode == "L" and grid.size == (4 * (32 + PAD) + PAD,) * 2  # 4 x 4 grayscale cells of 32 px
    with open(os.path.join(samples, "latest.png"), "rb") as a, open(os.path.join(samples, "epoch_0002.png"), "rb") as b:
        assert a.read() == b.read()
    assert np.asarray(Image.open(os.path.join(samples, "epoch_0001.png"))).std() > 0


def test_the_report_draws_the_collapse_threshold_the_trials_ran_with(conditional_experiment, sweep, tmp_path):
    """Each trial writes its resolved config; the report reads the threshold
    from there, not from the trainable's default (0.15)."""
    (trial,) = conditional_experiment.trials.itertuples()
    resolved = json.load(open(os.path.join(conditional_experiment.uri, trial.trial_dir, RESOLVED_CONFIG_FILE)))
    assert resolved["collapse_diversity"] == 0.3 and resolved["collapse_patience"] == GanConfig.model_fields["collapse_patience"].default
    assert conditional_experiment.resolved_values("collapse_diversity") == [0.3]
    curves = {s.title: s for s in gan_sections(conditional_experiment, str(tmp_path / "r"), top=1)}
    assert "diversity below 0.3 or" in curves["GAN: FID and diversity by epoch"].text
    default, _ = sweep
    assert default.resolved_values("collapse_diversity") == [GanConfig.model_fields["collapse_diversity"].default]


def test_generate_one_category_from_a_conditional_trial(conditional_experiment, tmp_path, capsys):
    out = tmp_path / "library"
    assert main(["generate", conditional_experiment.uri, "--n", "4", "--category", "library", "--out", str(out)]) == 0
    manifest = pd.read_csv(out / "images.csv", dtype={"trial": str})  # a hex trial id can be all digits
    assert list(manifest["category"]) == ["library"] * 4
    assert Image.open(out / "image_0000.png").mode == "L"  # a grayscale GAN writes grayscale images
    # subway is a class of the experiment, but this trial trained on two others only.
    assert main(["generate", conditional_experiment.uri, "--category", "subway", "--out", str(tmp_path / "x")]) == 2
    assert "'subway' is not one of trial" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_a_retried_trial_resumes_at_its_next_epoch_with_the_same_latents(ray_local, synth_root, tmp_path):
    exp = load_experiment(run_sweep(load_spec(gan_spec(tmp_path, synth_root, {
        "name": "gan-retry", "failure": {"max_failures": 1},
        "fixed": {"epochs": 3, "d_steps": 2, "label_smoothing": 0.1, "debug_fault": {"epoch": 1, "mode": "once"}}}))))
    (trial,) = exp.trials.itertuples()
    assert trial.failures == 1, "the injected fault must have failed the first attempt"
    assert trial.status == "completed"
    trial_dir = os.path.join(exp.uri, trial.trial_dir)
    rows = read_results(trial_dir)
    assert [r["epoch"] for r in rows] == [1, 2, 3], "epochs continue after the retry, not from 1"
    assert rows[1]["iterations_since_restore"] == 1, "epoch 2 ran in the retried process"
    # samples/fixed_latents.npy was written by the first attempt only; the last
    # checkpoint by the retried one, from the latents it restored.
    (last,) = [os.path.join(trial_dir, d) for d in os.listdir(trial_dir) if d.startswith("checkpoint_")]
    np.testing.assert_array_equal(np.load(os.path.join(trial_dir, "samples", "fixed_latents.npy")),
                                  np.load(os.path.join(last, "fixed_latents.npy")))
    # Both optimizers continued from their saved state: 10 generator steps an epoch, 2 discriminator
    # steps each (d_steps), 3 epochs; 20 and 40 had they restarted with the retry.
    with open(os.path.join(last, "state.json")) as f:
        state = json.load(f)
    assert state["epoch"] == 3 and state["optimizer_steps"] == {"generator": 30, "discriminator": 60}
    assert len(state["diversity"]) == 3, "the collapse detector's history spans the retry"
    assert {"epoch_0001.png", "epoch_0002.png", "epoch_0003.png"} <= set(os.listdir(os.path.join(trial_dir, "samples")))


@pytest.fixture(scope="module")
def sweep(ray_local, synth_root, tmp_path_factory):
    """Six trials, ASHA on fid: rung at epoch 1, keep the best third."""
    tmp = tmp_path_factory.mktemp("gan_sweep")
    spec = load_spec(gan_spec(tmp, synth_root, {
        "name": "gan-asha", "search": {"num_samples": 6, "max_concurrent": 2, "seed": 0},
        "scheduler": {"name": "asha", "max_t": 2, "grace_period": 1, "reduction_factor": 3, "brackets": 1},
        "space": {"gen_filters": {"choice": [4, 8, 16]}, "disc_filters": {"choice": [4, 8, 16]},
                  "gen_learning_rate": {"loguniform": [1e-4, 2e-3]}},
        "fixed": {"gen_filters": None, "disc_filters": None}}))
    return load_experiment(run_sweep(spec)), tmp


def test_asha_on_fid_stops_trials_early(sweep):
    exp, _ = sweep
    statuses = exp.trials["status"].tolist()
    assert len(statuses) == 6 and "errored" not in statuses
    assert "stopped" in statuses, "ASHA must have stopped at least one trial after its first epoch"
    assert exp.trials.loc[exp.trials["status"] == "stopped", "epochs"].eq(1).all()
    assert set(TRAINABLES["gan"].metrics) <= set(exp.epochs.columns)
    assert exp.epochs["fid"].notna().all()


def test_the_report_draws_the_gan_sweeps_best_fid_so_far(sweep):
    from tests.anytime_checks import check_anytime_section

    exp, tmp = sweep
    check_anytime_section(exp, str(tmp / "anytime"))


def test_the_gan_report_sections_hold_grids_strips_curves_and_widths(sweep):
    exp, tmp = sweep
    out = tmp / "report"
    sections = gan_sections(exp, str(out), top=2)
    by_title = {s.title: s for s in sections}
    grids = by_title["GAN: samples of the best trials"].figures
    strips = by_title["GAN: the same latents over the epochs"].figures
    curves = by_title["GAN: FID and diversity by epoch"].figures
    assert len(grids) == 2 and len(strips) == 2 and len(curves) == 1
    for path in [*grids.values(), *strips.values(), *curves.values()]:
        assert os.path.isfile(path) and path.startswith(str(out)) and Image.open(path).size[0] > 100
    best = exp.trials.sort_values("last_fid").iloc[0]
    assert any(caption.startswith(best.trial_id) for caption in grids)
    tables = by_title["GAN: the best widths"].tables
    ranked = tables["gan_best_trials"]
    assert list(ranked["trial"])[0] == best.trial_id and ranked["fid"].is_monotonic_increasing
    assert {"gen_filters", "disc_filters", "fid", "kid", "diversity", "collapsed"} <= set(ranked.columns)
    pivot = tables["gan_best_by_width"].set_index("gen_filters")
    assert np.nanmin(pivot.to_numpy(dtype=float)) == pytest.approx(best.last_fid)
    assert "random_conv" in by_title["GAN: FID and diversity by epoch"].text


def test_generate_writes_images_from_the_best_trial_or_a_chosen_one(sweep, capsys):
    exp, tmp = sweep
    out = tmp / "generated"
    assert main(["generate", exp.uri, "--n", "5", "--out", str(out)]) == 0
    best = exp.trials.sort_values("last_fid").iloc[0].trial_id
    assert f"from trial {best}" in capsys.readouterr().out
    manifest = pd.read_csv(out / "images.csv", dtype={"trial": str})  # a hex trial id can be all digits
    assert list(manifest["file"]) == [f"image_{i:04d}.png" for i in range(5)]
    assert set(manifest["trial"]) == {best}
    images = [np.asarray(Image.open(out / name)) for name in manifest["file"]]
    assert images[0].shape == (32, 32, 3) and not np.array_equal(images[0], images[1])
    other = exp.trials.sort_values("last_fid").iloc[-1].trial_id
    assert main(["generate", exp.uri, "--n", "2", "--trial", other, "--out", str(tmp / "other")]) == 0
    assert set(pd.read_csv(tmp / "other" / "images.csv", dtype={"trial": str})["trial"]) == {other}


@pytest.mark.parametrize("args, message", [
    (["--n", "0"], "--n: must be at least 1, got 0"),
    (["--trial", "nope"], "--trial: no trial 'nope' in"),
    (["--category", "library"], "is not conditional"),
])
def test_generate_rejects_bad_input_in_one_line(sweep, capsys, args, message):
    exp, tmp = sweep
    out = tmp / "rejected"
    assert main(["generate", exp.uri, "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("scenetune: error: ")
    assert not out.exists(), "nothing is written on bad input"


def test_generate_refuses_to_overwrite_and_to_read_a_missing_or_non_gan_experiment(sweep, capsys, tmp_path):
    exp, tmp = sweep
    out = tmp_path / "taken"
    out.mkdir()
    (out / "image_0001.png").write_bytes(b"mine")
    assert main(["generate", exp.uri, "--n", "3", "--out", str(out)]) == 2
    assert "already holds image_0001.png" in capsys.readouterr().err
    assert (out / "image_0001.png").read_bytes() == b"mine" and sorted(os.listdir(out)) == ["image_0001.png"]
    assert main(["generate", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "no such experiment directory" in capsys.readouterr().err
    classifier = tmp_path / "clf"
    classifier.mkdir()
    (classifier / "scenetune_spec.yaml").write_text(yaml.safe_dump({"trainable": "classifier", "metric": "loss"}))
    assert main(["generate", str(classifier), "--out", str(tmp_path / "o")]) == 2
    assert "not a GAN" in capsys.readouterr().err


def test_scenetune_report_on_a_gan_experiment(sweep, capsys):
    from scenetune.cli import main

    exp, tmp = sweep
    out = tmp / "full-report"
    assert main(["report", exp.uri, "--out", str(out)]) == 0
    html = (out / "report.html").read_text()
    for title in ("GAN: samples of the best trials", "GAN: FID and diversity by epoch", "GAN: the best widths"):
        assert title in html
    assert html.count("data:image/png;base64,") >= 4
