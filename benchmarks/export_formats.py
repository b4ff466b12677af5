"""The export formats side by side, per backbone: size, agreement with the
Keras model, accuracy and one thread's latency (``scenetune export``,
docs/deploy.md).

    .venv/bin/python benchmarks/export_formats.py            # basic_cnn 96 px, mobilenet_v2 and efficientnet_v2_b0 at 128 px
    .venv/bin/python benchmarks/export_formats.py --quick    # a minute: basic_cnn and mobilenet_v2 at 32 px, tiny data
    .venv/bin/python benchmarks/export_formats.py --backbones mobilenet_v2 --size 224 --epochs 5

For each backbone (``weights: none``, so nothing is downloaded; the same
layers and sizes as the ImageNet ones), in this process: synthetic scenes
(:mod:`scenetune.trainables.data.synth`, images 1.25x the model's side)
split per class into train (60%) and test (40%), decoded by the training
decode; a classifier built as a trial builds it, fitted ``--epochs`` on the
train split (then BatchNorm's moving statistics set to the train split's,
see :func:`settle_batchnorm`); then every format exported by the export's own code
(:func:`scenetune.commands.export_model.export_keras_model`, the float
formats' 99% agreement gate off so every row is shown) and checked on the
test split as ``scenetune export`` checks it: the SavedModel in a fresh
Python on one thread, the TFLite files on one interpreter thread. Latency is
the median of single-image calls after warm-up. Ratios are against the
float32 TFLite file. The int8 file is calibrated on up to 200 training
images.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

FORMATS = ("savedmodel", "tflite", "tflite-int8")
DEFAULT = "basic_cnn:96,mobilenet_v2:128,efficientnet_v2_b0:128"
QUICK = "basic_cnn:32,mobilenet_v2:32"


def synthetic_split(folder: str, classes: int, per_class: int, size: int):
    """``(train images, train labels, test images, test labels, test files, class names)``."""
    from scenetune.trainables.data.decode import load_resized
    from scenetune.trainables.data.synth import write_synthetic

    names = write_synthetic(folder, classes, per_class, max(size * 5 // 4, 8), seed=0)
    train, test = ([], [], []), ([], [], [])
    for c, name in enumerate(names):
        files = sorted(os.listdir(os.path.join(folder, "Images", name)))
        cut = int(len(files) * 0.6)
        for i, file in enumerate(files):
            path = os.path.join(folder, "Images", name, file)
            part = train if i < cut else test
            part[0].append(load_resized(path, size))
            part[1].append(c)
            part[2].append(path)
    return (np.stack(train[0]), np.asarray(train[1]), np.stack(test[0]), np.asarray(test[1]), test[2], names)


def fit(backbone: str, size: int, classes: int, x: np.ndarray, y: np.ndarray, epochs: int):
    import keras

    from scenetune.trainables.classifier.config import ClassifierConfig
    from scenetune.trainables.classifier.models import build_classifier

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    cfg = ClassifierConfig(backbone=backbone, weights="none", image_size=size, batch_size=16, dense_units=64,
                           learning_rate=1e-3, trainable_layers=1000, cnn_blocks=3, cnn_filters=16)
    model = build_classifier(cfg, classes)
    started = time.perf_counter()
    model.fit(x.astype(np.float32), y, batch_size=16, epochs=epochs, verbose=0, shuffle=True)
    settle_batchnorm(model, x[:256])
    return model, time.perf_counter() - started


def batchnorm_layers(layer):
    for sub in getattr(layer, "layers", []):
        if sub.__class__.__name__ == "BatchNormalization":
            yield sub
        else:
            yield from batchnorm_layers(sub)


def settle_batchnorm(model, x: np.ndarray) -> None:
    """BatchNorm's moving statistics set to the training images' own. Trained
    from scratch for a few dozen steps, MobileNetV2's (momentum 0.999) are
    still mostly their initial values, and the model predicts one class for
    every image at inference: nothing for an export to agree or disagree on."""
    layers = list(batchnorm_layers(model))
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(x.astype(np.float32), training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


def measure(backbone: str, size: int, args, tmp: str) -> list[dict]:
    from scenetune.commands.export_model import CheckImages, export_keras_model

    data_dir = os.path.join(tmp, f"data-{backbone}-{size}")
    x, y, tx, ty, files, names = synthetic_split(data_dir, args.classes, args.per_class, size)
    model, fit_s = fit(backbone, size, len(names), x, y, args.epochs)
    rng = np.random.default_rng(0)
    calibration = x[rng.permutation(len(x))[:200]]
    data = CheckImages(tx, ty, files, calibration)
    rows = []
    for fmt in FORMATS:
        out = os.path.join(tmp, f"{backbone}-{size}-{fmt}")
        started = time.perf_counter()
        card = export_keras_model(model, names, fmt, out, data, {"benchmark": "export_formats.py"},
                                  progress=lambda m: None, min_agreement=None)
        rows.append({"backbone": backbone, "px": size, "format": fmt, "size MB": card["size_mb"],
                     "agreement": card["agreement"], "accuracy": card["accuracy"],
                     "keras accuracy": card["keras_accuracy"], "latency ms": card["latency_ms"],
                     "export s": time.perf_counter() - started, "fit s": fit_s, "test images": card["test_images"]})
        print(f"  {backbone} {size}px {fmt}: {card['size_mb']:.3f} MB, agreement {card['agreement']:.3f}, "
              f"{card['latency_ms']:.2f} ms", file=sys.stderr, flush=True)
    base = next(r for r in rows if r["format"] == "tflite")
    for r in rows:
        r["size vs tflite"] = r["size MB"] / base["size MB"]
        r["latency vs tflite"] = r["latency ms"] / base["latency ms"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK}, 3 classes x 20 images, 3 epochs")
    parser.add_argument("--backbones", default=None, help=f"BACKBONE:PX,... (default: {DEFAULT})")
    parser.add_argument("--size", type=int, help="one image size for every backbone")
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    if args.quick:
        args.classes, args.per_class, args.epochs = 3, 20, 3
    plan = [(b.split(":")[0], args.size or int(b.split(":")[1]) if ":" in b else args.size or 128)
            for b in (args.backbones or (QUICK if args.quick else DEFAULT)).split(",")]

    from scenetune.trainables.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import pandas as pd

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backbone, size in plan:
            rows += measure(backbone, size, args, tmp)
    table = pd.DataFrame(rows)
    print(f"{args.classes} classes, {args.per_class} images each (60% train, 40% test), {args.epochs} epochs; "
          f"{os.cpu_count()} CPUs; latency: median, batch 1, one thread")
    print(table[["backbone", "px", "format", "size MB", "size vs tflite", "agreement", "accuracy", "keras accuracy",
                 "latency ms", "latency vs tflite", "export s"]].to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
