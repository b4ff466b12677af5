"""Real Ray Tune experiments whose numbers are known in advance.

``train_known`` is a plain-Python function trainable (no TensorFlow) that
reports, epoch by epoch, the values ``KNOWN`` lists for its
``(backbone, image_size, seed)``, and writes ``val_predictions.csv`` as the
classifier does. ``run_known`` writes the experiment's spec and split as
``scenetune.search.tuner.prepare`` does and runs the points through ``ray.tune.Tuner``
with the sweep's own searcher, scheduler and RunConfig shape.
"""

from __future__ import annotations

import io
import os

import pandas as pd
from ray import tune

from scenetune.search.schedulers import tune_ranking
from scenetune.search.spec import parse_spec
from scenetune.search.tuner import prepare, scheduler, searcher_and_space
from scenetune.spaces import deep_merge
from scenetune.trainables.classifier.config import ClassifierConfig
from scenetune.trainables.reporting import write_resolved_config
from tests.conftest import BASE_SPEC, deep_update

# (backbone, image_size, seed) -> per-epoch val_accuracy and epoch_time_s; fail_at: raise at that epoch.
KNOWN = {
    # Table 1 of the seed report: 0.44 / 99 s, 0.75 / 386 s, 0.79 / 746 s (seed 0), and a weaker seed 1.
    ("mobilenet_v2", 50, 0): {"val_accuracy": [0.30, 0.44], "epoch_time_s": [40.0, 59.0]},
    ("mobilenet_v2", 150, 0): {"val_accuracy": [0.60, 0.75], "epoch_time_s": [186.0, 200.0]},
    ("mobilenet_v2", 224, 0): {"val_accuracy": [0.70, 0.79], "epoch_time_s": [346.0, 400.0]},
    ("mobilenet_v2", 50, 1): {"val_accuracy": [0.25, 0.40], "epoch_time_s": [45.0, 55.0]},
    ("mobilenet_v2", 150, 1): {"val_accuracy": [0.55, 0.71], "epoch_time_s": [190.0, 200.0]},
    ("mobilenet_v2", 224, 1): {"val_accuracy": [0.66, 0.77], "epoch_time_s": [350.0, 410.0]},
    ("basic_cnn", 224, 0): {"val_accuracy": [0.20, 0.32], "epoch_time_s": [30.0, 30.0]},
    # ASHA (grace 1, factor 2, max_t 4), one trial at a time: completes, stopped at rung 1, errors at epoch 3.
    ("mobilenet_v2", 64, 10): {"val_accuracy": [0.50, 0.60, 0.70, 0.80], "epoch_time_s": [1.0, 1.0, 1.0, 1.0]},
    ("mobilenet_v2", 64, 11): {"val_accuracy": [0.10, 0.20, 0.30, 0.40], "epoch_time_s": [2.0, 2.0, 2.0, 2.0]},
    ("mobilenet_v2", 64, 12): {"val_accuracy": [0.90, 0.95, 0.96, 0.97], "epoch_time_s": [1.0, 1.0, 1.0, 1.0],
                               "fail_at": 3},
}

TABLE1_POINTS = [{"backbone": b, "image_size": s, "seed": seed} for (b, s, seed) in list(KNOWN)[:7]]
ASHA_POINTS = [{"backbone": b, "image_size": s, "seed": seed} for (b, s, seed) in list(KNOWN)[7:]]


def known_predictions(manifest_text: str, classes: list[str]) -> pd.DataFrame:
    """Validation predictions: every fourth image is given the next class."""
    manifest = pd.read_csv(io.StringIO(manifest_text), dtype=str)
    rows = manifest[manifest["split"] == "val"].reset_index(drop=True)
    predicted = [classes[(classes.index(t) + (i % 4 == 0)) % len(classes)] for i, t in enumerate(rows["label"])]
    frame = pd.DataFrame({"path": rows["path"], "true": rows["label"], "predicted": predicted})
    for name in classes:
        frame[f"prob_{name}"] = [0.7 if p == name else 0.3 / (len(classes) - 1) for p in predicted]
    return frame


def train_known(config: dict) -> None:
    entry = KNOWN[(config["backbone"], config["image_size"], config["seed"])]
    cfg = ClassifierConfig.model_validate(config)
    write_resolved_config(cfg, **cfg.facts())  # as the classifier trainable does
    with open(config["data"]["manifest"]) as f:
        known_predictions(f.read(), config["data"]["classes"]).to_csv("val_predictions.csv", index=False)
    train_time = 0.0
    for epoch, (val_accuracy, epoch_time) in enumerate(zip(entry["val_accuracy"], entry["epoch_time_s"]), 1):
        if entry.get("fail_at") == epoch:
            raise RuntimeError(f"known failure at epoch {epoch}")
        train_time += epoch_time
        tune.report({"epoch": epoch, "loss": 1.0 - val_accuracy + 0.1, "accuracy": val_accuracy + 0.05,
                     "val_loss": 1.0 - val_accuracy + 0.2, "val_accuracy": val_accuracy, "epoch_time_s": epoch_time,
                     "train_time_s": train_time, "images_per_s": 100.0 / epoch_time,
                     "trainable_params": 1000, "total_params": 2000})


def run_known(storage: str, synth_root: str, name: str, points: list[dict], changes: dict | None = None) -> str:
    """Run ``points`` as a sweep named ``name``; returns the experiment directory."""
    raw = deep_update(BASE_SPEC, {
        "name": name, "data": {"root": synth_root}, "storage": storage,
        "search": {"algorithm": "random", "num_samples": len(points), "max_concurrent": 2, "points": points},
        "space": {"backbone": {"choice": sorted({p["backbone"] for p in points})},
                  "image_size": {"choice": sorted({p["image_size"] for p in points})},
                  "seed": {"choice": sorted({p["seed"] for p in points})}},
        "fixed": {"backbone": None, "image_size": None, "trainable_layers": 8, "dense_activation": "sigmoid",
                  "learning_rate": 1.0e-4, "batch_size": 20,
                  "augment": {"rotation_range": 20, "zoom_range": 0.15, "horizontal_flip": True}}})
    spec = parse_spec(deep_update(raw, changes or {}))
    prepared = prepare(spec)
    search_alg, space = searcher_and_space(spec)
    data = {"data": {"root": spec.data.root, "manifest": prepared.manifest_uri, "classes": prepared.classes}}
    chosen = scheduler(spec)
    metric, mode = tune_ranking(chosen, spec.metric, spec.mode)
    tuner = tune.Tuner(  # scenetune.search.tuner.build_tuner's shape, with the known trainable
        tune.with_resources(train_known, {"cpu": 1}),
        param_space=deep_merge(deep_merge(spec.fixed, space), data),
        tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=search_alg,
                                    scheduler=chosen, num_samples=spec.search.num_samples,
                                    reuse_actors=False),  # the generator limits concurrency itself
        run_config=tune.RunConfig(name=spec.name, storage_path=os.path.abspath(storage),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=spec.checkpoint.num_to_keep),
                                  failure_config=tune.FailureConfig(max_failures=spec.failure.max_failures),
                                  sync_config=tune.SyncConfig(sync_artifacts=True), verbose=0))
    tuner.fit()
    return spec.experiment_uri
