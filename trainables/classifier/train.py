"""``train_classifier(config)``: the classifier trainable.

Contract (docs/architecture.md): reads only its config (validated by
:class:`~scenetune.trainables.classifier.config.ClassifierConfig`); one Tune iteration per epoch,
each reported with ``ray.tune.report(metrics, checkpoint=...)``; a retried
trial resumes from ``ray.tune.get_checkpoint()`` at its next epoch.

Data: the manifest's train and val images are decoded once per node and size
into the decode cache (:mod:`scenetune.trainables.data.cache`, built by the first trial that
needs it, before the clock of ``train_time_s`` starts) and streamed from it
as uint8 batches. The augmentation runs on the CPU in the input pipeline, or
as the model's first layer when the trial has a GPU (``augment_on``).

Per epoch it reports ``epoch, loss, accuracy, val_loss, val_accuracy,
epoch_time_s, train_time_s, images_per_s`` (plus the parameter counts, the
deployment metrics ``model_mb`` and ``latency_ms``, the epoch's
``image_size`` and ``full_size_epoch_time_s``) and
checkpoints ``model.keras`` with ``state.json``. The validation predictions of
the latest epoch are written to ``val_predictions.csv`` in the trial's
working directory, which Ray syncs to the experiment's storage.

Progressive resizing (``progressive_resize: [s1, s2, ...]``) trains in
phases: epochs from ``resize_epochs[i]`` on use size ``s_i`` (a sweep sets
them to ASHA's rungs, so a trial grows as ASHA promotes it). The model takes
any input size, so each phase carries the previous one's weights.
"""

from __future__ import annotations

import json
import os
import socket

import keras
import numpy as np
import pandas as pd
from ray import tune

from scenetune.core import storage
from scenetune.core.layout import MODEL_FILE, STATE_FILE
from scenetune.core.timing import median_ms
from scenetune.trainables import device
from scenetune.trainables.callback import TuneCallback
from scenetune.trainables.classifier.config import ClassifierConfig
from scenetune.trainables.classifier.models import build_classifier
from scenetune.trainables.classifier.scores import predictions_frame, scores
from scenetune.trainables.data.augment import RandomAffine
from scenetune.trainables.data.cache import open_cache
from scenetune.trainables.data.datasets import manifest_from_csv, split_rows
from scenetune.trainables.data.pipeline import cached_dataset
from scenetune.trainables.reporting import write_resolved_config

PREDICTIONS = "val_predictions.csv"


# Trials cache (so read) only what they train and validate on: the test split
# is read once, by the final evaluation.
TRIAL_SPLITS = ("train", "val")


def read_manifest(cfg: ClassifierConfig) -> pd.DataFrame:
    data = cfg.data
    if data is None:
        raise ValueError("config.data is missing: run trials through `scenetune sweep`")
    if not os.path.isdir(data.root):
        raise FileNotFoundError(f"dataset root {data.root} is missing on node {socket.gethostname()}")
    return manifest_from_csv(storage.read_text(data.manifest))


def load_split(cfg: ClassifierConfig, split: str, manifest: pd.DataFrame | None = None,
               exclude: dict[str, str] | None = None) -> tuple[list[str], list[int], pd.DataFrame]:
    """Absolute paths, label indices and manifest rows of one split of the
    experiment's manifest, less the paths in ``exclude`` (files that failed
    to decode into the cache)."""
    manifest = read_manifest(cfg) if manifest is None else manifest
    paths, labels, rows = split_rows(manifest, cfg.data.root, split, cfg.data.classes, exclude)
    missing = [p for p in paths[:1] + paths[-1:] if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"{missing[0]} is missing on node {socket.gethostname()}")
    return paths, labels, rows


def open_image_cache(cfg: ClassifierConfig, manifest: pd.DataFrame, cpus: float, size: int | None = None):
    """The node's decode cache of the train and val images at ``size``
    (default: the trial's image size)."""
    usable = manifest[manifest["split"].isin(TRIAL_SPLITS)]
    paths = [os.path.join(cfg.data.root, p) for p in usable["path"]]
    return open_cache(paths, size or cfg.image_size, cfg.cache_dir, workers=max(2, int(cpus)))


LATENCY_WARMUP, LATENCY_RUNS = 3, 15


def single_image_latency_ms(model: keras.Model, image_size: int) -> float:
    """Median milliseconds of ``model.predict_on_batch`` on one image (batch 1,
    the trial's CPU threads: one for a 1-CPU trial), after a warm-up; the
    function Keras traced for the validation predictions is reused."""
    image = np.random.default_rng(0).integers(0, 256, (1, image_size, image_size, 3)).astype(np.float32)
    return median_ms(lambda: model.predict_on_batch(image), runs=LATENCY_RUNS, warmup=LATENCY_WARMUP)


class TuneReporter(TuneCallback):
    """Validates each epoch; checkpoints the model and the training clock."""

    def __init__(self, cfg, val_rows, val_labels, num_train, train_time_s):
        super().__init__(cfg)
        self.val_rows, self.epochs_done = val_rows, 0
        self.val_labels = np.asarray(val_labels)
        self.num_train, self.train_time_s = num_train, train_time_s
        self.val_ds, self.image_size = None, cfg.image_size
        self.deployment: dict | None = None

    def phase(self, val_ds, image_size: int) -> None:
        """Validate on ``val_ds``, images of ``image_size``, from now on."""
        self.val_ds, self.image_size = val_ds, image_size

    def epoch_metrics(self, epoch: int, logs: dict, epoch_time: float) -> dict:
        self.train_time_s += epoch_time
        self.epochs_done = epoch
        probs = self.model.predict(self.val_ds, verbose=0)
        val = scores(probs, self.val_labels)
        classes = self.cfg.data.classes
        predictions_frame(self.val_rows, probs, classes).to_csv(PREDICTIONS, index=False)
        return {
            "epoch": epoch,
            "loss": float(logs["loss"]),
            "accuracy": float(logs["accuracy"]),
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "epoch_time_s": epoch_time,
            "train_time_s": self.train_time_s,
            "images_per_s": self.num_train / epoch_time,
            "image_size": self.image_size,
            # What this epoch would have cost at the final size: convolutions
            # cost in proportion to pixels (exact once at the final size).
            "full_size_epoch_time_s": epoch_time * (self.cfg.image_size / self.image_size) ** 2,
            "trainable_params": int(sum(np.prod(w.shape) for w in self.model.trainable_weights)),
            "total_params": int(self.model.count_params()),
            **self.deployment_metrics(),
        }

    def deployment_metrics(self) -> dict:
        """``model_mb`` (the float32 weights) and ``latency_ms`` (the median time
        to classify one image), measured once: neither changes with training."""
        if self.deployment is None:
            self.deployment = {"model_mb": 4 * self.model.count_params() / 1e6,
                               "latency_ms": single_image_latency_ms(self.model, self.cfg.image_size)}
        return self.deployment

    def save(self, folder: str) -> None:
        self.model.save(os.path.join(folder, MODEL_FILE))
        with open(os.path.join(folder, STATE_FILE), "w") as f:
            json.dump({"epoch": self.epochs_done, "train_time_s": self.train_time_s}, f)


def restore(cfg: ClassifierConfig, num_classes: int, augment_in_model: bool) -> tuple[keras.Model, int, float]:
    """The model, epochs done and training time so far: from the trial's
    checkpoint when Tune retries or resumes it, else a fresh build."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return build_classifier(cfg, num_classes, augment_in_model), 0, 0.0
    with checkpoint.as_directory() as folder:
        model = keras.models.load_model(os.path.join(folder, MODEL_FILE))
        with open(os.path.join(folder, STATE_FILE)) as f:
            state = json.load(f)
    return model, state["epoch"], state["train_time_s"]


def augments_in_model(cfg: ClassifierConfig, gpus: float) -> bool:
    """Where this trial's augmentation runs: in the model on a GPU trial
    (``augment_on: auto``), else in the input pipeline."""
    if cfg.augment_on == "auto":
        import tensorflow as tf
        return gpus > 0 and bool(tf.config.list_physical_devices("GPU"))
    return cfg.augment_on == "model"


def train_classifier(config: dict) -> None:
    cfg = ClassifierConfig.model_validate(config)
    write_resolved_config(cfg, **cfg.facts())
    applied = device.configure(cfg.seed, cfg.mixed_precision, tune.get_context())
    manifest = read_manifest(cfg)
    model, done, train_time = restore(cfg, len(cfg.data.classes), augments_in_model(cfg, applied["gpus"]))
    # A restored model decides: it augments if it was built with the layer.
    in_model = any(isinstance(layer, RandomAffine) for layer in model.layers)
    # A restored model keeps what it was saved with; the config decides.
    model.jit_compile, model.steps_per_execution = cfg.jit_compile, cfg.steps_per_execution
    reporter = None
    for start, end, size in cfg.phases():  # one phase unless progressive_resize
        if end <= done:
            continue
        cache = open_image_cache(cfg, manifest, applied["cpus"], size)
        train_paths, train_labels, _ = load_split(cfg, "train", manifest, cache.failed)
        val_paths, val_labels, val_rows = load_split(cfg, "val", manifest, cache.failed)
        if reporter is None:
            reporter = TuneReporter(cfg, val_rows, val_labels, len(train_paths), train_time)
        train_ds = cached_dataset(cache, train_paths, train_labels, cfg.batch_size,
                                  None if in_model else cfg.augment, shuffle=True, seed=cfg.seed)
        reporter.phase(cached_dataset(cache, val_paths, val_labels, cfg.batch_size), size)
        model.fit(train_ds, epochs=end, initial_epoch=max(done, start), callbacks=[reporter], verbose=0,
                  shuffle=False)  # the dataset reshuffles itself every epoch
