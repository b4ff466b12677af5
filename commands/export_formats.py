"""The three export formats, written from a Keras classifier (a model that
takes float pixels 0-255 at ``size`` and ends in a softmax):

- :func:`write_savedmodel`: a TensorFlow SavedModel with two signatures,
  ``serving_default`` (encoded images in) and ``serving_uint8`` (pixels in);
- :func:`tflite_bytes`: TFLite, float32 (the model as trained), or with
  post-training full-integer quantization calibrated on training images.

Both go through Keras' own ``ExportArchive`` (a SavedModel of the model's
inference call), the path TensorFlow gives for Keras 3 models: its variables
are frozen into constants by the TFLite converter, where a ``tf.Module``
holding the model leaves them as resource variables that calibration cannot
read. What the formats take and give is in docs/deploy.md. TensorFlow is
imported by the functions, not by this module.
"""

from __future__ import annotations

import tempfile
import warnings

import numpy as np

from scenetune.commands.exported import quiet_native_output


DENSE_PER_TENSOR = "_experimental_disable_per_channel_quantization_for_dense_layers"  # the converter's setting


def _ceil_div(a, b):
    return (a + b - 1) // b


def serving_decode(data, size: int):
    """Encoded image bytes -> ``[size, size, 3]`` uint8, as close to the
    training decode (:func:`scenetune.trainables.data.decode.load_resized`)
    as TensorFlow's ops allow:

    - a JPEG is decoded at the smallest of libjpeg's DCT scales k/8 that keeps
      both sides at least ``size``, as simplejpeg does for training; TensorFlow
      decodes at 1/1, 1/2, 1/4 or 1/8 only, so the other k/8 are the next
      larger of those followed by an area resize to the k/8 size;
    - then stretched to a square: area averaging when shrinking 1.5x or more
      (OpenCV's ``INTER_AREA``), bilinear otherwise (``INTER_LINEAR``), rounded.

    Differences left (docs/deploy.md): EXIF orientation is not applied,
    transparency is dropped rather than composited on white, the first frame
    of a GIF is used, CMYK JPEGs and 16-bit PNGs are converted as TensorFlow
    converts them, and OpenCV's fixed-point arithmetic rounds a few pixels
    by one level differently. An image already at ``size`` decodes to the
    very pixels training saw."""
    import tensorflow as tf

    def jpeg():
        shape = tf.io.extract_jpeg_shape(data)
        h, w = shape[0], shape[1]
        ks = tf.range(1, 9)
        fits = tf.logical_and(_ceil_div(h * ks, 8) >= size, _ceil_div(w * ks, 8) >= size)
        k = tf.reduce_min(tf.where(fits, ks, 8))
        th, tw = _ceil_div(h * k, 8), _ceil_div(w * k, 8)
        index = tf.where(k <= 1, 3, tf.where(k <= 2, 2, tf.where(k <= 4, 1, 0)))  # ratio 1, 2, 4, 8
        image = tf.switch_case(index, [lambda r=r: tf.io.decode_jpeg(data, channels=3, ratio=r,
                                                                     dct_method="INTEGER_ACCURATE")
                                       for r in (1, 2, 4, 8)])
        image.set_shape([None, None, 3])
        same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.stack([th, tw])))
        return tf.cond(same, lambda: tf.cast(image, tf.float32),
                       lambda: tf.image.resize(image, tf.stack([th, tw]), "area"))

    def other():
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return tf.cast(image, tf.float32)

    image = tf.cond(tf.io.is_jpeg(data), jpeg, other)
    shrink = tf.cast(tf.reduce_min(tf.shape(image)[:2]), tf.float32) / size
    resized = tf.cond(shrink >= 1.5, lambda: tf.image.resize(image, [size, size], "area"),
                      lambda: tf.image.resize(image, [size, size], "bilinear"))
    return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)


def _archive(endpoints: dict):
    """A Keras ExportArchive with ``{name: (fn, input_signature)}``.

    The model is not ``track()``-ed: the endpoints track the variables they
    use, and ``track()`` would save every weight a second time (Keras 3.15
    saves its variable wrappers and their TensorFlow variables both: a
    SavedModel twice the size)."""
    import keras

    archive = keras.export.ExportArchive()
    for name, (fn, signature) in endpoints.items():
        archive.add_endpoint(name, fn, input_signature=signature)
    return archive


def write_savedmodel(model, classes: list[str], size: int, folder: str) -> None:
    """The serving SavedModel, written into ``folder`` (which may exist, empty).

    ``serving_default(image_bytes: string [N])`` and
    ``serving_uint8(images: uint8 [N, size, size, 3])`` both return
    ``probabilities`` float32 [N, C], ``class_name`` string [N] (each row's
    most probable class) and ``class_names`` string [N, C] (the names of the
    columns, repeated per row so every output is batch-major, as TF
    Serving's row format wants)."""
    import tensorflow as tf

    def outputs(probabilities):
        names = tf.constant(classes)
        count = tf.shape(probabilities)[0]
        return {"probabilities": probabilities,
                "class_name": tf.gather(names, tf.argmax(probabilities, axis=1)),
                "class_names": tf.tile(names[None], tf.stack([count, 1]))}

    def from_pixels(images):
        return outputs(tf.cast(model(tf.cast(images, tf.float32), training=False), tf.float32))

    def from_bytes(image_bytes):
        images = tf.map_fn(lambda data: serving_decode(data, size), image_bytes,
                           fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8))
        return from_pixels(images)

    archive = _archive({
        "serving_default": (from_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")]),
        "serving_uint8": (from_pixels, [tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")])})
    with quiet_native_output():
        archive.write_out(folder, verbose=False)


def tflite_bytes(model, size: int, calibration: np.ndarray | None = None) -> bytes:
    """The model as TFLite, built-in ops only (no Flex delegate needed).

    Without ``calibration``: float32 in (``image`` [1, size, size, 3], pixels
    0-255, any batch after a resize), float32 ``probabilities`` out.

    With ``calibration`` (uint8 training images [M, size, size, 3]):
    post-training full-integer quantization, int8 weights and activations,
    every op an integer op (``TFLITE_BUILTINS_INT8``); uint8 input and output.
    The first calibration image carries one black and one white pixel, so
    the input's range is exactly 0-255: its quantization is scale 1, zero
    point 0 and raw pixels go in as they are. The output is quantized too
    (softmax: scale 1/256, zero point 0): probability = scale * (q - zero point).
    Convolutions get a scale per output channel; dense layers one per
    tensor (``DENSE_PER_TENSOR``), which saves two scales and zero points
    an output unit: on the basic CNN, 4% of its int8 size, for no accuracy
    lost (benchmarks/README.md#export-formats).
    """
    import tensorflow as tf

    archive = _archive({"serve": (lambda image: {"probabilities": model(image, training=False)},
                                         [tf.TensorSpec([None, size, size, 3], tf.float32, name="image")])})
    with tempfile.TemporaryDirectory() as tmp, quiet_native_output():
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if calibration is not None:
            images = np.asarray(calibration, dtype=np.float32).copy()
            images[0, 0, 0, :] = 0.0
            images[0, 0, -1, :] = 255.0

            def representative():
                for image in images:
                    yield [image[None]]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8
            if hasattr(converter, DENSE_PER_TENSOR):  # TensorFlow 2.21's converter; without it: per channel
                setattr(converter, DENSE_PER_TENSOR, True)
        return converter.convert()


def tflite_io(data: bytes) -> dict:
    """The input's and output's dtype, shape and quantization of a TFLite model."""
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_content=data)
    out = {}
    for key, detail in (("input", interpreter.get_input_details()[0]), ("output", interpreter.get_output_details()[0])):
        scale, zero_point = detail["quantization"]
        out[key] = {"name": detail["name"], "dtype": np.dtype(detail["dtype"]).name,
                    "shape": [int(v) for v in detail["shape_signature"]]}
        if scale:
            out[key] |= {"scale": float(scale), "zero_point": int(zero_point)}
    return out
