"""Exported models (``scenetune export --format ...``) loaded and run: by
``scenetune predict`` and by the export's own check.

An export is a folder (docs/deploy.md):

- ``savedmodel``: a TensorFlow SavedModel (``saved_model.pb``, ``variables/``)
  whose ``serving_default`` signature takes encoded images (``image_bytes``,
  a batch of JPEG/PNG/GIF/BMP strings) and ``serving_uint8`` a batch of
  ``images`` (uint8 ``[N, size, size, 3]``); both return ``probabilities``
  (float32 ``[N, classes]``), ``class_name`` (the top-1 name of each row) and
  ``class_names`` (``[N, classes]``: every row the names in column order);
- ``tflite`` / ``tflite-int8``: ``model.tflite``;

and beside the model ``class_names.txt`` (one name a line, in the
probabilities' column order) and ``card.json`` (what the export's check
measured). Nothing here imports TensorFlow before a model is loaded.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import sys
import tempfile
import warnings

import numpy as np

from scenetune.core.errors import UserError
from scenetune.core.timing import median_ms
from scenetune.trainables.quiet import VERBOSE_ENV

SAVED_MODEL_FILE = "saved_model.pb"
TFLITE_FILE = "model.tflite"
CLASS_NAMES_FILE = "class_names.txt"
CARD_FILE = "card.json"
BYTES_SIGNATURE, UINT8_SIGNATURE = "serving_default", "serving_uint8"
BATCH = 32

# Run in a fresh Python by the export's check of a SavedModel: TensorFlow and
# NumPy only (what a client has), TensorFlow on one thread (the latency is
# one thread's). argv: the SavedModel folder, a work folder holding
# images.npy (uint8 test images) and files.txt (their files, one a line);
# writes probs.npy, probs_bytes.npy, names.txt and latency.json there.
SAVEDMODEL_PROBE = r"""
import json, os, statistics, sys, time
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
folder, work = sys.argv[1], sys.argv[2]
model = tf.saved_model.load(folder)
u8, default = model.signatures["serving_uint8"], model.signatures["serving_default"]
images = np.load(os.path.join(work, "images.npy"))
files = open(os.path.join(work, "files.txt"), encoding="utf-8", errors="surrogateescape").read().splitlines()
def read(path):
    with open(path, "rb") as f:
        return f.read()
probs, probs_bytes, names = [], [], []
for start in range(0, len(images), 32):
    probs.append(u8(images=tf.constant(images[start:start + 32]))["probabilities"].numpy())
    out = default(image_bytes=tf.constant([read(p) for p in files[start:start + 32]]))
    probs_bytes.append(out["probabilities"].numpy())
    names += [n.decode("utf-8") for n in out["class_name"].numpy()]
np.save(os.path.join(work, "probs.npy"), np.concatenate(probs))
np.save(os.path.join(work, "probs_bytes.npy"), np.concatenate(probs_bytes))
with open(os.path.join(work, "names.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(names) + "\n")
# MEDIAN_MS: the source of median_ms below, put here when the probe runs
one, one_file = tf.constant(images[:1]), tf.constant([read(files[0])])
latency = {"latency_ms": median_ms(lambda: u8(images=one)["probabilities"].numpy()),
           "latency_ms_from_bytes": median_ms(lambda: default(image_bytes=one_file)["probabilities"].numpy())}
with open(os.path.join(work, "latency.json"), "w") as f:
    json.dump(latency, f)
"""


@contextlib.contextmanager
def quiet_native_output():
    """Keep the converter's and the SavedModel writer's own lines (MLIR
    passes, absl warnings written straight to descriptors 1 and 2) off the
    terminal, unless ``-v``. Python warnings too."""
    if os.environ.get(VERBOSE_ENV) == "1":
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as captured, warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        os.dup2(captured.fileno(), 1)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


class ExportedModelError(UserError):
    """An exported model that cannot be used as given (exit status 2)."""


def exported_kind(path: str) -> str | None:
    """``"savedmodel"`` or ``"tflite"`` for an export (its folder, or a
    ``.tflite`` file), None for anything else (a Keras model)."""
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, SAVED_MODEL_FILE)):
            return "savedmodel"
        if os.path.isfile(os.path.join(path, TFLITE_FILE)):
            return "tflite"
        return None
    return "tflite" if os.path.isfile(path) and path.endswith(".tflite") else None


def read_class_names(folder: str) -> list[str] | None:
    path = os.path.join(folder, CLASS_NAMES_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def write_class_names(folder: str, classes: list[str]) -> None:
    with open(os.path.join(folder, CLASS_NAMES_FILE), "w", encoding="utf-8") as f:
        f.write("".join(f"{name}\n" for name in classes))


class ExportedModel:
    """An export, loaded: ``predict(uint8 images [N, size, size, 3])`` gives
    float32 probabilities ``[N, len(classes)]``."""

    def __init__(self, path: str, threads: int | None = None):
        self.kind = exported_kind(path)
        if self.kind is None:
            raise ExportedModelError(f"MODEL: {path}: not an exported model (a SavedModel folder or a .tflite file)")
        self.path = path
        folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        self.model_file = os.path.join(folder, TFLITE_FILE) if self.kind == "tflite" and os.path.isdir(path) else path
        self.threads = threads
        classes = read_class_names(folder)
        if self.kind == "savedmodel":
            self._load_savedmodel()
            if classes is None:  # the SavedModel carries them: every row of class_names
                zeros = np.zeros((1, self.image_size, self.image_size, 3), np.uint8)
                classes = [n.decode("utf-8") for n in self._run_u8(zeros)["class_names"].numpy()[0]]
        else:
            self._load_tflite()
        if not classes:
            raise ExportedModelError(f"MODEL: {path}: no {CLASS_NAMES_FILE} beside it (scenetune export writes one)")
        self.classes = classes

    def _load_savedmodel(self) -> None:
        import tensorflow as tf

        loaded = tf.saved_model.load(self.path)
        if UINT8_SIGNATURE not in loaded.signatures:
            raise ExportedModelError(f"MODEL: {self.path}: a SavedModel without the {UINT8_SIGNATURE} signature "
                                     "(not one scenetune export wrote)")
        self._loaded = loaded  # the signatures' variables live as long as it does
        self._run_u8 = loaded.signatures[UINT8_SIGNATURE]
        self.image_size = int(self._run_u8.structured_input_signature[1]["images"].shape[1])

    def _interpreter(self, threads: int | None):
        import tensorflow as tf

        # quiet: "tf.lite.Interpreter is deprecated" (LiteRT's has the same API), "Created TensorFlow Lite
        # XNNPACK delegate for CPU"
        try:
            with quiet_native_output():
                interpreter = tf.lite.Interpreter(model_path=self.model_file, num_threads=threads)
                interpreter.allocate_tensors()
        except ValueError as e:
            raise ExportedModelError(f"MODEL: {self.model_file}: not a TFLite model "
                                     f"({str(e).splitlines()[0][:200]})") from None
        return interpreter

    def _load_tflite(self) -> None:
        self._tflite = self._interpreter(self.threads)
        self.input, self.output = self._tflite.get_input_details()[0], self._tflite.get_output_details()[0]
        self.image_size = int(self.input["shape"][1])
        self._batch = 1

    def _quantize(self, images: np.ndarray) -> np.ndarray:
        """uint8 pixels as the TFLite input takes them (its own dtype and quantization)."""
        dtype = self.input["dtype"]
        scale, zero_point = self.input["quantization"]
        if dtype == np.float32:
            return images.astype(np.float32)
        if dtype == np.uint8 and (scale, zero_point) == (1.0, 0):
            return images.astype(np.uint8)
        info = np.iinfo(dtype)
        return np.clip(np.round(images / scale + zero_point), info.min, info.max).astype(dtype)

    def _dequantize(self, values: np.ndarray) -> np.ndarray:
        if self.output["dtype"] == np.float32:
            return values.astype(np.float32)
        scale, zero_point = self.output["quantization"]
        return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)

    def _invoke(self, interpreter, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] != interpreter.get_input_details()[0]["shape"][0]:
            interpreter.resize_tensor_input(self.input["index"], list(batch.shape))
            interpreter.allocate_tensors()
        interpreter.set_tensor(self.input["index"], self._quantize(batch))
        interpreter.invoke()
        return self._dequantize(interpreter.get_tensor(self.output["index"]))

    def predict(self, images: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        images = np.asarray(images)
        if images.dtype != np.uint8:
            images = np.clip(np.round(images), 0, 255).astype(np.uint8)
        out = []
        for start in range(0, len(images), BATCH):
            batch = images[start:start + BATCH]
            if self.kind == "savedmodel":
                out.append(self._run_u8(images=tf.constant(batch))["probabilities"].numpy())
            else:
                out.append(self._invoke(self._tflite, batch))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def latency_ms(self, image: np.ndarray) -> float:
        """Median milliseconds of one image (batch 1) on a TFLite
        interpreter of one thread, after warm-up."""
        if self.kind != "tflite":
            raise ValueError("one thread's latency of a SavedModel is measured in a fresh process (export)")
        interpreter = self._interpreter(1)
        one = np.asarray(image, dtype=np.uint8)[None]
        return median_ms(lambda: self._invoke(interpreter, one))


def probe_savedmodel(folder: str, images: np.ndarray, files: list[str], work: str) -> dict:
    """Run :data:`SAVEDMODEL_PROBE` on ``folder`` in a fresh Python:
    ``{probs, probs_bytes, names, latency_ms, latency_ms_from_bytes}``.
    Raises RuntimeError with the probe's last lines when it fails."""
    import json
    import subprocess
    import sys

    os.makedirs(work, exist_ok=True)
    np.save(os.path.join(work, "images.npy"), np.asarray(images, dtype=np.uint8))
    with open(os.path.join(work, "files.txt"), "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write("\n".join(files) + "\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    script = SAVEDMODEL_PROBE.replace("# MEDIAN_MS: the source of median_ms below, put here when the probe runs\n",
                                      inspect.getsource(median_ms))
    run = subprocess.run([sys.executable, "-c", script, folder, work], capture_output=True, text=True,
                         env=env, check=False)
    if run.returncode != 0:
        tail = [line for line in run.stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
        raise RuntimeError(f"the SavedModel did not run in a fresh Python: {tail[0][:300]}")
    with open(os.path.join(work, "latency.json"), encoding="utf-8") as f:
        latency = json.load(f)
    with open(os.path.join(work, "names.txt"), encoding="utf-8") as f:
        names = f.read().splitlines()
    return {"probs": np.load(os.path.join(work, "probs.npy")),
            "probs_bytes": np.load(os.path.join(work, "probs_bytes.npy")), "names": names, **latency}
