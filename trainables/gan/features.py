"""The fixed feature extractor FID, KID and diversity are measured in.

Order of preference (``feature_extractor: auto``):
1. ``inception_v3``: ImageNet InceptionV3, 2048 average-pooled features at
   299 px, the extractor FID is defined with. Used when Keras can load its
   ImageNet weights (cached in ``~/.keras/models`` or downloadable);
2. ``classifier``: a classifier trained by scenetune (``classifier_checkpoint``,
   e.g. the best model of a classifier sweep on the same data): the input of
   its softmax layer, at its own image size;
3. ``random_conv``: a fixed random conv network (4 stride-2 ReLU stages of
   32-256 filters on 64 px, average-pooled and concatenated: 480 features),
   its weights seeded per layer so that every trial, process and node builds
   the same network. Random conv features separate image statistics well
   enough to rank generators; their FID values are not comparable with
   published Inception FIDs.

Values from different extractors are not comparable: each trial reports the
one it used as ``fid_extractor``.

Every extractor takes generated-style images: ``(n, s, s, c)`` floats in
[-1, 1], ``c`` 1 (grayscale, tiled to 3) or 3, any side ``s``.
"""

from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from scenetune.core import storage
from scenetune.core.layout import MODEL_FILE, model_file

RANDOM_INPUT_SIZE = 64
RANDOM_WIDTHS = (32, 64, 128, 256)
RANDOM_SEED = 1234
INCEPTION_SIZE = 299
DOWNLOAD_TIMEOUT_S = 30


def run_batched(model: keras.Model, inputs, batch_size: int) -> np.ndarray:
    """``model(inputs)`` in inference mode, ``batch_size`` rows at a time.
    Direct calls: ``model.predict`` costs a fraction of a second of set-up per
    call, more than the whole work at the sizes evaluated every epoch."""
    arrays = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    n = len(arrays[0])
    outputs = []
    for start in range(0, n, batch_size):
        chunk = [a[start:start + batch_size] for a in arrays]
        outputs.append(np.asarray(model(chunk if len(chunk) > 1 else chunk[0], training=False)))
    return np.concatenate(outputs)


@dataclass
class Extractor:
    name: str  # inception_v3 | classifier | random_conv: reported as fid_extractor
    model: keras.Model  # [-1, 1] images of the trial's shape -> features
    batch_size: int = 128

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return run_batched(self.model, np.asarray(images, np.float32), self.batch_size).astype(np.float64)

    @property
    def dim(self) -> int:
        return int(self.model.output.shape[-1])


def _front(image_size: int, channels: int, size: int, scale: float = 1.0, offset: float = 0.0):
    """Input of the trial's images -> 3 channels -> ``size`` px -> ``x * scale + offset``."""
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = inputs
    if channels == 1:
        x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
    if image_size != size:
        x = layers.Resizing(size, size, interpolation="bilinear", name="resize")(x)
    if (scale, offset) != (1.0, 0.0):
        x = layers.Rescaling(scale, offset, name="rescale")(x)
    return inputs, x


def random_conv_extractor(image_size: int, channels: int) -> Extractor:
    inputs, x = _front(image_size, channels, RANDOM_INPUT_SIZE)
    pooled = []
    for i, width in enumerate(RANDOM_WIDTHS):
        init = keras.initializers.HeNormal(seed=RANDOM_SEED + i)  # same weights everywhere
        x = layers.Conv2D(width, 3, strides=2, padding="same", activation="relu", kernel_initializer=init,
                          name=f"random_conv{i + 1}")(x)
        pooled.append(layers.GlobalAveragePooling2D(name=f"random_pool{i + 1}")(x))
    features = layers.Concatenate(name="features")(pooled)
    return Extractor("random_conv", keras.Model(inputs, features, name="random_conv_features"))


def inception_extractor(image_size: int, channels: int, weights: str | None = "imagenet",
                        input_size: int = INCEPTION_SIZE) -> Extractor:
    """InceptionV3's pooled features. Raises when its weights cannot be had.
    (``weights=None`` and a small ``input_size`` serve the tests.)"""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a blocked network must fail, not hang the trial
    try:
        net = keras.applications.InceptionV3(include_top=False, weights=weights, pooling="avg",
                                             input_shape=(input_size, input_size, 3))
    finally:
        socket.setdefaulttimeout(previous)
    inputs, x = _front(image_size, channels, input_size)  # InceptionV3 takes [-1, 1], as generated
    return Extractor("inception_v3", keras.Model(inputs, net(x), name="inception_features"), batch_size=64)


def classifier_extractor(checkpoint: str, image_size: int, channels: int) -> Extractor:
    """The features a scenetune classifier feeds its softmax layer."""
    path = model_file(checkpoint)
    if not storage.exists(path):
        raise FileNotFoundError(f"classifier_checkpoint: {path} does not exist")
    with tempfile.TemporaryDirectory() as tmp:
        local = path
        if storage.is_remote(path):
            local = os.path.join(tmp, MODEL_FILE)
            with open(local, "wb") as f:
                f.write(storage.read_bytes(path))
        classifier = keras.models.load_model(local, compile=False)
    size = int(classifier.input_shape[1])
    body = keras.Model(classifier.inputs, classifier.layers[-1].input, name="classifier_features")
    body.trainable = False
    # scenetune classifiers take pixel values in [0, 255] and rescale inside.
    inputs, x = _front(image_size, channels, size, scale=127.5, offset=127.5)
    return Extractor("classifier", keras.Model(inputs, body(x, training=False), name="classifier_extractor"))


def build_extractor(kind: str, image_size: int, channels: int, classifier_checkpoint: str | None = None,
                    log=print) -> Extractor:
    """The extractor ``kind`` asks for; ``auto`` falls back down the list
    above, logging why."""
    if kind == "inception_v3":
        try:
            return inception_extractor(image_size, channels)
        except Exception as e:  # no weights: fail loudly, the user asked for exactly this
            raise RuntimeError(f"feature_extractor inception_v3: ImageNet weights unavailable ({e}); "
                               "use auto, classifier or random") from None
    if kind == "classifier":
        return classifier_extractor(classifier_checkpoint, image_size, channels)
    if kind == "random":
        return random_conv_extractor(image_size, channels)
    try:
        return inception_extractor(image_size, channels)
    except Exception as e:  # Keras raises a bare Exception for a failed download
        log(f"fid features: InceptionV3 ImageNet weights unavailable ({str(e)[:200]}); falling back")
    if classifier_checkpoint:
        return classifier_extractor(classifier_checkpoint, image_size, channels)
    return random_conv_extractor(image_size, channels)
