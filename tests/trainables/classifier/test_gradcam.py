"""Grad-CAM on a model of ours (build_classifier, basic_cnn) trained so that
only one region of the image tells the classes apart: the heatmap has the
input's size and most of its mass in that region."""

import numpy as np
import pytest

from scenetune.trainables.classifier.config import ClassifierConfig

SIZE = 32
REGION = (slice(0, 16), slice(0, 16))  # the top-left quadrant: a quarter of the image


def scenes(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Noise everywhere; in the top-left quadrant a 10x10 patch of stripes
    (class 1) or of flat grey with the same mean (class 0)."""
    images = rng.uniform(60, 190, size=(n, SIZE, SIZE, 3)).astype(np.float32)
    labels = np.arange(n) % 2
    stripes = np.where(np.arange(10) % 4 < 2, 255.0, 0.0)[None, :, None] * np.ones((10, 1, 3))
    for image, label in zip(images, labels):
        y, x = rng.integers(0, 7, size=2)
        image[y:y + 10, x:x + 10] = stripes if label else 127.5
    return images, labels


@pytest.fixture(scope="module")
def trained():
    import keras

    from scenetune.trainables.classifier.models import build_classifier

    keras.utils.set_random_seed(0)
    cfg = ClassifierConfig(backbone="basic_cnn", weights="none", image_size=SIZE, cnn_blocks=2, cnn_filters=8,
                           dense_units=16, learning_rate=3e-3)
    model = build_classifier(cfg, num_classes=2)
    rng = np.random.default_rng(0)
    x, y = scenes(256, rng)
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    test_x, test_y = scenes(40, rng)
    accuracy = (model.predict(test_x, verbose=0).argmax(axis=1) == test_y).mean()
    assert accuracy >= 0.9, f"the toy model did not learn its task ({accuracy:.2f}); Grad-CAM would mean nothing"
    return model, test_x, test_y


def test_heatmap_has_the_input_size_and_its_mass_in_the_region(trained):
    from scenetune.trainables.classifier.gradcam import gradcam

    model, images, labels = trained
    striped = images[labels == 1]
    heatmaps, probs = gradcam(model, striped)
    assert heatmaps.shape == (len(striped), SIZE, SIZE)
    assert heatmaps.min() >= 0 and np.allclose(heatmaps.max(axis=(1, 2)), 1.0)
    np.testing.assert_allclose(probs, model.predict(striped, verbose=0), atol=1e-5)
    share = heatmaps[:, REGION[0], REGION[1]].sum(axis=(1, 2)) / heatmaps.sum(axis=(1, 2))
    assert share.mean() > 0.6, f"only {share.mean():.2f} of the heatmap is on the region (a quarter of the image)"
    assert (share > 0.4).mean() >= 0.8


def test_overlay_is_a_png_of_the_image_size(trained, tmp_path):
    from PIL import Image

    from scenetune.trainables.classifier.gradcam import gradcam, save_overlay

    model, images, _ = trained
    heatmaps, _ = gradcam(model, images[:1])
    save_overlay(images[0], heatmaps[0], tmp_path / "cam.png", scale=4)
    with Image.open(tmp_path / "cam.png") as picture:
        assert picture.format == "PNG" and picture.size == (SIZE * 4, SIZE * 4)
