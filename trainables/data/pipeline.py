"""The input pipeline: images -> batches of ``(images, labels)`` for ``model.fit``.

Two feeds, one decode (:func:`scenetune.trainables.data.decode.load_resized`: DCT scaling,
EXIF rotation, correct RGB from any format PIL reads):

- :func:`cached_dataset`, what trials use: uint8 batches gathered from the
  node's memory-mapped decode cache (:mod:`scenetune.trainables.data.cache`), shuffled by
  index every epoch, augmented (when asked) by one OpenCV affine warp per
  image in the tf.data map. With augmentation left to the model
  (:class:`scenetune.trainables.data.augment.RandomAffine`, a GPU trial) the CPU only
  copies uint8 rows out of the page cache.
- :func:`make_dataset`: decodes the files every epoch (no cache), float32
  batches; for one-off passes such as a final evaluation.

Rescaling to what the backbone expects happens inside the model (see
:mod:`scenetune.trainables.classifier.backbones`), so every backbone takes the same batches, and
uint8 batches are cast to float32 by the model on its device.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from scenetune.trainables.classifier.config import Augment
from scenetune.trainables.data.augment import random_warp_uint8
from scenetune.trainables.data.cache import ImageCache
from scenetune.trainables.data.decode import load_resized

AUTOTUNE = tf.data.AUTOTUNE


def decode_resize(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """One file -> ``(image_size, image_size, 3)`` float32 in [0, 255], by
    the same decode as the cache (JPEGs at least twice the target size are
    decoded at 1/2, 1/4 or 1/8 scale by libjpeg's DCT scaling)."""
    def decode(p):  # bytes in tf.data; a 0-d object array when called eagerly
        return load_resized(os.fsdecode(p.item() if isinstance(p, np.ndarray) else p), image_size)

    image = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
    return tf.cast(tf.ensure_shape(image, (image_size, image_size, 3)), tf.float32)


def make_dataset(paths: list[str], labels: list[int], image_size: int, batch_size: int,
                 augment: Augment | None = None, shuffle: bool = False, seed: int = 0,
                 shuffle_buffer: int = 2048) -> tf.data.Dataset:
    """Float32 batches of ``(images, labels)`` decoded from the files on every
    pass; ``augment`` only for training data."""
    # File-system bytes, not text: a name that is not valid UTF-8 passes through (os.fsdecode above).
    ds = tf.data.Dataset.from_tensor_slices(([os.fsencode(p) for p in paths], list(labels)))
    if shuffle:
        ds = ds.shuffle(min(len(paths), shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda p, y: (tf.cast(decode_resize(p, image_size), tf.uint8), y), num_parallel_calls=AUTOTUNE)
    ds = ds.batch(batch_size)
    if augment is not None and augment.enabled:
        ds = ds.map(lambda x, y: (random_warp_uint8(x, augment), y), num_parallel_calls=AUTOTUNE)
    return ds.map(lambda x, y: (tf.cast(x, tf.float32), y)).prefetch(AUTOTUNE)


def cached_dataset(cache: ImageCache, paths: list[str], labels: list[int], batch_size: int,
                   augment: Augment | None = None, shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
    """Uint8 batches of ``(images [b, size, size, 3], labels)`` from ``cache``.

    ``paths`` must be in the cache (absolute, as it was opened with). With
    ``shuffle`` the order is a fresh seeded permutation every epoch (an index
    shuffle over the whole split: no buffer to fill). ``augment``: a random
    affine warp per image on the CPU; leave it None when the model augments.
    """
    rows = cache.rows(paths)
    images = cache.images
    size = cache.size
    ds = tf.data.Dataset.from_tensor_slices((rows, np.asarray(labels, dtype=np.int64)))
    if shuffle:
        ds = ds.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def gather(batch_rows):
        # Fancy indexing copies the rows out of the shared, read-only memmap.
        return images[batch_rows]

    def load(batch_rows, y):
        batch = tf.numpy_function(gather, [batch_rows], tf.uint8, stateful=False)
        batch = tf.ensure_shape(batch, (None, size, size, 3))
        if augment is not None and augment.enabled:
            batch = random_warp_uint8(batch, augment)
        return batch, y

    return ds.map(load, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
