"""``scenetune export EXPERIMENT --format savedmodel|tflite|tflite-int8 --out
OUT``: the experiment's model as a serving SavedModel or a TFLite file for
phones, checked against the Keras model before it is called done.

The model is the final evaluation's (``final/model.keras``, its class names
in ``final/metrics.json``), or with ``trial`` that trial's newest
checkpoint's (class names from its config). ``OUT`` is a new folder (or an
empty one); it receives the model (:mod:`scenetune.commands.exported` names
the files), ``class_names.txt`` and ``card.json``. Everything is written
into a hidden folder beside ``OUT`` and renamed to ``OUT`` at the end: an
export that fails leaves nothing, and nothing that exists is overwritten.

The check: the export runs on every image of the experiment's test split
(decoded by the training decode) and its top-1 class is compared with the
Keras model's; a float export must agree on at least 99% of them, or the
export fails (:class:`ExportFailed`, exit status 1) and ``OUT`` is not
written. An int8 export's accuracy and its drop from the Keras model's are
reported, not judged. A SavedModel is checked in a fresh Python (TensorFlow
and NumPy only, one thread), through both signatures. ``card.json`` holds
what the check measured (docs/deploy.md).

Every check of the user's input runs before TensorFlow is imported.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from scenetune.analysis.experiment import load_experiment
from scenetune.analysis.final import final_uri
from scenetune.commands.exported import (
    CARD_FILE,
    CLASS_NAMES_FILE,
    TFLITE_FILE,
    ExportedModel,
    probe_savedmodel,
    write_class_names,
)
from scenetune.core import registry, storage
from scenetune.core.errors import UserError
from scenetune.core.layout import EXPORTS_DIR, METRICS_FILE, MODEL_FILE, latest_checkpoint

FORMATS = ("savedmodel", "tflite", "tflite-int8")
FLOAT_AGREEMENT = 0.99  # a float export's top-1 must equal the Keras model's on this share of the test split
CALIBRATION_IMAGES = 200  # training images an int8 export is calibrated on (all when fewer)


class ExportError(UserError):
    """Bad input to ``scenetune export --format`` (exit status 2)."""


class ExportFailed(Exception):
    """The export was made but failed its check, or the converter refused the
    model (exit status 1); ``OUT`` was not written."""


@dataclass
class Source:
    """Where the exported model comes from."""
    experiment: str
    trial_id: str
    model_uri: str
    classes: list[str]
    image_size: int | None
    root: str | None  # the experiment's dataset
    kind: str  # "final" (scenetune evaluate's model) or "checkpoint"

    def card(self) -> dict:
        return {"experiment": self.experiment, "trial_id": self.trial_id, "model": self.model_uri,
                "kind": self.kind}


@dataclass
class CheckImages:
    """The test split decoded (uint8), its labels and files; the calibration images."""
    images: np.ndarray
    labels: np.ndarray
    files: list[str]
    calibration: np.ndarray | None = None
    skipped: list[str] = field(default_factory=list)


def check_out(out: str) -> str:
    """``OUT`` as an absolute local path, or the one-line reason it cannot be written."""
    if storage.is_remote(out):
        raise ExportError(f"--out: {out}: a local folder, please (export here, then copy it)")
    path = os.path.abspath(os.path.expanduser(out))
    if path.endswith(".tflite"):
        raise ExportError(f"--out: {out}: a folder to create, not a file name (it will hold {TFLITE_FILE}, "
                          f"{CLASS_NAMES_FILE} and {CARD_FILE})")
    if os.path.lexists(path):
        if not os.path.isdir(path) or os.path.islink(path):
            raise ExportError(f"--out: {out} exists and is not a folder; nothing is overwritten: name a new folder")
        if os.listdir(path):
            raise ExportError(f"--out: {out} exists and is not empty; nothing is overwritten: name a new folder")
    reason = storage.unwritable_reason(os.path.dirname(path))
    if reason:
        raise ExportError(f"--out: {out} cannot be written: {reason}")
    return path


def find_source(uri: str, trial: str | None = None) -> Source:
    """The model to export and its class names (no TensorFlow)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # damaged logs: the experiment's own warnings, not ours
        exp = load_experiment(uri)
    trainable = exp.spec.get("trainable", "classifier")
    if trainable not in registry.TRAINABLES or "export" not in registry.TRAINABLES[trainable].commands:
        raise ExportError(f"{exp.uri}: export --format works on classifier experiments, not {trainable!r}")
    if trial is None:
        final = final_uri(exp.uri)
        model_uri, metrics_uri = storage.join(final, MODEL_FILE), storage.join(final, METRICS_FILE)
        if not (storage.exists(model_uri) and storage.exists(metrics_uri)):
            raise ExportError(f"{exp.uri}: no final model ({final}/{MODEL_FILE}): run `scenetune evaluate "
                              f"{exp.uri}` first, or export a trial's checkpoint with --trial ID")
        metrics = json.loads(storage.read_text(metrics_uri))
        trial_id, kind = str(metrics["trial_id"]), "final"
        classes, size = metrics["classes"], metrics.get("image_size")
    else:
        if exp.trials.empty or trial not in set(exp.trials["trial_id"]):
            known = ", ".join(sorted(exp.trials["trial_id"])) if not exp.trials.empty else "none"
            raise ExportError(f"--trial: no trial {trial!r} in {exp.uri}; trials: {known}")
        trial_uri = storage.join(exp.uri, exp.trials.set_index("trial_id").loc[trial, "trial_dir"])
        checkpoint = latest_checkpoint(trial_uri)
        model_uri = storage.join(checkpoint, MODEL_FILE) if checkpoint else None
        if model_uri is None or not storage.exists(model_uri):
            raise ExportError(f"--trial: trial {trial} has no checkpoint with a {MODEL_FILE} under {trial_uri}")
        config = exp.configs.get(trial, {})
        trial_id, kind = trial, "checkpoint"
        classes, size = (config.get("data") or {}).get("classes"), config.get("image_size")
        if not classes:
            raise ExportError(f"{trial_uri}: no class names in the trial's params.json (data.classes)")
    root = ((exp.configs.get(trial_id) or {}).get("data") or {}).get("root")
    return Source(exp.uri, trial_id, model_uri, list(classes), size, root, kind)


def _decode_all(paths: list[str], size: int, progress) -> tuple[np.ndarray, list[int]]:
    """uint8 images by the training decode, and the indices that decoded."""
    from scenetune.trainables.data.decode import UndecodableImage, load_resized

    images, kept = [], []
    for i, path in enumerate(paths):
        try:
            images.append(load_resized(path, size))
            kept.append(i)
        except UndecodableImage as e:
            progress(f"warning: {path} left out of the check: {e}")
    return (np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)), kept


def check_images(source: Source, size: int, int8: bool, calibration_images: int, progress) -> CheckImages:
    """The experiment's test split (and, for int8, calibration images drawn from its training split)."""
    from scenetune.commands.evaluate import experiment_split

    test_paths, test_labels, _ = experiment_split(source.experiment, source.root, "test", source.classes)
    progress(f"decoding the {len(test_paths)} test images" + (" and the calibration images" if int8 else ""))
    images, kept = _decode_all(test_paths, size, progress)
    if not kept:
        raise ExportError(f"{source.experiment}: no test image decodes: nothing to check the export on")
    out = CheckImages(images, np.asarray(test_labels)[kept], [test_paths[i] for i in kept])
    if int8:
        train_paths, _, _ = experiment_split(source.experiment, source.root, "train", source.classes)
        chosen = np.random.default_rng(0).permutation(len(train_paths))[:calibration_images]
        out.calibration, _ = _decode_all([train_paths[i] for i in sorted(chosen)], size, progress)
        if not len(out.calibration):
            raise ExportError(f"{source.experiment}: no training image decodes: nothing to calibrate int8 on")
    return out


def export_experiment(uri: str, fmt: str, out: str, trial: str | None = None,
                      calibration_images: int = CALIBRATION_IMAGES,
                      progress: Callable[[str], None] = print) -> dict:
    """Export the experiment's final model (or ``trial``'s) as ``fmt`` into
    ``out``; returns the card (``out/card.json``)."""
    if fmt not in FORMATS:
        raise ExportError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if calibration_images < 1:
        raise ExportError(f"calibration_images: must be at least 1, got {calibration_images}")
    path = check_out(out)
    source = find_source(uri, trial)
    if not source.root or not os.path.isdir(source.root):
        raise ExportError(f"data.root: {source.root} (the experiment's dataset) does not exist on this machine: "
                          "the export is checked on its test split")
    from scenetune.commands.evaluate import experiment_split

    for split in ("test",) + (("train",) if fmt == "tflite-int8" else ()):
        if not experiment_split(source.experiment, source.root, split, source.classes)[0]:
            raise ExportError(f"{source.experiment}: the manifest has no {split} split "
                              + ("to check the export on" if split == "test" else "to calibrate int8 on"))

    from scenetune.trainables.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        progress(f"loading {'the final model' if source.kind == 'final' else 'the checkpoint'} of trial "
                 f"{source.trial_id} ({source.model_uri})")
        local = os.path.join(tmp, MODEL_FILE)
        with open(local, "wb") as f:
            f.write(storage.read_bytes(source.model_uri))
        model = keras.models.load_model(local)
    size = model.input_shape[1] or source.image_size
    if model.output_shape[-1] != len(source.classes):
        raise ExportError(f"{source.model_uri}: {model.output_shape[-1]} outputs but {len(source.classes)} class names")
    data = check_images(source, int(size), fmt == "tflite-int8", calibration_images, progress)
    card = export_keras_model(model, source.classes, fmt, path, data, source.card(), progress)
    keep_card(source.experiment, card, progress)
    return card


def keep_card(experiment: str, card: dict, progress: Callable[[str], None]) -> None:
    """A copy of the card in the experiment's ``exports/`` (the report's table
    of exported models); one per export, never replacing an earlier one."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    uri = storage.join(experiment, EXPORTS_DIR, f"{card['format']}-{card['source']['trial_id']}-{stamp}.json")
    try:
        storage.write_text(uri, json.dumps(card, indent=2))
    except OSError as e:  # a read-only experiment: the export itself is done
        progress(f"warning: the card was not kept in {uri} ({e.strerror or e}); the report will not list this export")


def _size_mb(folder: str, skip=(CLASS_NAMES_FILE, CARD_FILE)) -> float:
    total = sum(os.path.getsize(os.path.join(base, name)) for base, _, names in os.walk(folder)
                for name in names if not (base == folder and name in skip))
    return round(total / 2**20, 4)


def _install(tmp: str, path: str) -> None:
    """``tmp`` becomes ``path`` (absent, or an empty folder), readable as a new folder would be."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        os.rename(tmp, path)  # replaces an empty folder; refuses one that filled up meanwhile
    except OSError as e:
        raise ExportError(f"--out: {path} cannot be written now: {e.strerror or e}") from None


def _nearest_existing(path: str) -> str:
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return path


def export_keras_model(model, classes: list[str], fmt: str, path: str, data: CheckImages, source: dict,
                       progress: Callable[[str], None] = print,
                       min_agreement: float | None = FLOAT_AGREEMENT) -> dict:
    """Export ``model`` (Keras, float pixels 0-255 in, softmax out) as ``fmt``
    into the new folder ``path``, checked on ``data``; returns the card.
    ``min_agreement`` None: a float export is reported, not judged (benchmarks)."""
    from scenetune.commands.export_formats import tflite_bytes, tflite_io, write_savedmodel

    size = int(data.images.shape[1])
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.export-", dir=_nearest_existing(os.path.dirname(path)))
    try:
        progress(f"predicting the {len(data.images)} test images with the Keras model")
        keras_probs = model.predict(data.images.astype(np.float32), batch_size=32, verbose=0)
        started = time.perf_counter()
        extra = {}
        write_class_names(tmp, classes)
        if fmt == "savedmodel":
            progress("writing the SavedModel (signatures serving_default: image bytes; serving_uint8: pixels)")
            write_savedmodel(model, classes, size, tmp)
            progress(f"checking it in a fresh Python (TensorFlow alone, one thread) on the {len(data.images)} "
                     "test images, through both signatures")
            with tempfile.TemporaryDirectory() as work:
                try:
                    probe = probe_savedmodel(tmp, data.images, data.files, work)
                except RuntimeError as e:
                    raise ExportFailed(str(e)) from None
            probs, latency = probe["probs"], probe["latency_ms"]
            named = [classes[i] for i in probe["probs_bytes"].argmax(axis=1)]
            if probe["names"] != named:
                raise ExportFailed("the SavedModel's class_name output does not name its most probable column")
            keras_top = keras_probs.argmax(axis=1)
            extra = {"agreement_from_bytes": _share(probe["probs_bytes"].argmax(axis=1) == keras_top),
                     "accuracy_from_bytes": _share(probe["probs_bytes"].argmax(axis=1) == data.labels),
                     "latency_ms_from_bytes": round(probe["latency_ms_from_bytes"], 3),
                     "signatures": {"serving_default": {"inputs": {"image_bytes": "string [N]: encoded JPEG, PNG, "
                                                                                  "GIF or BMP files"}},
                                    "serving_uint8": {"inputs": {"images": f"uint8 [N, {size}, {size}, 3]: RGB "
                                                                           "pixels"}},
                                    "outputs": {"probabilities": f"float32 [N, {len(classes)}]",
                                                "class_name": "string [N]: the most probable class",
                                                "class_names": f"string [N, {len(classes)}]: the columns' names"}}}
        else:
            int8 = fmt == "tflite-int8"
            progress(f"calibrating int8 quantization on {len(data.calibration)} training images and converting to "
                     "TFLite" if int8 else "converting to TFLite (float32)")
            try:
                content = tflite_bytes(model, size, data.calibration if int8 else None)
            except Exception as e:  # noqa: BLE001 - the converter's refusals come in many types
                message = " ".join(str(e).split())[:300] or type(e).__name__
                raise ExportFailed(f"the TFLite converter refused the model: {message}"
                                   + (" (try --format tflite: float32)" if int8 else "")) from None
            with open(os.path.join(tmp, TFLITE_FILE), "wb") as f:
                f.write(content)
            progress(f"checking it on the {len(data.images)} test images")
            exported = ExportedModel(tmp, threads=os.cpu_count())
            probs = exported.predict(data.images)
            latency = exported.latency_ms(data.images[0])
            extra = {"tflite": tflite_io(content)}
            if int8:
                extra["quantization"] = {"calibration_images": len(data.calibration), "calibration_split": "train",
                                         "weights": "int8", "activations": "int8",
                                         "input": "uint8 pixels 0-255 as they are (scale 1, zero point 0)",
                                         "output": "uint8: probability = scale * (q - zero_point)"}
        seconds = time.perf_counter() - started
        card = _card(fmt, tmp, classes, size, data, keras_probs, probs, latency, source, extra, seconds)
        with open(os.path.join(tmp, CARD_FILE), "w", encoding="utf-8") as f:
            json.dump(card, f, indent=2)
        if fmt != "tflite-int8" and min_agreement is not None and card["agreement"] < min_agreement:
            raise ExportFailed(f"the {fmt} export agrees with the Keras model on {card['agreement']:.1%} of the "
                               f"{card['test_images']} test images (at least {min_agreement:.0%} needed); "
                               f"{path} was not written")
        _install(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    card["out"] = path
    return card


def _share(mask: np.ndarray) -> float:
    return round(float(np.mean(mask)), 6) if len(mask) else 0.0


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _card(fmt: str, folder: str, classes: list[str], size: int, data: CheckImages, keras_probs: np.ndarray,
          probs: np.ndarray, latency: float, source: dict, extra: dict, seconds: float) -> dict:
    keras_top, top = keras_probs.argmax(axis=1), probs.argmax(axis=1)
    accuracy, keras_accuracy = _share(top == data.labels), _share(keras_top == data.labels)
    import tensorflow as tf

    return {"format": fmt, "model": TFLITE_FILE if fmt != "savedmodel" else ".", "class_names_file": CLASS_NAMES_FILE,
            "size_mb": _size_mb(folder), "image_size": size,
            "input": ("uint8 pixels 0-255" if fmt == "tflite-int8" else "float32 pixels 0-255")
            if fmt != "savedmodel" else "image bytes (serving_default) or uint8 pixels (serving_uint8)",
            "test_images": len(top), "accuracy": accuracy, "keras_accuracy": keras_accuracy,
            "accuracy_drop": round(keras_accuracy - accuracy, 6), "agreement": _share(top == keras_top),
            "max_probability_difference": round(float(np.abs(probs - keras_probs).max()), 6) if len(top) else 0.0,
            "latency_ms": round(latency, 3),
            "latency": "median of single-image calls (batch 1) after warm-up, one thread",
            "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                        "system": platform.system()},
            "class_names": list(classes), "source": source, "export_seconds": round(seconds, 2),
            "scenetune_version": _version("scenetune"), "tensorflow_version": tf.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra}
