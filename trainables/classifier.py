"""``train_classifier(config)``: the classifier trainable.

Contract (DESIGN.md): reads only its config (validated by
:class:`~trainables.config.ClassifierConfig`); one Tune iteration per epoch,
each reported with ``ray.tune.report(metrics, checkpoint=...)``; a retried
trial resumes from ``ray.tune.get_checkpoint()`` at its next epoch.

Per epoch it reports ``epoch, loss, accuracy, val_loss, val_accuracy,
epoch_time_s, train_time_s, images_per_s`` (plus the parameter counts) and
checkpoints ``model.keras`` with ``state.json``. The validation predictions of
the latest epoch are written to ``val_predictions.csv`` in the trial's
working directory, which Ray syncs to the experiment's storage.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from ray import tune

from analysis import storage
from trainables import device
from trainables.config import ClassifierConfig
from trainables.datasets import manifest_from_csv
from trainables.faults import inject_fault
from trainables.models import build_classifier
from trainables.pipeline import make_dataset

PREDICTIONS = "val_predictions.csv"


def load_split(cfg: ClassifierConfig, split: str) -> tuple[list[str], list[int], pd.DataFrame]:
    """Absolute paths and label indices of one split of the experiment's manifest."""
    data = cfg.data
    if data is None:
        raise ValueError("config.data is missing: run trials through `scenetune sweep`")
    if not os.path.isdir(data.root):
        raise FileNotFoundError(f"dataset root {data.root} is missing on node {socket.gethostname()}")
    manifest = manifest_from_csv(storage.read_text(data.manifest))
    rows = manifest[manifest["split"] == split].reset_index(drop=True)
    index = {name: i for i, name in enumerate(data.classes)}
    paths = [os.path.join(data.root, p) for p in rows["path"]]
    missing = [p for p in paths[:1] + paths[-1:] if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"{missing[0]} is missing on node {socket.gethostname()}")
    return paths, [index[label] for label in rows["label"]], rows


def predictions_frame(rows: pd.DataFrame, probs: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """path, true, predicted, then one ``prob_<class>`` column per class."""
    frame = pd.DataFrame({"path": rows["path"], "true": rows["label"],
                          "predicted": [classes[i] for i in probs.argmax(axis=1)]})
    for i, name in enumerate(classes):
        frame[f"prob_{name}"] = probs[:, i].round(6)
    return frame


class TuneReporter(keras.callbacks.Callback):
    """Validates, checkpoints and reports to Ray Tune at the end of each epoch."""

    def __init__(self, cfg, val_ds, val_rows, val_labels, num_train, train_time_s):
        super().__init__()
        self.cfg, self.val_ds, self.val_rows = cfg, val_ds, val_rows
        self.val_labels = np.asarray(val_labels)
        self.num_train, self.train_time_s = num_train, train_time_s

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        epoch_time = time.perf_counter() - self.started
        self.train_time_s += epoch_time
        probs = self.model.predict(self.val_ds, verbose=0)
        picked = np.clip(probs[np.arange(len(probs)), self.val_labels], 1e-7, 1.0)
        classes = self.cfg.data.classes
        predictions_frame(self.val_rows, probs, classes).to_csv(PREDICTIONS, index=False)
        metrics = {
            "epoch": epoch + 1,
            "loss": float(logs["loss"]),
            "accuracy": float(logs["accuracy"]),
            "val_loss": float(-np.log(picked).mean()),
            "val_accuracy": float((probs.argmax(axis=1) == self.val_labels).mean()),
            "epoch_time_s": epoch_time,
            "train_time_s": self.train_time_s,
            "images_per_s": self.num_train / epoch_time,
            "trainable_params": int(sum(np.prod(w.shape) for w in self.model.trainable_weights)),
            "total_params": int(self.model.count_params()),
        }
        inject_fault(self.cfg.debug_fault, epoch + 1, before_report=True)
        with tempfile.TemporaryDirectory() as tmp:
            self.model.save(os.path.join(tmp, "model.keras"))
            with open(os.path.join(tmp, "state.json"), "w") as f:
                json.dump({"epoch": epoch + 1, "train_time_s": self.train_time_s}, f)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
        inject_fault(self.cfg.debug_fault, epoch + 1, before_report=False)


def restore(cfg: ClassifierConfig, num_classes: int) -> tuple[keras.Model, int, float]:
    """The model, epochs done and training time so far: from the trial's
    checkpoint when Tune retries or resumes it, else a fresh build."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return build_classifier(cfg, num_classes), 0, 0.0
    with checkpoint.as_directory() as folder:
        model = keras.models.load_model(os.path.join(folder, "model.keras"))
        with open(os.path.join(folder, "state.json")) as f:
            state = json.load(f)
    return model, state["epoch"], state["train_time_s"]


def train_classifier(config: dict) -> None:
    cfg = ClassifierConfig.model_validate(config)
    device.configure(cfg.seed, cfg.mixed_precision, tune.get_context())
    train_paths, train_labels, _ = load_split(cfg, "train")
    val_paths, val_labels, val_rows = load_split(cfg, "val")
    train_ds = make_dataset(train_paths, train_labels, cfg.image_size, cfg.batch_size, cfg.augment,
                            shuffle=True, seed=cfg.seed, shuffle_buffer=cfg.shuffle_buffer)
    val_ds = make_dataset(val_paths, val_labels, cfg.image_size, cfg.batch_size)
    model, done, train_time = restore(cfg, len(cfg.data.classes))
    model.jit_compile = cfg.jit_compile  # a restored model keeps what it was saved with; the config decides
    reporter = TuneReporter(cfg, val_ds, val_rows, val_labels, len(train_paths), train_time)
    model.fit(train_ds, epochs=cfg.epochs, initial_epoch=done, callbacks=[reporter], verbose=0)
