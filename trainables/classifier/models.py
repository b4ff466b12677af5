"""The classifier: backbone (from the registry) + the report's head.

``inputs (0-255) -> [RandomAffine, training only] -> Rescaling -> backbone (BatchNorm in inference mode) ->
global pooling (or flatten) -> dropout -> dense(units, activation) -> softmax``.
"""

from __future__ import annotations

import keras

from scenetune.trainables.classifier.backbones import build_backbone, get_backbone
from scenetune.trainables.classifier.config import ClassifierConfig


def set_trainable_layers(backbone: keras.Model, k: int, batchnorm_frozen: bool = False) -> None:
    """Unfreeze exactly the last ``k`` layers of ``backbone``; freeze the rest.
    ``batchnorm_frozen`` (pretrained weights) keeps every BatchNorm layer
    frozen, which in Keras 3 also keeps it in inference mode: the
    ``training=False`` a functional model records for the backbone is
    overridden by the outer model's ``training=True`` during fit, so it alone
    does not keep unfrozen BatchNorm layers on their moving statistics."""
    backbone.trainable = k > 0
    if k <= 0:
        return
    cut = max(len(backbone.layers) - k, 0)
    for i, layer in enumerate(backbone.layers):
        layer.trainable = i >= cut and not (batchnorm_frozen and isinstance(layer, keras.layers.BatchNormalization))


def build_classifier(cfg: ClassifierConfig, num_classes: int, augment_in_model: bool = False) -> keras.Model:
    """``augment_in_model``: the augmentation runs as the model's first layer
    (on the model's device) instead of in the input pipeline."""
    spec = get_backbone(cfg.backbone)
    # Progressive resizing feeds growing images to the same weights: any size in.
    size = None if cfg.progressive_resize else cfg.image_size
    base = build_backbone(cfg.backbone, size, cfg.effective_weights, cfg.cnn_blocks, cfg.cnn_filters)
    if spec.pretrained:
        set_trainable_layers(base, cfg.trainable_layers, batchnorm_frozen=cfg.effective_weights != "none")
    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    if augment_in_model and cfg.augment.enabled:
        from scenetune.trainables.data.augment import RandomAffine  # TensorFlow ops: imported only when used
        x = RandomAffine(cfg.augment.model_dump(mode="json"), name="augment")(x)
    x = keras.layers.Rescaling(spec.scale, spec.offset, name="rescale")(x)
    # Fine-tuning pretrained weights: BatchNorm stays on its moving statistics,
    # which a small dataset would wreck (frozen above; training=False for the
    # inference-time graph). A backbone trained from scratch needs BatchNorm to learn them.
    x = base(x, training=False) if cfg.effective_weights != "none" else base(x)
    pool = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D,
            "flatten": keras.layers.Flatten}[cfg.pooling]
    x = pool(name="flatten" if cfg.pooling == "flatten" else f"{cfg.pooling}_pool")(x)
    if cfg.dropout:
        x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    if cfg.dense_units:
        x = keras.layers.Dense(cfg.dense_units, activation=cfg.dense_activation, name="hidden")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="scene", dtype="float32")(x)
    model = keras.Model(inputs, outputs, name=f"scenetune_{cfg.backbone}")
    # Under a mixed_float16 policy Keras wraps the optimizer in a LossScaleOptimizer.
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=cfg.jit_compile,
                  steps_per_execution=cfg.steps_per_execution)
    return model


def backbone_of(model: keras.Model) -> keras.Model:
    """The backbone sub-model inside a classifier built here."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))
