"""Backbones registered by name, built by one factory.

The registry itself is plain data, importable without TensorFlow, so that the
driver can validate a spec (names, minimum image sizes) before any trial runs;
Keras is imported only inside :func:`build_backbone`, in the trial process.

Each backbone takes images with pixel values in [0, 255] and rescales them
itself (``scale``/``offset`` ahead of the network, as the Keras application
expects), so the input pipeline feeds the same uint8-range tensors to every
model and a GPU trial can receive raw batches.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backbone:
    name: str
    application: str | None  # keras.applications class, None for the hand-made CNN
    min_size: int  # smallest input side the network accepts
    scale: float  # input * scale + offset is what the network expects
    offset: float
    pretrained: bool = True


BACKBONES: dict[str, Backbone] = {b.name: b for b in [
    # The seed report's baseline: conv + max-pool blocks on [0, 1] inputs.
    Backbone("basic_cnn", None, 8, 1 / 255, 0.0, pretrained=False),
    Backbone("mobilenet_v2", "MobileNetV2", 32, 1 / 127.5, -1.0),
    Backbone("inception_resnet_v2", "InceptionResNetV2", 75, 1 / 127.5, -1.0),
    # EfficientNetV2 carries its own preprocessing layer and takes [0, 255].
    Backbone("efficientnet_v2_b0", "EfficientNetV2B0", 32, 1.0, 0.0),
    Backbone("resnet50_v2", "ResNet50V2", 32, 1 / 127.5, -1.0),
]}


def get_backbone(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}") from None


def build_backbone(name: str, image_size: int | None, weights: str = "imagenet",
                   cnn_blocks: int = 3, cnn_filters: int = 32):
    """A Keras model mapping rescaled ``(image_size, image_size, 3)`` images to
    a feature map (any size when ``image_size`` is None: the networks are
    convolutional). ``weights``: ``imagenet``, ``none`` or a weights file path."""
    import keras

    spec = get_backbone(name)
    shape = (image_size, image_size, 3)
    if spec.application is None:
        inputs = keras.Input(shape)
        x = inputs
        for block in range(cnn_blocks):
            x = keras.layers.Conv2D(cnn_filters * 2 ** block, 3, padding="same", activation="relu",
                                    name=f"block{block + 1}_conv")(x)
            x = keras.layers.MaxPooling2D(2, name=f"block{block + 1}_pool")(x)
        model = keras.Model(inputs, x, name="basic_cnn")
    else:
        app = getattr(keras.applications, spec.application)
        kwargs = {"include_top": False, "input_shape": shape,
                  "weights": "imagenet" if weights == "imagenet" else None}
        if spec.application.startswith("EfficientNetV2"):
            kwargs["include_preprocessing"] = True
        model = app(**kwargs)
    if weights not in ("imagenet", "none", None):
        model.load_weights(weights)
    return model
