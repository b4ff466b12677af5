"""The DCGAN's two networks, as Keras functional models.

Generator (the report's "inverted CNN"): ``latent -> Dense(4*4*w0) -> BN ->
act -> reshape (4, 4, w0) -> [Conv2DTranspose stride 2 -> BN -> act] * (k-1)
-> Conv2DTranspose stride 2 -> tanh``; every transposed convolution doubles
the side, ``k = log2(image_size / 4)``, widths halve block by block down to
``gen_filters``. Output: images in [-1, 1].

Discriminator: ``image -> [Conv2D stride 2 -> LeakyReLU(0.2) -> Dropout] * k
-> flatten -> Dense(1)``, widths doubling from ``disc_filters``; one logit
(positive = real).

Conditional variants take a second input, the class index: the generator
concatenates a learned label embedding to the latent; the discriminator adds a
projection term ``<embed(label), features>`` to its logit (Miyato & Koyama
2018), which conditions it without widening the image input.

Both take ``[latent, label]`` / ``[image, label]`` when conditional, a single
tensor otherwise.
"""

from __future__ import annotations

import keras
from keras import layers

# BatchNorm momentum: Keras' default 0.99 leaves the moving statistics (used
# when sampling) far behind the weights for the first few hundred steps of a
# GAN; DCGAN implementations use 0.9 (PyTorch's momentum 0.1).
BN_MOMENTUM = 0.9
LEAKY_SLOPE = 0.2
INIT_STDDEV = 0.02  # DCGAN's N(0, 0.02) initialisation


def _init():
    # Unseeded here: keras.utils.set_random_seed (scenetune.trainables.device) seeds them
    # all, and a fixed seed per initializer would give same-shaped layers equal weights.
    return keras.initializers.RandomNormal(0.0, INIT_STDDEV)


def _activation(name: str, label: str):
    if name == "leaky_relu":
        return layers.LeakyReLU(LEAKY_SLOPE, name=label)
    return layers.ReLU(name=label)


def generator_widths(gen_filters: int, stages: int) -> list[int]:
    """Filters at 4x4 and after each upsampling block but the last (the image)."""
    return [gen_filters * 2 ** (stages - 1 - i) for i in range(stages)]


def discriminator_widths(disc_filters: int, stages: int) -> list[int]:
    return [disc_filters * 2 ** i for i in range(stages)]


def build_generator(latent_dim: int, image_size: int, gen_filters: int, channels: int = 3,
                    activation: str = "relu", num_classes: int = 0) -> keras.Model:
    stages = {32: 3, 64: 4, 128: 5}[image_size]
    widths = generator_widths(gen_filters, stages)
    latent = keras.Input((latent_dim,), name="latent")
    inputs, x = [latent], latent
    if num_classes:
        label = keras.Input((), dtype="int32", name="label")
        embedded = layers.Embedding(num_classes, min(latent_dim, 50), name="label_embedding")(label)
        inputs.append(label)
        x = layers.Concatenate(name="latent_and_label")([latent, embedded])
    x = layers.Dense(4 * 4 * widths[0], use_bias=False, kernel_initializer=_init(), name="project")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="project_bn")(x)
    x = _activation(activation, "project_act")(x)
    x = layers.Reshape((4, 4, widths[0]), name="to_4x4")(x)
    for i, width in enumerate(widths[1:], 1):
        x = layers.Conv2DTranspose(width, 4, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=_init(), name=f"up{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"up{i}_bn")(x)
        x = _activation(activation, f"up{i}_act")(x)
    # float32 output even under a mixed-precision policy: the image is compared in float32.
    image = layers.Conv2DTranspose(channels, 4, strides=2, padding="same", activation="tanh",
                                   kernel_initializer=_init(), dtype="float32", name="image")(x)
    return keras.Model(inputs if num_classes else latent, image, name="generator")


def build_discriminator(image_size: int, disc_filters: int, channels: int = 3, dropout: float = 0.3,
                        num_classes: int = 0) -> keras.Model:
    stages = {32: 3, 64: 4, 128: 5}[image_size]
    image = keras.Input((image_size, image_size, channels), name="image")
    x = image
    for i, width in enumerate(discriminator_widths(disc_filters, stages), 1):
        x = layers.Conv2D(width, 4, strides=2, padding="same", kernel_initializer=_init(),
                          name=f"down{i}")(x)
        x = layers.LeakyReLU(LEAKY_SLOPE, name=f"down{i}_act")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"down{i}_dropout")(x)
    features = layers.Flatten(name="features")(x)
    logit = layers.Dense(1, kernel_initializer=_init(), dtype="float32", name="logit")(features)
    if not num_classes:
        return keras.Model(image, logit, name="discriminator")
    label = keras.Input((), dtype="int32", name="label")
    embedded = layers.Embedding(num_classes, features.shape[-1], embeddings_initializer=_init(),
                                name="label_projection")(label)
    projection = layers.Dot(axes=1, name="projection")([embedded, features])
    logit = layers.Add(name="logit_conditional", dtype="float32")([logit, projection])
    return keras.Model([image, label], logit, name="discriminator")


def build_pair(cfg, num_classes: int) -> tuple[keras.Model, keras.Model]:
    """``(generator, discriminator)`` for a :class:`~scenetune.trainables.gan.config.GanConfig`."""
    classes = num_classes if cfg.conditional else 0
    generator = build_generator(cfg.latent_dim, cfg.image_size, cfg.gen_filters, cfg.channels,
                                cfg.gen_activation, classes)
    discriminator = build_discriminator(cfg.image_size, cfg.disc_filters, cfg.channels, cfg.disc_dropout,
                                        classes)
    return generator, discriminator
