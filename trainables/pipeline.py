"""The input pipeline: files -> decoded, resized float batches (values 0-255)
-> augmented -> prefetched. One module, so a faster feed can replace it.

Rescaling to what the backbone expects happens inside the model (see
:mod:`trainables.backbones`), so every backbone takes the same batches.
"""

from __future__ import annotations

import tensorflow as tf

from trainables.augment import random_augment
from trainables.config import Augment

AUTOTUNE = tf.data.AUTOTUNE


def decode_resize(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """One file -> ``(image_size, image_size, 3)`` float32 in [0, 255].

    JPEGs at least twice the target size are decoded at 1/2, 1/4 or 1/8 scale
    by libjpeg's DCT scaling, which skips most of the decoding work.
    """
    data = tf.io.read_file(path)
    is_jpeg = tf.equal(tf.strings.substr(data, 0, 3), b"\xff\xd8\xff")

    def jpeg():
        shape = tf.image.extract_jpeg_shape(data)
        short = tf.minimum(shape[0], shape[1])
        steps = sum(tf.cast(short >= k * image_size, tf.int32) for k in (2, 4, 8))  # 0..3
        return tf.switch_case(steps, [lambda r=r: tf.io.decode_jpeg(data, channels=3, ratio=r)
                                      for r in (1, 2, 4, 8)])

    def other():
        return tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)

    image = tf.cond(is_jpeg, jpeg, other)
    image = tf.image.resize(image, (image_size, image_size), method="bilinear", antialias=True)
    image = tf.ensure_shape(image, (image_size, image_size, 3))
    return tf.clip_by_value(image, 0.0, 255.0)


def make_dataset(paths: list[str], labels: list[int], image_size: int, batch_size: int,
                 augment: Augment | None = None, shuffle: bool = False, seed: int = 0,
                 shuffle_buffer: int = 2048) -> tf.data.Dataset:
    """Batches of ``(images, labels)``; ``augment`` only for training data."""
    ds = tf.data.Dataset.from_tensor_slices((list(paths), list(labels)))
    if shuffle:
        ds = ds.shuffle(min(len(paths), shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda p, y: (decode_resize(p, image_size), y), num_parallel_calls=AUTOTUNE)
    ds = ds.batch(batch_size)
    if augment is not None and augment.enabled:
        ds = ds.map(lambda x, y: (random_augment(x, augment), y), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)
