"""The feature extractors FID is measured in, and the fallback between them."""

import os

import keras
import numpy as np
import pytest

from scenetune.trainables.classifier.config import ClassifierConfig
from scenetune.trainables.classifier.models import build_classifier
from scenetune.trainables.gan.features import (
    build_extractor,
    classifier_extractor,
    inception_extractor,
    random_conv_extractor,
)


def images(n=6, size=32, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, channels)).astype("float32")


def inception_weights_cached() -> bool:
    home = os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras"))
    return os.path.isfile(os.path.join(home, "models", "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"))


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    """A small scenetune classifier saved as a checkpoint folder holds it."""
    folder = tmp_path_factory.mktemp("classifier_checkpoint")
    cfg = ClassifierConfig(backbone="basic_cnn", weights="none", image_size=40, cnn_blocks=2, cnn_filters=4,
                           dense_units=12)
    build_classifier(cfg, 3).save(str(folder / "model.keras"))
    return str(folder)


def test_the_random_network_is_the_same_in_every_trial():
    """Seeded per layer: the global seed (each trial's own) changes nothing,
    so FIDs of different trials are comparable."""
    keras.utils.set_random_seed(1)
    a = random_conv_extractor(32, 3)(images())
    keras.utils.set_random_seed(2)
    b = random_conv_extractor(32, 3)(images())
    np.testing.assert_allclose(a, b, rtol=1e-5)
    assert a.shape == (6, 480)


def test_grayscale_images_are_tiled_to_rgb():
    extractor = random_conv_extractor(64, 1)
    gray = images(size=64, channels=1)
    np.testing.assert_allclose(extractor(gray), random_conv_extractor(64, 3)(np.repeat(gray, 3, axis=-1)),
                               rtol=1e-5)


def test_classifier_features_are_the_input_of_its_softmax(classifier_dir):
    extractor = classifier_extractor(classifier_dir, 32, 3)
    assert extractor.name == "classifier" and extractor.dim == 12
    features = extractor(images())
    assert features.shape == (6, 12) and np.isfinite(features).all()
    assert classifier_extractor(os.path.join(classifier_dir, "model.keras"), 32, 1)(images(channels=1)).shape == (6, 12)
    with pytest.raises(FileNotFoundError, match="classifier_checkpoint"):
        classifier_extractor(os.path.join(classifier_dir, "missing"), 32, 3)


def test_inception_features_have_2048_dimensions():
    extractor = inception_extractor(32, 1, weights=None, input_size=75)  # random weights: the code path only
    assert extractor.name == "inception_v3" and extractor(images(n=2, channels=1)).shape == (2, 2048)


def test_auto_falls_back_when_imagenet_weights_are_unavailable(classifier_dir):
    messages = []
    extractor = build_extractor("auto", 32, 3, classifier_dir, log=messages.append)
    if inception_weights_cached():
        assert extractor.name == "inception_v3"
        return
    if extractor.name == "inception_v3":
        pytest.skip("this machine downloaded the InceptionV3 weights: no fallback to test")
    assert extractor.name == "classifier", "with a classifier checkpoint, auto uses it next"
    assert "InceptionV3 ImageNet weights unavailable" in messages[0]
    with pytest.raises(RuntimeError, match="inception_v3: ImageNet weights unavailable"):
        build_extractor("inception_v3", 32, 3)
    assert build_extractor("random", 32, 3).name == "random_conv"
