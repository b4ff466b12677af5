"""The DCGAN's networks, its checkpoint and its sample grids."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from scenetune.trainables.gan.checkpoint import load_checkpoint, save_checkpoint
from scenetune.trainables.gan.config import GanConfig
from scenetune.trainables.gan.models import build_discriminator, build_generator, generator_widths
from scenetune.trainables.gan.samples import PAD, save_grid, tile
from scenetune.trainables.gan.train import build_gan, fixed_latents

SIZES = [32, 64, 128]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("width", [4, 16])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_and_discriminator_shapes(size, width, channels):
    generator = build_generator(8, size, width, channels)
    discriminator = build_discriminator(size, width, channels)
    images = generator(np.random.default_rng(0).normal(size=(3, 8)).astype("float32"))
    assert tuple(images.shape) == (3, size, size, channels)
    assert float(np.abs(images).max()) <= 1.0  # tanh
    assert tuple(discriminator(images).shape) == (3, 1)


@pytest.mark.parametrize("size", [32, 64])
def test_conditional_networks_take_a_label(size):
    generator = build_generator(8, size, 4, 3, num_classes=5)
    discriminator = build_discriminator(size, 4, 3, num_classes=5)
    labels = np.array([0, 4], "int32")
    images = generator([np.zeros((2, 8), "float32"), labels])
    assert tuple(images.shape) == (2, size, size, 3)
    assert tuple(discriminator([np.asarray(images), labels]).shape) == (2, 1)
    # The label changes the logit of the same image (projection term).
    discriminator.get_layer("label_projection").set_weights([np.random.default_rng(0).normal(
        size=discriminator.get_layer("label_projection").get_weights()[0].shape)])
    same = np.repeat(np.random.default_rng(1).uniform(-1, 1, (1, size, size, 3)).astype("float32"), 2, axis=0)
    logits = np.asarray(discriminator([same, labels]))
    assert abs(logits[0, 0] - logits[1, 0]) > 1e-3


@pytest.mark.parametrize("size", SIZES)
def test_parameter_counts_grow_with_the_widths(size):
    gen = [build_generator(16, size, w).count_params() for w in (4, 8, 16)]
    disc = [build_discriminator(size, w).count_params() for w in (4, 8, 16)]
    assert gen == sorted(gen) and len(set(gen)) == 3
    assert disc == sorted(disc) and len(set(disc)) == 3
    assert build_generator(64, size, 8).count_params() > build_generator(16, size, 8).count_params()


def test_blocks_halve_in_the_generator_and_double_in_the_discriminator():
    generator = build_generator(16, 64, 8)
    ups = [layer.filters for layer in generator.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert generator_widths(8, 4) == [64, 32, 16, 8]
    assert ups == [32, 16, 8, 3]  # 4x4 at 64 filters, then halving, then the RGB image
    assert generator.get_layer("to_4x4").output.shape[1:] == (4, 4, 64)
    downs = [layer.filters for layer in build_discriminator(64, 8).layers if isinstance(layer, keras.layers.Conv2D)]
    assert downs == [8, 16, 32, 64]


def tiny_gan(**changes):
    cfg = GanConfig(image_size=32, gen_filters=4, disc_filters=4, latent_dim=8, batch_size=4, grid_size=2,
                    **changes)
    return cfg, build_gan(cfg, 3, 0)


def fit_steps(gan, steps, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (steps * 4, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 3, steps * 4).astype("int32")
    gan.fit(images, labels, batch_size=4, epochs=1, verbose=0)


def test_checkpoint_restores_both_networks_both_optimizers_and_the_fixed_latents(tmp_path):
    cfg, gan = tiny_gan()
    fit_steps(gan, 3)
    latents, labels = fixed_latents(cfg, 3)
    state = {"epoch": 1, "train_time_s": 1.5, "saturated": [False], "diversity": [0.4],
             "latents": latents, "labels": labels}
    save_checkpoint(str(tmp_path), gan, state)
    _, fresh = tiny_gan()
    restored = load_checkpoint(str(tmp_path), fresh)
    for old, new in ((gan.generator, fresh.generator), (gan.discriminator, fresh.discriminator)):
        for a, b in zip(old.get_weights(), new.get_weights()):
            np.testing.assert_array_equal(a, b)
    for old, new in ((gan.g_optimizer, fresh.g_optimizer), (gan.d_optimizer, fresh.d_optimizer)):
        assert int(new.iterations.numpy()) == 3
        assert len(old.variables) == len(new.variables) > 3  # step, moments of every weight
        for a, b in zip(old.variables, new.variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(restored["latents"], latents)
    np.testing.assert_array_equal(restored["labels"], labels)
    assert restored["saturated"] == [False] and restored["diversity"] == [0.4] and restored["epoch"] == 1
    # Training continues from the restored optimizer state, not from step 0.
    fit_steps(fresh, 2, seed=1)
    assert int(fresh.g_optimizer.iterations.numpy()) == 5


def test_fixed_latents_depend_only_on_the_seed():
    cfg = GanConfig(latent_dim=8, grid_size=3, seed=7)
    a, labels = fixed_latents(cfg, 2)
    b, _ = fixed_latents(cfg, 2)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (9, 8)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0]  # one class a row
    assert not np.array_equal(a, fixed_latents(GanConfig(latent_dim=8, grid_size=3, seed=8), 2)[0])


def test_grid_tiles_cells_with_padding(tmp_path):
    images = np.stack([np.full((8, 8, 3), v, "float32") for v in (-1.0, 0.0, 1.0, 0.5, -0.5)])
    canvas = tile(images, cols=3)
    step = 8 + PAD
    assert canvas.shape == (2 * step + PAD, 3 * step + PAD, 3)
    assert canvas[PAD, PAD].tolist() == [0, 0, 0]
    assert canvas[PAD, PAD + 2 * step].tolist() == [255, 255, 255]
    assert canvas[PAD + step, PAD + step].tolist() == [64, 64, 64]  # -0.5 -> 63.75 -> 64
    path = save_grid(images[..., :1], str(tmp_path / "g.png"), 3)
    assert Image.open(path).mode == "L"
    assert json.loads((tmp_path / "grid.json").read_text()) == {"cell": 8, "pad": PAD, "cols": 3, "count": 5}
