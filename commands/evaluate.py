"""``scenetune evaluate``: the experiment's best model, evaluated once on the
test split of its manifest.

The best trial is ranked as ``scenetune best`` ranks it (the experiment's
metric at each trial's last epoch). Its latest checkpoint's ``model.keras`` is
evaluated; with ``retrain=True`` a fresh model of the same config is fitted on
train + validation for as many epochs as the trial ran, then evaluated. The
test split is touched here only: trials never read it, and an experiment that
already holds a final evaluation is refused rather than evaluated again.

Writes ``EXPERIMENT/final/`` (names in :mod:`scenetune.analysis.final`):
``test_predictions.csv`` (path, true, predicted, prob_<class>...),
``metrics.json``, ``model.keras`` and ``gradcam/*.png`` (Grad-CAM overlays of
correctly and wrongly classified test images).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from typing import Callable

import numpy as np
from pydantic import ValidationError

from scenetune.analysis.best import best_trials
from scenetune.analysis.experiment import ExperimentError, load_experiment
from scenetune.analysis.final import final_uri
from scenetune.core import registry, storage
from scenetune.core.layout import (
    GRADCAM_DIR,
    MANIFEST_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PREDICTIONS_FILE,
    latest_checkpoint,
)
from scenetune.trainables.classifier.config import ClassifierConfig
from scenetune.trainables.classifier.scores import predictions_frame, scores
from scenetune.trainables.data.datasets import manifest_from_csv, split_rows

GRADCAM_SCALE_TO = 192  # overlays are enlarged to about this many pixels a side


class EvaluationError(ExperimentError):
    """The experiment cannot be evaluated (bad input: exit status 2)."""


def experiment_split(uri: str, root: str, split: str, classes: list[str]):
    """``(absolute paths, label indices, manifest rows)`` of one split of the experiment's manifest."""
    manifest_uri = storage.join(uri, MANIFEST_FILE)
    if not storage.exists(manifest_uri):
        raise EvaluationError(f"{uri}: no {MANIFEST_FILE} (the experiment's split manifest)")
    manifest = manifest_from_csv(storage.read_text(manifest_uri))
    unknown = sorted(set(manifest["label"]) - set(classes)) if "label" in manifest else []
    if unknown:
        raise EvaluationError(f"{manifest_uri}: labels {', '.join(map(repr, unknown[:5]))} are not among the "
                              "classes of the trial's config (data.classes in its params.json)")
    return split_rows(manifest, root, split, classes)


def _pick_gradcam(true: np.ndarray, probs: np.ndarray, per_kind: int) -> list[int]:
    """The most confident right and the most confident wrong predictions."""
    predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
    right = np.flatnonzero(predicted == true)
    wrong = np.flatnonzero(predicted != true)
    right = right[np.argsort(-confidence[right], kind="stable")][:per_kind]
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:per_kind]
    return list(right) + list(wrong)


def evaluate_experiment(uri: str, retrain: bool = False, gradcam_per_kind: int = 4,
                        progress: Callable[[str], None] = print) -> dict:
    """Evaluate the best trial once on the test split; returns ``metrics.json``'s content."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = load_experiment(uri)
    uri = exp.uri
    trainable = exp.spec.get("trainable", "classifier")
    if "evaluate" not in registry.trainable(trainable).commands:
        raise EvaluationError(f"{uri}: evaluate works on classifier experiments, not {trainable!r}")
    if exp.trials.empty or exp.epochs.empty:
        raise EvaluationError(f"{uri}: no trial has reported a result; nothing to evaluate")
    out = final_uri(uri)
    if storage.exists(storage.join(out, METRICS_FILE)):
        raise EvaluationError(f"{out} already holds the final evaluation: the test split is used once; "
                              "move that folder away to evaluate again")
    best = best_trials(exp)[0]
    trial_id = best["trial_id"]
    trial = exp.trials.set_index("trial_id").loc[trial_id]
    trial_uri = storage.join(uri, trial["trial_dir"])
    checkpoint = latest_checkpoint(trial_uri)
    if checkpoint is None and not retrain:
        raise EvaluationError(f"{trial_uri}: the best trial ({trial_id}) has no checkpoint; "
                              "pass --retrain to fit its config afresh")
    cfg = _trial_config(exp.configs[trial_id], storage.join(trial_uri, "params.json"), trial_id)
    classes, root = cfg.data.classes, cfg.data.root
    if not os.path.isdir(root):
        raise EvaluationError(f"data.root: {root} (the experiment's dataset) does not exist on this machine")
    test_paths, test_labels, test_rows = experiment_split(uri, root, "test", classes)
    if not test_paths:
        raise EvaluationError(f"{uri}: the manifest has no test split")
    if not retrain and not storage.exists(storage.join(checkpoint, MODEL_FILE)):
        raise EvaluationError(f"{checkpoint}: no {MODEL_FILE} in the best trial's ({trial_id}) checkpoint; "
                              "pass --retrain to fit its config afresh")

    import keras

    from scenetune.trainables import device
    from scenetune.trainables.classifier.gradcam import gradcam as grad_cam
    from scenetune.trainables.classifier.gradcam import save_overlay
    from scenetune.trainables.data.decode import load_resized
    from scenetune.trainables.data.pipeline import make_dataset

    device.configure(cfg.seed, cfg.mixed_precision)
    epochs = int(trial["epochs"])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if retrain:
            progress(f"retraining trial {trial_id}'s config on train + validation for {epochs} epochs")
            model = _retrain(cfg, uri, root, classes, epochs)
        else:
            progress(f"loading trial {trial_id}'s checkpoint {checkpoint.rsplit('/', 1)[-1]} (epoch {epochs})")
            local = storage.download_dir(checkpoint, os.path.join(tmp, "checkpoint"))
            model = keras.models.load_model(os.path.join(local, MODEL_FILE))
        progress(f"evaluating on the {len(test_paths)} images of the test split (once)")
        probs = model.predict(make_dataset(test_paths, test_labels, cfg.image_size, cfg.batch_size), verbose=0)
        labels = np.asarray(test_labels)
        test = scores(probs, labels)
        predictions = predictions_frame(test_rows, probs, classes)

        progress("drawing Grad-CAM heatmaps of right and wrong test images")
        chosen = _pick_gradcam(labels, probs, gradcam_per_kind)
        cams = []
        if chosen:
            # the pipeline's own decode (scenetune.trainables.data.decode), one image at a time: a handful of them
            images = np.stack([load_resized(test_paths[i], cfg.image_size).astype(np.float32) for i in chosen])
            heatmaps, _ = grad_cam(model, images)
            scale = max(1, GRADCAM_SCALE_TO // cfg.image_size)
            for n, (i, image, heatmap) in enumerate(zip(chosen, images, heatmaps)):
                true, guess = classes[labels[i]], classes[int(probs[i].argmax())]
                kind = "right" if true == guess else "wrong"
                name = f"{n:02d}_{kind}_{true}" + ("" if kind == "right" else f"_as_{guess}") + ".png"
                local_png = os.path.join(tmp, name)
                save_overlay(image, heatmap, local_png, scale)
                storage.write_bytes(storage.join(out, GRADCAM_DIR, name), open(local_png, "rb").read())
                cams.append({"file": name, "path": test_rows["path"][i], "true": true, "predicted": guess,
                             "probability": round(float(probs[i].max()), 6), "correct": kind == "right"})
        model_path = os.path.join(tmp, MODEL_FILE)
        model.save(model_path)
        storage.write_bytes(storage.join(out, MODEL_FILE), open(model_path, "rb").read())
    metrics = {"trial_id": trial_id, "retrain": retrain, "epochs": epochs,
               "checkpoint": None if retrain else checkpoint,
               "accuracy": test["accuracy"], "loss": test["loss"],
               "test_images": int(len(probs)), "classes": classes, "image_size": cfg.image_size,
               "config": {k: v for k, v in exp.configs[trial_id].items() if k != "data"},
               "seconds": round(time.perf_counter() - started, 2), "gradcam": cams}
    storage.write_text(storage.join(out, PREDICTIONS_FILE), predictions.to_csv(index=False))
    storage.write_text(storage.join(out, METRICS_FILE), json.dumps(metrics, indent=2))  # last: marks it done
    progress(f"test accuracy {metrics['accuracy']:.4f} on {metrics['test_images']} images; wrote {out}")
    return metrics


def _trial_config(config: dict, params_uri: str, trial_id: str) -> ClassifierConfig:
    """The trial's config as the classifier takes it; a damaged one is bad input."""
    try:
        cfg = ClassifierConfig.model_validate(config)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "config"
        message = " ".join(f"{key}: {first['msg']}".split())
        raise EvaluationError(f"{params_uri}: the best trial's ({trial_id}) config is not one the classifier takes "
                              f"({message[:200]})") from None
    if cfg.data is None:
        raise EvaluationError(f"{params_uri}: the best trial's ({trial_id}) config is not one the classifier takes "
                              "(data: the dataset's root, manifest and classes are missing)")
    return cfg


def _retrain(cfg: ClassifierConfig, uri: str, root: str, classes: list[str], epochs: int):
    """A fresh model of the trial's config, fitted on train + validation."""
    from scenetune.trainables.classifier.models import build_classifier
    from scenetune.trainables.data.pipeline import make_dataset

    paths, labels = [], []
    for split in ("train", "val"):
        split_paths, split_labels, _ = experiment_split(uri, root, split, classes)
        paths += split_paths
        labels += split_labels
    train = make_dataset(paths, labels, cfg.image_size, cfg.batch_size, cfg.augment, shuffle=True, seed=cfg.seed,
                         shuffle_buffer=cfg.shuffle_buffer)
    model = build_classifier(cfg, len(classes))
    if cfg.jit_compile:
        model.jit_compile = True
    model.fit(train, epochs=epochs, verbose=2)
    return model
