"""The seed report's augmentation family as one affine transform per image.

Rotation, zoom, width and height shift, shear and horizontal flip are drawn
per image with ImageDataGenerator's distributions, composed into a single
3x3 matrix (output pixel -> input pixel, in (x = column, y = row)
coordinates, the way ``keras.src.legacy.preprocessing.image`` builds it) and
applied with one bilinear resampling; brightness multiplies afterwards. One
resampling instead of one per operation is both faster and sharper.

Two appliers of the same matrices:
- :func:`warp_uint8`, OpenCV's ``warpAffine`` on uint8 images, for the CPU
  (tf.data map): about 4x TensorFlow's kernel on 2 cores (benchmarks/pipeline.py);
- :func:`apply_params`, TensorFlow's ``ImageProjectiveTransformV3`` on float
  batches, which runs on a GPU: :class:`RandomAffine` wraps it as the model's
  first layer (active only in training), so a GPU trial's CPU just streams
  uint8 batches. ``fill_mode: wrap`` resamples with :func:`wrap_bilinear`
  instead: TensorFlow's WRAP differs from OpenCV's (see there).

``wrap`` tiles the image with period n (abcd|abcd|abcd, as Keras documents it
and OpenCV's BORDER_WRAP does); ImageDataGenerator hands ``wrap`` to scipy,
whose ``wrap`` repeats with period n - 1 (the last and first pixel overlap):
our ``wrap`` is scipy's ``grid-wrap``.

Shifts follow the documented meaning (``width_shift_range`` moves the image
horizontally by a fraction of its width). Keras 3's legacy generator swaps the
two when it builds its matrix; the test that compares the two says so.
"""

from __future__ import annotations

import math

import cv2
import keras
import numpy as np
import tensorflow as tf

from scenetune.trainables.classifier.config import Augment

FILL_MODES = {"nearest": "NEAREST", "constant": "CONSTANT", "reflect": "REFLECT", "wrap": "WRAP"}
# scipy.ndimage's (ImageDataGenerator's) and TensorFlow's reflect is OpenCV's BORDER_REFLECT (abc|cba).
CV2_BORDERS = {"nearest": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT,
               "wrap": cv2.BORDER_WRAP}
cv2.setNumThreads(1)  # tf.data runs several batches at once; nested thread pools only fight


def sample_params(batch, height: int, width: int, augment: Augment) -> dict:
    """Random transform parameters for ``batch`` images, as ImageDataGenerator
    draws them: angles in degrees, shifts in pixels, zoom factors, flip flags.
    Seeded by TensorFlow's global seed (``keras.utils.set_random_seed``)."""
    n = tf.stack([batch])

    def uniform(limit, low=None):
        return tf.random.uniform(n, -limit if low is None else low, limit)

    zoom_lo, zoom_hi = augment.zoom_bounds()
    zoomed = (zoom_lo, zoom_hi) != (1.0, 1.0)
    bright = augment.brightness_bounds()
    zeros = tf.zeros(n)
    return {
        "theta": uniform(augment.rotation_range) if augment.rotation_range else zeros,
        "shift_x": uniform(augment.width_shift_range) * width if augment.width_shift_range else zeros,
        "shift_y": uniform(augment.height_shift_range) * height if augment.height_shift_range else zeros,
        "shear": uniform(augment.shear_range) if augment.shear_range else zeros,
        "zoom_x": uniform(zoom_hi, zoom_lo) if zoomed else zeros + 1,
        "zoom_y": uniform(zoom_hi, zoom_lo) if zoomed else zeros + 1,
        "flip": tf.random.uniform(n) < 0.5 if augment.horizontal_flip else tf.zeros(n, tf.bool),
        "brightness": uniform(bright[1], bright[0]) if bright else zeros + 1,
    }


def transform_matrices(params: dict, height: int, width: int) -> tf.Tensor:
    """``[batch, 8]`` projective transforms (output -> input) for the parameters."""
    theta = params["theta"] * (math.pi / 180)
    shear = params["shear"] * (math.pi / 180)
    zx, zy = params["zoom_x"], params["zoom_y"]
    tx, ty = params["shift_x"], params["shift_y"]
    cos, sin = tf.cos(theta), tf.sin(theta)
    one, zero = tf.ones_like(theta), tf.zeros_like(theta)

    def mat(rows):
        return tf.stack([tf.stack(r, axis=-1) for r in rows], axis=-2)  # [batch, 3, 3]

    rotation = mat([[cos, -sin, zero], [sin, cos, zero], [zero, zero, one]])
    shift = mat([[one, zero, tx], [zero, one, ty], [zero, zero, one]])
    shearing = mat([[one, -tf.sin(shear), zero], [zero, tf.cos(shear), zero], [zero, zero, one]])
    zoom = mat([[zx, zero, zero], [zero, zy, zero], [zero, zero, one]])
    ox, oy = width / 2 - 0.5, height / 2 - 0.5
    to_center = mat([[one, zero, ox * one], [zero, one, oy * one], [zero, zero, one]])
    from_center = mat([[one, zero, -ox * one], [zero, one, -oy * one], [zero, zero, one]])
    flip = tf.cast(params["flip"], tf.float32)
    # A flip applied after the affine map reads output column c from column w-1-c.
    flipping = mat([[1 - 2 * flip, zero, flip * (width - 1)], [zero, one, zero], [zero, zero, one]])
    m = to_center @ rotation @ shift @ shearing @ zoom @ from_center @ flipping
    m = m / m[:, 2:3, 2:3]
    return tf.reshape(m, (-1, 9))[:, :8]


def image_size_of(images: tf.Tensor):
    """``(height, width)``: Python ints when static, float32 tensors when the
    model takes any size (progressive resizing builds such models)."""
    if images.shape[1] is not None and images.shape[2] is not None:
        return images.shape[1], images.shape[2]
    shape = tf.cast(tf.shape(images), tf.float32)
    return shape[1], shape[2]


def wrap_bilinear(images: tf.Tensor, transforms: tf.Tensor) -> tf.Tensor:
    """Bilinear resampling of a float ``[batch, h, w, c]`` batch by ``[batch, 8]``
    projective transforms (output -> input, pixel centres at integers) with the
    image tiled periodically (abcd|abcd|abcd): OpenCV's ``BORDER_WRAP``, and
    scipy's ``grid-wrap``. TensorFlow's own WRAP mode is not that: it clamps
    coordinates between the last pixel and the first one's copy (no
    interpolation across the seam: the output jumps to the last or first
    pixel there) and, past one period out, wraps by ``n - 1`` steps of ``n``
    (wrong pixels). Plain gathers, so it runs on a GPU and under XLA too."""
    shape = tf.shape(images)
    batch, h, w, channels = shape[0], shape[1], shape[2], shape[3]
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    rows, cols = tf.meshgrid(tf.range(hf), tf.range(wf), indexing="ij")  # [h, w]
    a = [transforms[:, i, None, None] for i in range(8)]  # each [batch, 1, 1]
    k = a[6] * cols + a[7] * rows + 1.0
    x = (a[0] * cols + a[1] * rows + a[2]) / k  # [batch, h, w]
    y = (a[3] * cols + a[4] * rows + a[5]) / k
    x0, y0 = tf.floor(x), tf.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = tf.math.floormod(x0, wf), tf.math.floormod(y0, hf)
    x1, y1 = tf.math.floormod(x0 + 1, wf), tf.math.floormod(y0 + 1, hf)
    flat = tf.reshape(images, tf.stack([batch, h * w, channels]))

    def at(yy, xx):
        index = tf.reshape(tf.cast(yy, tf.int32) * w + tf.cast(xx, tf.int32), tf.stack([batch, h * w]))
        return tf.reshape(tf.gather(flat, index, batch_dims=1), shape)

    top = at(y0, x0) * (1 - fx) + at(y0, x1) * fx
    bottom = at(y1, x0) * (1 - fx) + at(y1, x1) * fx
    return top * (1 - fy) + bottom * fy


def apply_params(images: tf.Tensor, params: dict, fill_mode: str = "nearest", cval: float = 0.0) -> tf.Tensor:
    """Warp a float ``[batch, h, w, c]`` batch (values 0-255) with the given parameters."""
    height, width = image_size_of(images)
    transforms = transform_matrices(params, height, width)
    if fill_mode == "wrap":
        warped = wrap_bilinear(images, transforms)
    else:
        warped = tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
            fill_value=tf.constant(cval, tf.float32), interpolation="BILINEAR", fill_mode=FILL_MODES[fill_mode])
    return tf.clip_by_value(warped * params["brightness"][:, None, None, None], 0.0, 255.0)


def random_augment(images: tf.Tensor, augment: Augment) -> tf.Tensor:
    """A freshly drawn transform for every image of the batch."""
    if not augment.enabled:
        return images
    images = tf.cast(images, tf.float32)
    batch = tf.shape(images)[0]
    params = sample_params(batch, *image_size_of(images), augment)
    return apply_params(images, params, augment.fill_mode, augment.cval)


def warp_uint8(images: np.ndarray, transforms: np.ndarray, brightness: np.ndarray,
               fill_mode: str = "nearest", cval: float = 0.0) -> np.ndarray:
    """OpenCV's applier: uint8 ``[batch, h, w, 3]`` warped by ``[batch, 8]``
    transforms (from :func:`transform_matrices`), then scaled by ``brightness``
    (rounded and saturated to uint8). Same maps as :func:`apply_params`."""
    out = np.empty_like(images)
    height, width = images.shape[1:3]
    border = CV2_BORDERS[fill_mode]
    value = (float(cval),) * 3
    for i in range(len(images)):
        m = np.append(transforms[i], 1.0).reshape(3, 3)[:2].astype(np.float64)
        cv2.warpAffine(images[i], m, (width, height), dst=out[i],
                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border, borderValue=value)
        if brightness[i] != 1.0:
            cv2.convertScaleAbs(out[i], dst=out[i], alpha=float(brightness[i]))
    return out


def random_warp_uint8(images: tf.Tensor, augment: Augment) -> tf.Tensor:
    """tf.data step: fresh parameters per image (TensorFlow's seeded RNG),
    applied by OpenCV to a uint8 batch of static height and width."""
    height, width = images.shape[1], images.shape[2]
    params = sample_params(tf.shape(images)[0], height, width, augment)
    def warp(batch, transforms, brightness):
        return warp_uint8(batch, transforms, brightness, augment.fill_mode, augment.cval)

    warped = tf.numpy_function(warp, [images, transform_matrices(params, height, width), params["brightness"]],
                               tf.uint8, stateful=False)
    return tf.ensure_shape(warped, images.shape)


@keras.saving.register_keras_serializable("scenetune")
class RandomAffine(keras.layers.Layer):
    """The augmentation as a model's first layer: a fresh transform per image
    in training, the identity (a cast to float32) at inference. On a GPU trial
    the resampling runs on the GPU and the CPU only streams uint8 batches."""

    def __init__(self, augment: dict | None = None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # resample in float32 under mixed precision too
        super().__init__(**kwargs)
        self.augment = Augment.model_validate(augment or {})

    def call(self, images, training=None):
        images = tf.cast(images, tf.float32)
        if not training or not self.augment.enabled:
            return images
        return random_augment(images, self.augment)

    def apply_fixed(self, images, params: dict):
        """The same resampling with given parameters (tests compare it with the CPU path)."""
        return apply_params(tf.cast(images, tf.float32), params, self.augment.fill_mode, self.augment.cval)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "augment": self.augment.model_dump(mode="json")}
