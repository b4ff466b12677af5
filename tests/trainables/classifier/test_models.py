"""The backbone registry and the classifier builder, for every registered backbone."""

import keras
import pytest

from scenetune.trainables.classifier.backbones import BACKBONES, get_backbone
from scenetune.trainables.classifier.config import ClassifierConfig
from scenetune.trainables.classifier.models import backbone_of, build_classifier

PRETRAINED = [name for name, b in BACKBONES.items() if b.pretrained]


def small_config(name, **kw):
    size = max(BACKBONES[name].min_size, 32)
    return ClassifierConfig(**{"backbone": name, "weights": "none", "image_size": size, "dense_units": 8, **kw})


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_builds_and_predicts_a_distribution(name):
    model = build_classifier(small_config(name, trainable_layers=3), num_classes=4)
    size = model.input_shape[1]
    probs = model.predict(keras.ops.ones((2, size, size, 3)) * 128, verbose=0)
    assert probs.shape == (2, 4)
    assert abs(float(probs.sum(axis=1).mean()) - 1) < 1e-4


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet50_v2"])
@pytest.mark.parametrize("k", [0, 1, 8])
def test_trainable_layers_unfreezes_exactly_the_last_k(name, k):
    model = build_classifier(small_config(name, trainable_layers=k), num_classes=3)
    layers = backbone_of(model).layers
    flags = [layer.trainable for layer in layers]
    assert flags == [False] * (len(layers) - k) + [True] * k
    expected = sum(w.numpy().size for layer in layers[len(layers) - k:] for w in layer.trainable_weights) if k else 0
    head = sum(w.numpy().size for layer in model.layers[3:] for w in layer.trainable_weights)
    assert sum(w.numpy().size for w in model.trainable_weights) == expected + head


def test_unknown_backbone_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown backbone 'vgg99'; known: basic_cnn, mobilenet_v2"):
        get_backbone("vgg99")


def test_image_size_below_the_backbone_minimum_is_refused():
    with pytest.raises(ValueError, match="below inception_resnet_v2's minimum of 75"):
        ClassifierConfig(backbone="inception_resnet_v2", image_size=50)


def test_weights_file_is_loaded(tmp_path):
    first = build_classifier(small_config("mobilenet_v2"), 3)
    path = str(tmp_path / "backbone.weights.h5")
    backbone_of(first).save_weights(path)
    second = build_classifier(small_config("mobilenet_v2", weights=path), 3)
    for a, b in zip(backbone_of(first).weights, backbone_of(second).weights):
        assert (a.numpy() == b.numpy()).all()


def test_steps_per_execution_runs_several_steps_per_call_and_every_batch_still_trains():
    import numpy as np

    calls = []
    model = build_classifier(small_config("basic_cnn", cnn_blocks=1, cnn_filters=4, steps_per_execution=4),
                             num_classes=3)

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            calls.append(batch)

    x = np.random.default_rng(0).integers(0, 255, (40, 32, 32, 3)).astype("float32")
    model.fit(x, np.arange(40) % 3, batch_size=4, epochs=1, verbose=0, callbacks=[Count()])
    assert int(model.optimizer.iterations.numpy()) == 10  # every one of the 10 batches took a step
    assert len(calls) == 3  # in 3 calls: 4 + 4 + 2 steps


def test_pooling_flatten_builds_trains_saves_and_reloads_the_basic_cnn(tmp_path):
    import numpy as np

    cfg = small_config("basic_cnn", pooling="flatten", cnn_blocks=2, cnn_filters=4)
    model = build_classifier(cfg, num_classes=3)
    flat = model.get_layer("flatten")
    side = cfg.image_size // 2 ** cfg.cnn_blocks  # each block halves the map
    assert flat.output.shape[1] == side * side * backbone_of(model).output.shape[-1]
    assert model.get_layer("hidden").kernel.shape == (flat.output.shape[1], 8)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (12, cfg.image_size, cfg.image_size, 3)).astype("float32")
    labels = rng.integers(0, 3, 12)
    before = model.get_layer("hidden").kernel.numpy().copy()
    model.fit(images, labels, epochs=1, batch_size=4, verbose=0)
    assert not np.allclose(before, model.get_layer("hidden").kernel.numpy())
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


@pytest.mark.parametrize("name", PRETRAINED)
def test_pooling_flatten_is_refused_for_pretrained_backbones_with_the_reason(name):
    with pytest.raises(ValueError, match=f"pooling flatten applies to basic_cnn only: {name}'s last feature map"):
        small_config(name, pooling="flatten")


def test_pooling_flatten_is_refused_with_progressive_resizing():
    with pytest.raises(ValueError, match="pooling flatten needs one image size"):
        ClassifierConfig(backbone="basic_cnn", pooling="flatten", progressive_resize=[16, 32], resize_epochs=[0, 1])
