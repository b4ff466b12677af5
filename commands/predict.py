"""``scenetune predict``: classify new images with a saved model (the seed
report's "28 images from the internet" exercise).

``MODEL`` is a ``model.keras`` file or a folder holding one (an experiment's
``final/``, a trial's ``checkpoint_*/``). The class names come from the
``metrics.json`` beside it (the final evaluation) or, for a checkpoint, from
its trial's ``params.json``. ``MODEL`` may also be an export of ``scenetune
export --format`` (its folder, or its ``.tflite`` file), with its
``class_names.txt`` (:mod:`scenetune.commands.exported`); it is fed the same
decoded pixels, so it answers as the model it was exported from. Grad-CAM
needs the Keras model. Inputs are image files or folders (their image
files, by extension, not recursive). An image that cannot be read or decoded
is listed with the reason and skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from scenetune.commands.exported import ExportedModel, exported_kind
from scenetune.core.errors import UserError
from scenetune.core.layout import MODEL_FILE
from scenetune.trainables.data.datasets import IMAGE_EXTENSIONS

BATCH = 32


class PredictError(UserError):
    """Bad input to ``scenetune predict`` (exit status 2)."""


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]]  # (class, probability), most likely first
    gradcam: str | None = None


@dataclass
class PredictResult:
    predictions: list[Prediction] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def resolve_model(model: str) -> tuple[str, list[str]]:
    """``(model.keras path, class names)``."""
    path = os.path.join(model, MODEL_FILE) if os.path.isdir(model) else model
    if not os.path.isfile(path):
        raise PredictError(f"MODEL: {model}: no such model file" + (" (no model.keras in that folder)"
                                                                  if os.path.isdir(model) else ""))
    folder = os.path.dirname(os.path.abspath(path))
    for candidate, read in ((os.path.join(folder, "metrics.json"), lambda d: d.get("classes")),
                            (os.path.join(os.path.dirname(folder), "params.json"),
                             lambda d: (d.get("data") or {}).get("classes"))):
        if os.path.isfile(candidate):
            with open(candidate, encoding="utf-8") as f:
                classes = read(json.load(f))
            if classes:
                return path, list(classes)
    raise PredictError(f"MODEL: {model}: no class names beside it (metrics.json of `scenetune evaluate`, "
                       "or the trial's params.json above a checkpoint)")


def expand_inputs(inputs: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Files to classify, and inputs skipped with the reason."""
    files, skipped = [], []
    for item in inputs:
        if os.path.isdir(item):
            names = sorted(n for n in os.listdir(item) if not n.startswith("."))
            found = [os.path.join(item, n) for n in names
                     if n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(item, n))]
            if not found:
                skipped.append((item, "folder holds no image files"))
            files += found
        elif os.path.isfile(item):
            files.append(item)
        else:
            skipped.append((item, "no such file or folder"))
    return files, skipped


def _decode(path: str, image_size: int):
    """The image as the model takes it (the pipeline's own decode), or the
    reason it cannot be read."""
    import numpy as np

    from scenetune.trainables.data.decode import UndecodableImage, load_resized

    try:
        return load_resized(path, image_size).astype(np.float32), None
    except UndecodableImage as e:
        return None, str(e)


def predict_images(model: str, inputs: list[str], top: int = 3, gradcam_dir: str | None = None,
                   progress=lambda message: None) -> PredictResult:
    if top < 1:
        raise PredictError(f"--top: must be at least 1, got {top}")
    kind = exported_kind(model)
    if kind and gradcam_dir:
        raise PredictError(f"--gradcam: Grad-CAM needs the Keras model (model.keras, e.g. EXPERIMENT/final); "
                           f"{model} is an exported {kind} model")
    model_path, classes = (model, []) if kind else resolve_model(model)
    files, skipped = expand_inputs(inputs)
    if gradcam_dir and os.path.exists(gradcam_dir) and not os.path.isdir(gradcam_dir):
        raise PredictError(f"--gradcam: {gradcam_dir} is a file, not a folder")

    import numpy as np

    if kind:
        net = ExportedModel(model)
        size, classes, classify = net.image_size, net.classes, net.predict
        model_path = f"the exported {kind} {net.model_file}"
    else:
        import keras

        from scenetune.trainables.classifier.gradcam import gradcam, save_overlay

        net = keras.models.load_model(model_path)
        size = int(net.input_shape[1])
        if net.output_shape[-1] != len(classes):
            raise PredictError(f"MODEL: {model}: {net.output_shape[-1]} outputs but {len(classes)} class names")
        classify = lambda batch: net.predict(batch, verbose=0)
    result = PredictResult(skipped=skipped)
    readable, images = [], []
    for path in files:
        image, reason = _decode(path, size)
        if image is None:
            result.skipped.append((path, reason))
        else:
            readable.append(path)
            images.append(image)
    progress(f"classifying {len(readable)} images with {model_path} ({len(classes)} classes, {size} px)")
    if gradcam_dir:
        os.makedirs(gradcam_dir, exist_ok=True)
    for start in range(0, len(images), BATCH):
        batch = np.stack(images[start:start + BATCH])
        if gradcam_dir:
            heatmaps, probs = gradcam(net, batch)
        else:
            probs = classify(batch)
        for offset, p in enumerate(probs):
            path = readable[start + offset]
            order = np.argsort(-p, kind="stable")[:top]
            prediction = Prediction(path, [(classes[i], float(p[i])) for i in order])
            if gradcam_dir:
                stem = os.path.splitext(os.path.basename(path))[0]
                prediction.gradcam = os.path.join(gradcam_dir, f"{start + offset:03d}_{stem}_gradcam.png")
                save_overlay(batch[offset], heatmaps[offset], prediction.gradcam, max(1, 192 // size))
            result.predictions.append(prediction)
    return result


def format_result(result: PredictResult, fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"predictions": [{"path": p.path, "top": [{"class": c, "probability": round(v, 6)}
                                                                    for c, v in p.top], "gradcam": p.gradcam}
                                           for p in result.predictions],
                           "skipped": [{"path": path, "reason": reason} for path, reason in result.skipped]},
                          indent=2)
    lines = []
    for p in result.predictions:
        ranked = ", ".join(f"{c} {v:.2f}" for c, v in p.top)
        lines.append(f"{p.path}: {ranked}" + (f"  [Grad-CAM: {p.gradcam}]" if p.gradcam else ""))
    return "\n".join(lines)
