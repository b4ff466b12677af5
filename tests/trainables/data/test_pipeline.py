"""The cache feed and the two augmentation appliers (CPU: OpenCV in the
tf.data map; GPU: the RandomAffine layer in the model)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from scenetune.trainables.classifier.config import Augment, ClassifierConfig
from scenetune.trainables.classifier.models import build_classifier
from scenetune.trainables.data.augment import RandomAffine, transform_matrices, warp_uint8
from scenetune.trainables.data.cache import open_cache
from scenetune.trainables.data.pipeline import cached_dataset, decode_resize

REPORT_AUGMENT = Augment(rotation_range=20, zoom_range=0.15, width_shift_range=0.2, height_shift_range=0.2,
                         shear_range=15, horizontal_flip=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Twenty JPEGs of varied shapes, each a distinct flat colour plus texture."""
    folder = tmp_path_factory.mktemp("feed")
    rng = np.random.default_rng(1)
    paths = []
    for i in range(20):
        h, w = int(rng.integers(40, 130)), int(rng.integers(40, 130))
        pixels = np.clip(rng.normal(12 * i, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        path = str(folder / f"{i:02d}.jpg")
        Image.fromarray(pixels).save(path, quality=92)
        paths.append(path)
    return paths


def scene(h=64, w=64):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 4, yy * 4, (xx + yy) * 2], axis=-1) % 256
    img[10:20, 12:40] = 250
    return img.astype(np.uint8)


def test_cache_feed_gives_the_decoded_images_with_their_labels(files, tmp_path):
    cache = open_cache(files, 32, str(tmp_path))
    labels = list(range(len(files)))
    expected = np.stack([decode_resize(tf.constant(p), 32).numpy() for p in files]).astype(np.uint8)
    orders = []
    ds = cached_dataset(cache, files, labels, batch_size=6, shuffle=True, seed=3)
    for _ in range(2):  # two epochs
        seen = []
        for images, y in ds:
            assert images.dtype == tf.uint8 and images.shape[1:] == (32, 32, 3)
            for image, label in zip(images.numpy(), y.numpy()):
                np.testing.assert_array_equal(image, expected[label])  # the label's own image
                seen.append(int(label))
        assert sorted(seen) == labels  # every image once per epoch
        orders.append(seen)
    assert orders[0] != orders[1] and orders[0] != labels  # reshuffled every epoch


def test_the_decode_matches_tensorflows_up_to_resize_interpolation(files):
    """Against TensorFlow's full decode + antialiased resize, our decode (DCT
    scaling in eighths, fast IDCT, bilinear) is off by a few levels on these
    noise textures, far less than the nearest-neighbour resize of Keras'
    ``load_img`` that the report's ImageDataGenerator used."""
    ours_off, keras_off = [], []
    for path in files[:8]:
        ours = decode_resize(tf.constant(path), 32).numpy()
        theirs = tf.image.resize(tf.io.decode_jpeg(tf.io.read_file(path), channels=3), (32, 32),
                                 antialias=True).numpy()
        nearest = np.asarray(keras.utils.load_img(path, target_size=(32, 32)), dtype=np.float32)
        ours_off.append(np.abs(ours - theirs).mean())
        keras_off.append(np.abs(nearest - theirs).mean())
    assert np.mean(ours_off) < 6
    assert np.mean(ours_off) < 0.75 * np.mean(keras_off)


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "constant"])
def test_the_model_layer_and_the_cpu_warp_apply_the_same_transform(fill_mode):
    images = np.stack([scene(), scene()[::-1]])
    params = {"theta": [17.0, -8.0], "shift_x": [5.0, -3.0], "shift_y": [-4.0, 6.0], "shear": [10.0, 0.0],
              "zoom_x": [1.1, 0.9], "zoom_y": [0.9, 1.15], "flip": [True, False], "brightness": [1.0, 1.2]}
    params = {k: tf.constant(v) for k, v in params.items()}
    layer = RandomAffine(Augment(rotation_range=20, fill_mode=fill_mode).model_dump())
    on_device = layer.apply_fixed(tf.constant(images), params).numpy()
    on_cpu = warp_uint8(images, transform_matrices(params, 64, 64).numpy(), params["brightness"].numpy(), fill_mode)
    diff = np.abs(on_device - on_cpu.astype(np.float32)).max(axis=-1)
    assert diff.mean() < 1.0  # the same map; only the kernels' rounding and rim handling differ
    assert (diff > 8).mean() < 0.02
    assert np.abs(on_cpu.astype(int) - images.astype(int)).mean() > 20  # and it did transform


def test_the_layer_augments_only_in_training_and_survives_save_and_load(tmp_path):
    images = tf.constant(np.stack([scene()] * 4))
    layer = RandomAffine(REPORT_AUGMENT.model_dump())
    inference = layer(images, training=False)
    assert inference.dtype == tf.float32
    np.testing.assert_array_equal(inference.numpy(), images.numpy().astype(np.float32))
    trained = layer(images, training=True).numpy()
    assert np.abs(trained - images.numpy()).mean() > 5
    assert np.abs(trained[0] - trained[1]).mean() > 1  # a fresh transform per image
    cfg = ClassifierConfig(backbone="basic_cnn", weights="none", image_size=64, cnn_blocks=2, cnn_filters=4,
                           dense_units=0, augment=REPORT_AUGMENT)
    model = build_classifier(cfg, 3, augment_in_model=True)
    assert isinstance(model.layers[1], RandomAffine)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(again.layers[1], RandomAffine) and again.layers[1].augment == REPORT_AUGMENT
    np.testing.assert_allclose(again.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


def test_cpu_augmented_feed_trains_a_model_on_uint8_batches(files, tmp_path):
    cache = open_cache(files, 32, str(tmp_path))
    labels = [i % 2 for i in range(len(files))]
    plain = next(iter(cached_dataset(cache, files, labels, 20)))[0].numpy()
    warped = next(iter(cached_dataset(cache, files, labels, 20, augment=REPORT_AUGMENT)))[0].numpy()
    assert warped.dtype == np.uint8 and warped.shape == plain.shape
    assert np.abs(warped.astype(int) - plain).mean() > 3
    cfg = ClassifierConfig(backbone="basic_cnn", weights="none", image_size=32, cnn_blocks=2, cnn_filters=4,
                           dense_units=0)
    model = build_classifier(cfg, 2)
    history = model.fit(cached_dataset(cache, files, labels, 5, REPORT_AUGMENT, shuffle=True), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert os.path.isdir(cache.folder)


def test_the_input_pipeline_opens_a_file_name_that_is_not_utf8(tmp_path):
    """GAN trials and evaluate feed paths through tf.data: a name like
    b"caf\\xe9.jpg" (os.fsdecode gives 'caf\\udce9.jpg') must reach the decoder."""
    import numpy as np
    from PIL import Image

    from scenetune.trainables.data.pipeline import make_dataset

    path = os.fsdecode(os.path.join(os.fsencode(str(tmp_path)), b"caf\xe9.jpg"))
    Image.fromarray(np.full((20, 24, 3), 200, np.uint8)).save(path, format="JPEG")
    (images, labels), = make_dataset([path], [2], 16, 1)
    assert images.shape == (1, 16, 16, 3) and labels.numpy().tolist() == [2]
