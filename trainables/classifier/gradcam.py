"""Grad-CAM (Selvaraju et al., 2017) for the classifiers built by
:func:`scenetune.trainables.classifier.models.build_classifier`.

The heatmap of class ``c`` is ``relu(sum_k w_k A_k)``, where ``A`` is the
backbone's output feature map (its last convolutional stage) and ``w_k`` the
spatial mean of ``d score_c / d A_k``; it is upsampled to the input's size
and scaled to [0, 1]. The classifier is a chain ``input -> layers before the
backbone -> backbone -> head layers``, so the feature map and the scores come
from one pass through those pieces, under one gradient tape.
"""

from __future__ import annotations

import keras
import matplotlib
import numpy as np
import tensorflow as tf
from PIL import Image

from scenetune.trainables.classifier.models import backbone_of


def _split(model: keras.Model):
    """``(layers before the backbone, backbone, head layers)``."""
    backbone = backbone_of(model)
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    at = layers.index(backbone)
    return layers[:at], backbone, layers[at + 1:]


def _logits(layer, x):
    """The pre-softmax scores of the output layer (a Dense with softmax), else None."""
    if isinstance(layer, keras.layers.Dense) and layer.activation is keras.activations.softmax:
        return tf.cast(tf.matmul(tf.cast(x, layer.kernel.dtype), layer.kernel) + layer.bias, tf.float32)
    return None


def gradcam(model: keras.Model, images: np.ndarray, class_index: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """``(heatmaps (n, H, W) in [0, 1], probabilities (n, classes))`` for a
    batch of images (``(n, H, W, 3)``, pixel values 0-255, the model's input
    size). ``class_index``: the class explained per image (default: the
    predicted one)."""
    before, backbone, head = _split(model)
    x = tf.convert_to_tensor(images, tf.float32)
    for layer in before:
        x = layer(x)
    with tf.GradientTape() as tape:
        features = backbone(x, training=False)
        tape.watch(features)
        y = features
        for layer in head[:-1]:
            y = layer(y, training=False)
        logits = _logits(head[-1], y)
        probs = tf.nn.softmax(logits) if logits is not None else tf.cast(head[-1](y), tf.float32)
        picked = tf.argmax(probs, axis=1) if class_index is None else tf.constant(class_index, tf.int64)
        # Grad-CAM explains the class's score before the softmax (its logit);
        # a head without one falls back to the log-probability.
        evidence = logits if logits is not None else tf.math.log(probs + 1e-12)
        score = tf.gather(evidence, picked, batch_dims=1)
    grads = tape.gradient(score, features)
    weights = tf.reduce_mean(tf.cast(grads, tf.float32), axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * tf.cast(features, tf.float32), axis=-1))[..., None]
    cam = tf.image.resize(cam, images.shape[1:3], method="bilinear")[..., 0]
    peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
    cam = tf.math.divide_no_nan(cam, peak)
    return cam.numpy(), probs.numpy()


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The heatmap in the 'jet' colour map, blended over the image (0-255)."""
    colours = matplotlib.colormaps["jet"](np.clip(heatmap, 0, 1))[..., :3] * 255.0
    blended = (1 - alpha) * np.asarray(image, np.float32) + alpha * colours
    return Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8))


def save_overlay(image: np.ndarray, heatmap: np.ndarray, path_or_file, scale: int = 1) -> None:
    picture = overlay(image, heatmap)
    if scale > 1:  # small inputs (32-64 px) are hard to read at their own size
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    picture.save(path_or_file, format="PNG")
