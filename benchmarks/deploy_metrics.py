"""What measuring the deployment metrics costs a classifier trial (issue
"From sweep to deployment", item 1): ``model_mb`` (free: a parameter count)
and ``latency_ms`` (``trainables.classifier.train.single_image_latency_ms``:
3 warm-up and 15 timed calls of ``predict_on_batch`` on one image), measured
once a trial.

    .venv/bin/python benchmarks/deploy_metrics.py            # the quickstart's configurations, and MobileNetV2
    .venv/bin/python benchmarks/deploy_metrics.py --epochs 2 # shorter trials: a larger share

For each configuration, in one process and one thread (a 1-CPU trial's),
on the quickstart's data (6 synthetic classes of 60 images, 60/20/20 split):
a trial as the classifier trainable runs it (the model built, ``fit`` one
epoch at a time with the validation predictions after each, as
``TuneReporter`` does), then the latency measurement as the trial makes it,
after the first epoch's validation predictions. Prints each one's seconds
and the measurement's share of the trial.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

CONFIGS = [  # the quickstart's corners (basic_cnn), and a heavy backbone
    {"backbone": "basic_cnn", "image_size": 32, "cnn_blocks": 2, "cnn_filters": 16, "dense_units": 32},
    {"backbone": "basic_cnn", "image_size": 64, "cnn_blocks": 3, "cnn_filters": 32, "dense_units": 64},
    {"backbone": "mobilenet_v2", "image_size": 64, "trainable_layers": 20},
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6, help="epochs a trial trains (the quickstart's max_t)")
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    from scenetune.trainables.classifier.config import ClassifierConfig
    from scenetune.trainables.classifier.models import build_classifier
    from scenetune.trainables.classifier.train import single_image_latency_ms
    from scenetune.trainables.data.decode import load_resized
    from scenetune.trainables.data.synth import write_synthetic

    folder = tempfile.mkdtemp(prefix="deploy-metrics-")
    classes = write_synthetic(folder, classes=6, per_class=60, size=96, seed=0)
    images_dir = os.path.join(folder, "Images")
    paths, labels = [], []
    for label, name in enumerate(classes):
        for file in sorted(os.listdir(os.path.join(images_dir, name))):
            paths.append(os.path.join(images_dir, name, file))
            labels.append(label)
    labels = np.array(labels)
    rows = []
    for settings in CONFIGS:
        cfg = ClassifierConfig.model_validate({"weights": "none", "batch_size": 32, "epochs": args.epochs,
                                               **settings})
        images = np.stack([load_resized(p, cfg.image_size) for p in paths]).astype(np.float32)
        order = np.random.default_rng(0).permutation(len(paths))
        train, val = order[:int(0.6 * len(order))], order[int(0.6 * len(order)):int(0.8 * len(order))]
        start = time.perf_counter()
        model = build_classifier(cfg, 6)
        latency_s = None
        for epoch in range(args.epochs):
            model.fit(images[train], labels[train], batch_size=cfg.batch_size, epochs=1, verbose=0)
            model.predict(images[val], batch_size=cfg.batch_size, verbose=0)
            if epoch == 0:
                measured = time.perf_counter()
                latency_ms = single_image_latency_ms(model, cfg.image_size)
                latency_s = time.perf_counter() - measured
        trial_s = time.perf_counter() - start - latency_s
        name = f"{cfg.backbone} {cfg.image_size} px" + (f" ({cfg.cnn_blocks}x{cfg.cnn_filters})"
                                                        if cfg.backbone == "basic_cnn" else "")
        rows.append({"configuration": name, "trial_s": trial_s, "latency_ms": latency_ms,
                     "measuring_s": latency_s, "share_%": 100 * latency_s / trial_s,
                     "model_mb": 4 * model.count_params() / 1e6})
        print(f"{name}: trial {trial_s:.1f} s, measuring {latency_s:.3f} s", file=sys.stderr, flush=True)
    print(f"\nA trial of {args.epochs} epochs, one thread; measuring latency_ms once, after the first epoch:\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3g"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
