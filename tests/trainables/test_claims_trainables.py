"""Claims of README.md, docs/spec.md, docs/gan.md and docs/pipeline.md about
the trainables, each checked once (issue 17: every claim has a test). Unit
tests: no Ray.

- spec.md, `trainable_layers`: "the last k layers of the backbone are
  trained ... BatchNorm layers of a pretrained backbone stay in inference
  mode", with `weights` "a path to a weights file for the backbone";
- spec.md, `pooling: max`, every `dense_activation`, `dropout` ("dropout
  before the hidden layer");
- gan.md, `gen_activation: leaky_relu`;
- pipeline.md, the decode cache: `CACHE_DIR` is the trial parameter
  `cache_dir`, else `$SCENETUNE_CACHE`, else `~/.cache/scenetune`; the
  build logs its progress (`cache: 500/1040 images decoded (410/s)`).
"""

from __future__ import annotations

import math
import os
import re

import keras
import numpy as np
import pytest

from scenetune.trainables.classifier.backbones import build_backbone
from scenetune.trainables.classifier.config import ClassifierConfig
from scenetune.trainables.classifier.models import backbone_of, build_classifier
from scenetune.trainables.data.cache import ENV_VAR, open_cache


def images_and_labels(n: int, size: int, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, size, size, 3)).astype("float32"), rng.integers(0, classes, n)


# --- a backbone from a weights file: BatchNorm in inference mode, the last k layers train


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory):
    """A classifier on MobileNetV2 whose backbone weights come from a file
    (the backbone built with weights none, saved), its last K layers
    unfrozen; the backbone's weights before and after a fit of two steps."""
    plain = build_backbone("mobilenet_v2", 32, "none")
    path = str(tmp_path_factory.mktemp("weights") / "mobilenet_v2.weights.h5")
    plain.save_weights(path)
    cfg = ClassifierConfig(backbone="mobilenet_v2", weights=path, trainable_layers=K, image_size=32,
                           dense_units=8, learning_rate=1e-2)
    model = build_classifier(cfg, num_classes=3)
    layers = backbone_of(model).layers

    def snapshot():
        return {(layer.name, w.path): w.numpy().copy() for layer in layers for w in layer.weights}

    before = snapshot()
    x, y = images_and_labels(8, 32)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    return plain, layers, before, snapshot()


K = 5  # MobileNetV2's last five: block_16_project, block_16_project_BN, Conv_1, Conv_1_bn, out_relu


def test_a_backbone_from_a_weights_file_trains_only_its_last_k_layers(fine_tuned):
    plain, layers, before, after = fine_tuned
    tail = layers[-K:]
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in tail) == 2
    for layer, original in zip(layers, plain.layers):  # the file's weights, not a fresh init
        saved = {w.name: w.numpy() for w in original.weights}
        for w in layer.weights:
            np.testing.assert_array_equal(before[(layer.name, w.path)], saved[w.name], err_msg=w.path)
    for layer in layers[:-K]:  # frozen: nothing moves
        for w in layer.weights:
            np.testing.assert_array_equal(after[(layer.name, w.path)], before[(layer.name, w.path)], err_msg=w.path)
    trained = [(layer.name, w.path) for layer in tail for w in layer.trainable_weights]
    assert len(trained) >= 2  # at least the two convolutions' kernels
    for key in trained:  # every trainable weight of the last k layers moved
        assert not np.array_equal(after[key], before[key]), key


def test_a_pretrained_backbones_batchnorm_stays_in_inference_mode_even_among_the_last_k(fine_tuned):
    """Keras 3 overrides the backbone's recorded training=False with the outer
    model's training=True; the BatchNorm layers among the last k stay frozen,
    so they stay in inference mode (this failed before: their moving
    statistics moved by 1 - 0.999**4 in four steps)."""
    _, layers, before, after = fine_tuned
    batchnorms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in layers[-K:]), \
        "the test needs a BatchNorm among the last k layers"
    for bn in batchnorms:  # inference mode: moving statistics untouched, trainable or not
        for w in (bn.moving_mean, bn.moving_variance):
            np.testing.assert_array_equal(after[(bn.name, w.path)], before[(bn.name, w.path)], err_msg=w.path)


# --- the head: pooling, activation, dropout

REFERENCE = {  # numpy definitions, not Keras': the hidden layer must compute these
    "relu": lambda z: np.maximum(z, 0),
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "gelu": lambda z: 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2))),
    "swish": lambda z: z / (1 + np.exp(-z)),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
}


def small(**kw) -> ClassifierConfig:
    return ClassifierConfig(**{"backbone": "basic_cnn", "weights": "none", "image_size": 16, "cnn_blocks": 1,
                               "cnn_filters": 4, "dense_units": 6, **kw})


def outputs_of(model: keras.Model, names: list[str], x) -> list[np.ndarray]:
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    out = probe.predict(x, verbose=0)
    return out if isinstance(out, list) else [out]


def test_pooling_max_takes_the_maximum_of_each_feature_map():
    model = build_classifier(small(pooling="max"), num_classes=3)
    pool = model.get_layer("max_pool")
    assert isinstance(pool, keras.layers.GlobalMaxPooling2D)
    x, _ = images_and_labels(4, 16)
    feature_map = keras.Model(model.inputs, pool.input).predict(x, verbose=0)
    (pooled,) = outputs_of(model, ["max_pool"], x)
    np.testing.assert_allclose(pooled, feature_map.max(axis=(1, 2)), rtol=1e-6)
    assert not np.allclose(pooled, feature_map.mean(axis=(1, 2)))


def test_every_documented_dense_activation_is_the_hidden_layers():
    allowed = set(ClassifierConfig.model_fields["dense_activation"].annotation.__args__)
    assert allowed == set(REFERENCE), "spec.md lists relu, sigmoid, tanh, gelu, swish, elu"
    x, _ = images_and_labels(4, 16)
    for name, reference in REFERENCE.items():
        model = build_classifier(small(dense_activation=name), num_classes=3)
        hidden = model.get_layer("hidden")
        (pooled,) = outputs_of(model, ["avg_pool"], x)
        z0 = pooled @ hidden.kernel.numpy()  # spread over a few units and centred, whatever the init drew
        scale = 4 / max(float(np.ptp(z0)), 1e-6)
        hidden.kernel.assign(hidden.kernel.numpy() * scale)
        hidden.bias.assign(-np.median(z0 * scale, axis=0))
        pooled, out = outputs_of(model, ["avg_pool", "hidden"], x)
        z = pooled @ hidden.kernel.numpy() + hidden.bias.numpy()
        assert np.ptp(z) > 0.1 and (z < 0).any(), "pre-activations on both sides of 0, or the test proves nothing"
        np.testing.assert_allclose(out, reference(z), rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_dropout_is_a_dropout_layer_of_that_rate_before_the_hidden_layer(rate):
    model = build_classifier(small(dropout=rate), num_classes=3)
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    if not rate:
        assert dropouts == []
        return
    (dropout,) = dropouts
    assert dropout.rate == pytest.approx(rate)
    assert model.get_layer("hidden").input is dropout.output, "dropout feeds the hidden layer"
    x, _ = images_and_labels(64, 16)
    (pooled,) = outputs_of(model, ["avg_pool"], x)
    dropped = np.asarray(dropout(pooled, training=True))
    live = pooled != 0
    assert 0.15 < (dropped[live] == 0).mean() < 0.45  # about `rate` of the features, in training only
    np.testing.assert_array_equal(np.asarray(dropout(pooled, training=False)), pooled)


# --- the GAN's generator activation


@pytest.mark.parametrize("activation, kind, other", [("leaky_relu", keras.layers.LeakyReLU, keras.layers.ReLU),
                                                     ("relu", keras.layers.ReLU, keras.layers.LeakyReLU)])
def test_gen_activation_sets_the_generators_activation_layers(activation, kind, other):
    from scenetune.trainables.gan.config import GanConfig
    from scenetune.trainables.gan.models import LEAKY_SLOPE, build_pair

    cfg = GanConfig(image_size=32, gen_filters=4, disc_filters=4, latent_dim=8, gen_activation=activation)
    generator, _ = build_pair(cfg, num_classes=3)
    acts = [layer for layer in generator.layers if isinstance(layer, (keras.layers.ReLU, keras.layers.LeakyReLU))]
    assert len(acts) == 3  # after the projection and after each upsampling block but the last (32 px: 3 stages)
    assert all(type(layer) is kind for layer in acts) and not any(type(layer) is other for layer in acts)
    if activation == "leaky_relu":
        assert all(layer.negative_slope == pytest.approx(LEAKY_SLOPE) for layer in acts)


# --- the decode cache: where it lives and what it logs


@pytest.fixture(scope="module")
def few_images(tmp_path_factory, synth_root):
    root = os.path.join(synth_root, "Images")
    return sorted(os.path.join(root, c, f) for c in sorted(os.listdir(root)) for f in sorted(os.listdir(
        os.path.join(root, c))))[:6]


def test_cache_dir_defaults_to_the_env_var_then_the_home_cache(few_images, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "from-env"))
    cache = open_cache(few_images, 16)
    assert os.path.dirname(cache.folder) == str(tmp_path / "from-env") and cache.built
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cache = open_cache(few_images, 16)
    assert os.path.dirname(cache.folder) == str(tmp_path / "home" / ".cache" / "scenetune") and cache.built
    explicit = open_cache(few_images, 16, str(tmp_path / "given"))  # the parameter wins over both
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "from-env"))
    again = open_cache(few_images, 16, str(tmp_path / "given"))
    assert os.path.dirname(explicit.folder) == str(tmp_path / "given") == os.path.dirname(again.folder)
    assert not again.built
    assert re.match(r"16px-[0-9a-f]{20}$", os.path.basename(cache.folder))  # CACHE_DIR/<size>px-<key>/


def test_the_cache_build_logs_its_progress_and_a_reuse_logs_nothing(few_images, tmp_path, capsys):
    capsys.readouterr()
    cache = open_cache(few_images, 24, str(tmp_path), workers=2)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"cache: building the 24 px cache of 6 images in {cache.folder} (2 threads)"
    assert re.fullmatch(r"cache: 6/6 images decoded \(\d+/s\)", err[1]), err
    assert re.fullmatch(r"cache: built in \d+\.\d s \(0 files failed to decode\)", err[-1]), err
    open_cache(few_images, 24, str(tmp_path))
    assert capsys.readouterr().err == ""


def test_the_trial_parameter_cache_dir_is_where_a_trial_builds_its_cache(synth_root, tmp_path, monkeypatch):
    from scenetune.trainables.classifier.train import open_image_cache
    from scenetune.trainables.data.datasets import SplitSpec, build_manifest

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env-cache"))
    manifest = build_manifest(synth_root, "mit67", "all", SplitSpec(0.5, 0.25, 0.25, 1))
    classes = sorted(manifest["label"].unique())
    data = {"root": synth_root, "manifest": "unused.csv", "classes": classes}
    given = ClassifierConfig(backbone="basic_cnn", image_size=16, cache_dir=str(tmp_path / "param"), data=data)
    cache = open_image_cache(given, manifest, cpus=1)
    assert os.path.dirname(cache.folder) == str(tmp_path / "param")
    assert len(cache.paths) == int(manifest["split"].isin(["train", "val"]).sum()), "train and val only"
    default = open_image_cache(ClassifierConfig(backbone="basic_cnn", image_size=16, data=data), manifest, cpus=1)
    assert os.path.dirname(default.folder) == str(tmp_path / "env-cache")
