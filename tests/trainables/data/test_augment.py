"""Our one-affine augmentation against Keras' ImageDataGenerator."""

import numpy as np
import pytest
import tensorflow as tf
from keras.src.legacy.preprocessing.image import ImageDataGenerator
from PIL import Image

from scenetune.trainables.classifier.config import Augment
from scenetune.trainables.data.augment import (
    RandomAffine,
    apply_params,
    random_augment,
    sample_params,
    transform_matrices,
    warp_uint8,
)
from scenetune.trainables.data.pipeline import decode_resize, make_dataset


def scene(h=96, w=96):
    rng = np.random.default_rng(0)
    img = np.zeros((h, w, 3), np.float32)
    img[5:15, 8:30] = 200
    img[20:40, 22:27] = [30, 160, 90]
    img[..., 2] += rng.uniform(0, 60, (h, w))
    return img


CASES = [
    dict(theta=20), dict(tx=5), dict(ty=-4), dict(shear=15), dict(zx=1.2, zy=0.85), dict(flip_horizontal=True),
    dict(theta=-17, tx=3, ty=-4, shear=10, zx=1.1, zy=0.9, flip_horizontal=True),
]


@pytest.mark.parametrize("keras_params", CASES, ids=[",".join(c) for c in CASES])
@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "constant", "wrap"])
def test_same_transform_as_image_data_generator(keras_params, fill_mode):
    img = scene()
    # The generator hands fill_mode to scipy.ndimage, whose "wrap" repeats the
    # image with period n - 1 (first and last pixel overlap); the documented
    # wrap (abcd|abcd|abcd, OpenCV's BORDER_WRAP, ours) is scipy's "grid-wrap".
    scipy_mode = {"wrap": "grid-wrap"}.get(fill_mode, fill_mode)
    reference = ImageDataGenerator(fill_mode=scipy_mode).apply_transform(img.copy(), keras_params)
    # Keras 3's legacy generator builds its matrix in (x=column, y=row) order,
    # so its "tx" (drawn from height_shift_range) moves the image sideways: our
    # shift_x is its tx, our shift_y its ty.
    ours = {"theta": keras_params.get("theta", 0), "shift_x": keras_params.get("tx", 0),
            "shift_y": keras_params.get("ty", 0), "shear": keras_params.get("shear", 0),
            "zoom_x": keras_params.get("zx", 1), "zoom_y": keras_params.get("zy", 1),
            "flip": keras_params.get("flip_horizontal", False), "brightness": 1.0}
    params = {k: tf.constant([v], tf.bool if k == "flip" else tf.float32) for k, v in ours.items()}
    warped = apply_params(tf.constant(img[None]), params, fill_mode).numpy()[0]
    diff = np.abs(warped - reference).max(axis=-1)
    # The same map: only interpolation differs, at the rim where the fill begins.
    assert diff.mean() < 0.5
    assert (diff > 8).mean() < 0.02


def gradient_scene(h=64, w=64):
    """Ramps that jump from 252 to 0 at the right and bottom edges: a wrong
    seam (no interpolation across it, or the wrong period) shows at once."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 4, yy * 4, (xx + yy) * 2], axis=-1) % 256
    img[10:20, 12:40] = 250
    return img.astype(np.uint8)


FIXED_PARAMS = {
    "within one period": {"theta": [17.0, -8.0], "shift_x": [5.0, -3.0], "shift_y": [-4.0, 6.0],
                          "shear": [10.0, 0.0], "zoom_x": [1.1, 0.9], "zoom_y": [0.9, 1.15], "flip": [True, False],
                          "brightness": [1.0, 1.2]},
    "past one period": {"theta": [30.0, 0.0], "shift_x": [70.0, -90.0], "shift_y": [-75.0, 3.5],
                        "shear": [0.0, 5.0], "zoom_x": [2.6, 1.7], "zoom_y": [2.2, 3.0], "flip": [False, True],
                        "brightness": [0.9, 1.0]},
}


@pytest.mark.parametrize("case", FIXED_PARAMS)
@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "constant", "wrap"])
def test_the_cpu_warp_and_the_model_layer_agree_for_every_fill_mode(fill_mode, case):
    """OpenCV's warpAffine (CPU, tf.data) and RandomAffine (in the model) are
    one transform: what is left is OpenCV's fixed-point resampling (1/32 pixel
    coordinates, uint8 rounding before the brightness), the same for every
    fill mode. TensorFlow's own WRAP mode did not interpolate across the
    seam and wrapped wrongly past one period: 3.4 grey levels apart on the
    first case, 2.3% of the pixels off by more than 8."""
    images = np.stack([gradient_scene(), gradient_scene()[::-1]])
    params = {k: tf.constant(v) for k, v in FIXED_PARAMS[case].items()}
    layer = RandomAffine(Augment(rotation_range=20, fill_mode=fill_mode, cval=90).model_dump())
    on_device = layer.apply_fixed(tf.constant(images), params).numpy()
    transforms = transform_matrices(params, 64, 64).numpy()
    on_cpu = warp_uint8(images, transforms, params["brightness"].numpy(), fill_mode, 90).astype(np.float32)
    diff = np.abs(on_device - on_cpu).max(axis=-1)
    assert diff.mean() < 0.6
    assert diff.max() <= 8
    assert np.abs(on_cpu - images).mean() > 20  # and it did transform


def test_wrap_tiles_the_image_with_its_own_period():
    """abcd|abcd|abcd with bilinear interpolation across the seam, however
    far out: a half-pixel shift by k whole periods reads the same pixels."""
    row = np.arange(8, dtype=np.float32) * 10
    images = np.broadcast_to(row[None, None, :, None], (1, 4, 8, 1)).copy()
    expected = np.array([35, 5, 15, 25, 35, 45, 55, 65], np.float32)  # 70|0 seam: its middle is 35
    for periods in [0, -1, 1, -3, 5]:
        params = {k: tf.constant([v]) for k, v in dict(theta=0., shift_x=-0.5 + 8 * periods, shift_y=0.,
                                                        shear=0., zoom_x=1., zoom_y=1., brightness=1.).items()}
        params["flip"] = tf.constant([False])
        warped = apply_params(tf.constant(images), params, "wrap").numpy()[0, :, :, 0]
        np.testing.assert_allclose(warped, np.broadcast_to(expected, (4, 8)), atol=1e-3, err_msg=f"{periods=}")
        cpu = warp_uint8(images.astype(np.uint8).repeat(3, -1), transform_matrices(params, 4, 8).numpy(),
                         np.ones(1), "wrap")[0, :, :, 0]
        np.testing.assert_allclose(cpu, expected[None].repeat(4, 0), atol=1, err_msg=f"{periods=}")


def test_brightness_multiplies_like_the_generator():
    img = np.clip(np.round(scene()), 0, 255)  # the generator goes through uint8
    reference = ImageDataGenerator().apply_transform(img.copy(), {"brightness": 0.7})
    params = {k: tf.constant([v]) for k, v in dict(theta=0., shift_x=0., shift_y=0., shear=0., zoom_x=1., zoom_y=1.,
                                                    brightness=0.7).items()}
    params["flip"] = tf.constant([False])
    ours = apply_params(tf.constant(img[None]), params).numpy()[0]
    assert np.abs(ours - reference).max() <= 1.0  # PIL rounds to uint8


def test_sampled_parameters_stay_in_their_ranges():
    tf.random.set_seed(0)
    aug = Augment(rotation_range=20, zoom_range=0.15, width_shift_range=0.2, height_shift_range=0.1,
                  shear_range=15, horizontal_flip=True, brightness_range=[0.8, 1.2])
    p = {k: v.numpy() for k, v in sample_params(4000, 50, 100, aug).items()}
    assert np.abs(p["theta"]).max() <= 20 and np.abs(p["theta"]).max() > 19
    assert np.abs(p["shift_x"]).max() <= 0.2 * 100 and np.abs(p["shift_y"]).max() <= 0.1 * 50
    assert p["zoom_x"].min() >= 0.85 and p["zoom_x"].max() <= 1.15
    assert 0.45 < p["flip"].mean() < 0.55
    assert p["brightness"].min() >= 0.8 and p["brightness"].max() <= 1.2


def test_disabled_augmentation_is_the_identity():
    img = tf.constant(scene()[None])
    assert not Augment().enabled
    np.testing.assert_array_equal(random_augment(img, Augment()).numpy(), img.numpy())


def test_decode_resize_with_dct_scaling_matches_a_full_decode(tmp_path):
    big = Image.fromarray((scene(400, 480)).clip(0, 255).astype(np.uint8)).resize((480, 400))
    big.save(tmp_path / "big.jpg", quality=95)
    big.save(tmp_path / "big.png")
    fast = decode_resize(tf.constant(str(tmp_path / "big.jpg")), 64).numpy()
    exact = decode_resize(tf.constant(str(tmp_path / "big.png")), 64).numpy()  # PNG: full decode
    assert fast.shape == (64, 64, 3)
    assert np.abs(fast - exact).mean() < 4


def test_dataset_batches_shapes_and_labels(tmp_path):
    paths = []
    for i in range(5):
        p = tmp_path / f"{i}.jpg"
        Image.fromarray(np.full((30 + i, 40, 3), 40 * i, np.uint8)).save(p)
        paths.append(str(p))
    ds = make_dataset(paths, [0, 1, 2, 3, 4], 24, 2, Augment(rotation_range=10), shuffle=False)
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [2, 2, 1]
    assert batches[0][0].shape[1:] == (24, 24, 3) and batches[0][0].dtype == tf.float32
    assert [int(y) for b in batches for y in b[1]] == [0, 1, 2, 3, 4]
