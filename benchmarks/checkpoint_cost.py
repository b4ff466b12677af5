"""What checkpoints cost against an epoch, per backbone, at every epoch (the
old policy) and at the default ``checkpoint.frequency: auto``.

    .venv/bin/python benchmarks/checkpoint_cost.py                 # basic_cnn and mobilenet_v2 at 224 px
    .venv/bin/python benchmarks/checkpoint_cost.py --backbones mobilenet_v2 --trainable-layers 0

For each backbone (``weights: none``: the same layers and sizes as ImageNet's),
in one process:
- epoch time: images/s of ``model.fit`` on random 224 px batches (steps after
  the first, so tracing is left out) times the train split of the seed
  report's 25 categories (60% of 5,805 images), what a real epoch trains on;
- checkpoint: what a classifier trial writes (``model.keras`` with the
  optimizer's state after a train step, and ``state.json``) and then a copy
  of the folder to a storage folder, as Ray Tune persists it to local or NFS
  storage: seconds and MB, the median of ``--repeats``;
- the share of epoch time checkpoints take over a trial, for every epoch and
  for the default policy, on the schedules of ``sweeps/seed-table2.yaml``
  (20 epochs, no ASHA) and of ASHA over 20 epochs (grace 1, factor 3).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

SEED25_TRAIN_IMAGES = int(0.6 * 5805)
SCHEDULES = {"seed-table2 (20 epochs, no ASHA)": {"name": "none"},
             "ASHA over 20 epochs (grace 1, factor 3)": {"name": "asha", "grace_period": 1, "reduction_factor": 3}}


def checkpoints_per_trial(scheduler: dict, epochs: int = 20) -> int:
    """Checkpoints a trial that runs all ``epochs`` writes under the default policy."""
    from scenetune.search.spec import SweepSpec
    spec = SweepSpec.model_validate({"name": "x", "data": {"root": "."}, "scheduler": {**scheduler, "max_t": epochs},
                                     "fixed": {"epochs": epochs}})
    return len(spec.checkpoint_epochs()) + 1  # and the last epoch


def measure(backbone: str, size: int, layers: int, batch: int, steps: int, repeats: int) -> dict:
    import keras

    from scenetune.trainables.classifier.config import ClassifierConfig
    from scenetune.trainables.classifier.models import build_classifier
    from scenetune.trainables.reporting import folder_mb

    keras.backend.clear_session()
    cfg = ClassifierConfig(backbone=backbone, weights="none", image_size=size, trainable_layers=layers,
                           batch_size=batch, dense_units=256)
    model = build_classifier(cfg, 25)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (batch * (steps + 1), size, size, 3), dtype=np.uint8)
    y = rng.integers(0, 25, batch * (steps + 1))
    model.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0)  # trace, build the optimizer
    started = time.perf_counter()
    model.fit(x[batch:], y[batch:], batch_size=batch, epochs=1, verbose=0)
    images_per_s = batch * steps / (time.perf_counter() - started)
    seconds, sizes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            folder, stored = os.path.join(tmp, f"ckpt{i}"), os.path.join(tmp, f"storage{i}")
            os.makedirs(folder)
            started = time.perf_counter()
            model.save(os.path.join(folder, "model.keras"))
            with open(os.path.join(folder, "state.json"), "w") as f:
                f.write('{"epoch": 1, "train_time_s": 1.0}')
            shutil.copytree(folder, stored)
            seconds.append(time.perf_counter() - started)
            sizes.append(folder_mb(folder))
    epoch_s = SEED25_TRAIN_IMAGES / images_per_s
    row = {"backbone": backbone, "trained layers": layers, "images/s": images_per_s, "epoch s (seed25)": epoch_s,
           "checkpoint MB": statistics.median(sizes), "checkpoint s": statistics.median(seconds),
           "every epoch: % of epoch": 100 * statistics.median(seconds) / epoch_s}
    for label, scheduler in SCHEDULES.items():
        written = checkpoints_per_trial(scheduler)
        row[f"auto, {label}: % of epoch"] = 100 * written * statistics.median(seconds) / (20 * epoch_s)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbones", default="basic_cnn,mobilenet_v2")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--trainable-layers", type=int, default=1000, help="unfrozen backbone layers "
                        "(default: all, the largest optimizer state)")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--steps", type=int, default=6, help="timed train steps (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from scenetune.trainables.classifier.backbones import BACKBONES
    unknown = [b for b in args.backbones.split(",") if b not in BACKBONES]
    if unknown:
        parser.error(f"--backbones: unknown {', '.join(unknown)}; known: {', '.join(BACKBONES)}")
    if min(args.steps, args.repeats, args.batch) < 1:
        parser.error("--steps, --repeats and --batch: give 1 or more")
    rows = []
    for backbone in args.backbones.split(","):
        print(f"measuring {backbone} at {args.size} px", file=sys.stderr, flush=True)
        rows.append(measure(backbone, args.size, args.trainable_layers, args.batch, args.steps, args.repeats))
    table = pd.DataFrame(rows).set_index("backbone").T
    print(table.round(3).to_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
