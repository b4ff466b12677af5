"""Where one trial's time goes, phase by phase, in a cold process and a warm one.

    .venv/bin/python benchmarks/trial_profile.py                # the quickstart's kind of trial, 3 epochs
    .venv/bin/python benchmarks/trial_profile.py --size 64 --epochs 4

The phases of ``scenetune.trainables.classifier.train.train_classifier``, called one by one
with a clock between them, in this order: what a sweep's worker process does
as it starts (``scenetune.trainables.warmup``: import TensorFlow, Keras and the
trainables, then ``gc.freeze()``; cold only), importing the trial's modules, validating the config, the reset
of a warm trial (``scenetune.trainables.device.configure``: Keras' session cleared, its
garbage collected, seeds and precision set), reading the split manifest,
opening the decode cache (built in the cold pass), building the model, making
the datasets, then per epoch the fit (epoch 1 includes tracing the train
step), the validation predict (the first traces the predict step) and the
checkpoint write. The same trial runs twice in this process: "cold" (a new
process: imports included) and "warm" (what a reused process pays). Ray's
own costs (a worker process start, reporting round trips to the driver) are
not in this profile: the sweep's ``sweep_timings.json`` and
``benchmarks/warm_trials.py`` measure them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class Clock:
    def __init__(self):
        self.rows, self.last = [], time.perf_counter()

    def lap(self, phase: str, run: str) -> None:
        now = time.perf_counter()
        self.rows.append({"run": run, "phase": phase, "s": now - self.last})
        self.last = now


def one_trial(clock: Clock, run: str, params: dict, epochs: int) -> None:
    from scenetune.trainables import device
    from scenetune.trainables.classifier.config import ClassifierConfig
    from scenetune.trainables.classifier.models import build_classifier
    from scenetune.trainables.classifier.train import load_split, open_image_cache, read_manifest
    from scenetune.trainables.data.pipeline import cached_dataset
    clock.lap("import trial modules", run)
    cfg = ClassifierConfig.model_validate(params)
    clock.lap("validate config", run)
    device.configure(cfg.seed, cfg.mixed_precision, None)
    clock.lap("reset and device set-up", run)
    manifest = read_manifest(cfg)
    clock.lap("read manifest", run)
    cache = open_image_cache(cfg, manifest, 1)
    clock.lap("open decode cache", run)
    train_paths, train_labels, _ = load_split(cfg, "train", manifest, cache.failed)
    val_paths, val_labels, _ = load_split(cfg, "val", manifest, cache.failed)
    model = build_classifier(cfg, len(cfg.data.classes))
    clock.lap("build model", run)
    train = cached_dataset(cache, train_paths, train_labels, cfg.batch_size, cfg.augment, shuffle=True, seed=0)
    val = cached_dataset(cache, val_paths, val_labels, cfg.batch_size)
    clock.lap("make datasets", run)
    for epoch in range(epochs):
        model.fit(train, epochs=epoch + 1, initial_epoch=epoch, verbose=0)
        clock.lap("fit epoch 1 (traces)" if epoch == 0 else "fit, later epochs", run)
        model.predict(val, verbose=0)
        clock.lap("validation predict 1 (traces)" if epoch == 0 else "validation predict, later", run)
        with tempfile.TemporaryDirectory() as folder:
            model.save(os.path.join(folder, "model.keras"))
        clock.lap("checkpoint write", run)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=32, help="image size (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs a trial (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.size < 8 or args.epochs < 2:
        parser.error("--size: 8 or more; --epochs: 2 or more")
    clock = Clock()
    from scenetune.trainables.warmup import import_tensorflow
    import_tensorflow()  # what a sweep's worker does as it starts
    clock.lap("worker start: import TensorFlow, Keras, trainables; gc.freeze", "cold")
    import pandas as pd

    from scenetune.trainables.data.datasets import SplitSpec, build_manifest, manifest_to_csv
    from scenetune.trainables.data.synth import write_synthetic
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "data")
        write_synthetic(root, classes=6, per_class=60, size=64, seed=0)
        manifest = build_manifest(root, "mit67", "all", SplitSpec(0.6, 0.2, 0.2, 42))
        with open(os.path.join(tmp, "split.csv"), "w") as f:
            f.write(manifest_to_csv(manifest))
        params = {"backbone": "basic_cnn", "weights": "none", "image_size": args.size, "epochs": args.epochs,
                  "batch_size": 32, "cnn_blocks": 3, "cnn_filters": 16, "dense_units": 32, "dropout": 0.2,
                  "augment": {"rotation_range": 10, "horizontal_flip": True}, "cache_dir": os.path.join(tmp, "cache"),
                  "data": {"root": root, "manifest": os.path.join(tmp, "split.csv"),
                           "classes": sorted(manifest["label"].unique())}}
        clock.last = time.perf_counter()
        for run in ("cold", "warm"):
            one_trial(clock, run, params, args.epochs)
    table = pd.DataFrame(clock.rows).groupby(["phase", "run"], sort=False)["s"].sum().unstack("run")
    table.loc["total"] = table.sum()
    print(table.round(3).to_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
