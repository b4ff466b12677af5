"""``train_gan(config)``: the DCGAN trainable.

Contract (docs/architecture.md, as the classifier's): reads only its config (validated by
:class:`~scenetune.trainables.gan.config.GanConfig`); one Tune iteration per epoch, each
reported with ``ray.tune.report(metrics, checkpoint=...)``; a retried trial
resumes from ``ray.tune.get_checkpoint()`` at its next epoch, with both
networks, both optimizers' state and the same fixed latents.

Training is ``keras.Model.fit`` on :class:`DCGAN`, whose ``train_step`` does
``d_steps`` discriminator updates (real batch vs. generated batch, one-sided
label smoothing) and one generator update (non-saturating loss) per batch.

Per epoch it reports ``epoch, d_loss, g_loss, d_acc_real, d_acc_fake, fid,
kid, diversity, collapsed`` (:mod:`scenetune.trainables.gan.metrics`), ``collapse_reason``,
``fid_extractor``, ``epoch_time_s``, ``train_time_s`` (cumulative fit time),
``eval_time_s`` (this epoch's metric time) and ``images_per_s``. It writes the
fixed-latent sample grid to ``samples/epoch_NNNN.png`` and
``samples/latest.png`` in the trial's working directory (synced by Ray to the
experiment's storage) before each report; the latents themselves are
``samples/fixed_latents.npy`` (and ``fixed_labels.npy``), written when the
trial starts.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from ray import tune

from scenetune.core.layout import SAMPLES_DIR
from scenetune.trainables import device
from scenetune.trainables.callback import TuneCallback
from scenetune.trainables.classifier.train import load_split
from scenetune.trainables.data.pipeline import make_dataset
from scenetune.trainables.gan.checkpoint import STATE, load_checkpoint, save_checkpoint
from scenetune.trainables.gan.config import GanConfig
from scenetune.trainables.gan.features import build_extractor, run_batched
from scenetune.trainables.gan.metrics import (
    collapse_state,
    discriminator_saturated,
    diversity,
    feature_stats,
    frechet_distance,
    kid,
    mean_pairwise_distance,
)
from scenetune.trainables.gan.models import build_pair
from scenetune.trainables.gan.samples import save_grid
from scenetune.trainables.reporting import write_resolved_config

TRACKED = ("d_loss", "g_loss", "d_acc_real", "d_acc_fake")


class DCGAN(keras.Model):
    """Generator and discriminator trained together by ``fit``."""

    def __init__(self, generator, discriminator, latent_dim, conditional=False, label_smoothing=0.0,
                 d_steps=1, seed=0):
        super().__init__(name="dcgan")
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim, self.conditional = latent_dim, conditional
        self.label_smoothing, self.d_steps = label_smoothing, d_steps
        self.noise = keras.random.SeedGenerator(seed)
        self.trackers = [keras.metrics.Mean(name=name) for name in TRACKED]

    def compile(self, g_optimizer, d_optimizer, jit_compile=False):
        super().compile(jit_compile=jit_compile)
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer

    @property
    def metrics(self):  # reset by fit at each epoch start: logs are epoch means
        return self.trackers

    def generate(self, latents, labels, training=False):
        return self.generator([latents, labels] if self.conditional else latents, training=training)

    def judge(self, images, labels, training=False):
        return self.discriminator([images, labels] if self.conditional else images, training=training)

    def train_step(self, data):
        real, labels = data
        batch = ops.shape(real)[0]
        real_target = ops.full((batch, 1), 1.0 - self.label_smoothing)
        for _ in range(self.d_steps):  # unrolled: d_steps is a Python int
            fake = self.generate(keras.random.normal((batch, self.latent_dim), seed=self.noise), labels, True)
            with tf.GradientTape() as tape:
                real_logits = self.judge(real, labels, True)
                fake_logits = self.judge(fake, labels, True)
                d_loss = (ops.mean(ops.binary_crossentropy(real_target, real_logits, from_logits=True))
                          + ops.mean(ops.binary_crossentropy(ops.zeros_like(fake_logits), fake_logits,
                                                             from_logits=True)))
            weights = self.discriminator.trainable_weights
            self.d_optimizer.apply(tape.gradient(d_loss, weights), weights)
        with tf.GradientTape() as tape:
            logits = self.judge(self.generate(keras.random.normal((batch, self.latent_dim), seed=self.noise),
                                              labels, True), labels, True)
            # Non-saturating generator loss: -log D(G(z)).
            g_loss = ops.mean(ops.binary_crossentropy(ops.ones_like(logits), logits, from_logits=True))
        weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(g_loss, weights), weights)
        values = (d_loss, g_loss, ops.mean(ops.cast(real_logits > 0, "float32")),
                  ops.mean(ops.cast(fake_logits < 0, "float32")))
        for tracker, value in zip(self.trackers, values):
            tracker.update_state(value)
        return {t.name: t.result() for t in self.trackers}


def to_gan_range(cfg: GanConfig):
    """Pipeline batches (0-255 RGB) -> [-1, 1], one channel when grayscale."""
    def convert(images, labels):
        if cfg.grayscale:
            images = tf.image.rgb_to_grayscale(images)
        return images / 127.5 - 1.0, tf.cast(labels, tf.int32)
    return convert


def training_images(cfg: GanConfig) -> tuple[list[str], np.ndarray]:
    """The train split's images of the trial's classes, labels indexing ``cfg.classes``."""
    paths, labels, _ = load_split(cfg, "train")
    index = {cfg.data.classes.index(name): i for i, name in enumerate(cfg.classes)}
    keep = [i for i, label in enumerate(labels) if label in index]
    if not keep:
        raise ValueError(f"no training images of {', '.join(cfg.classes)} in the split")
    return [paths[i] for i in keep], np.array([index[labels[i]] for i in keep], np.int32)


class Evaluator:
    """Real-image statistics (computed once) and each epoch's sample metrics."""

    def __init__(self, cfg: GanConfig, paths, labels, extractor):
        rng = np.random.default_rng(cfg.seed)
        pick = np.sort(rng.choice(len(paths), min(cfg.fid_samples, len(paths)), replace=False))
        ds = make_dataset([paths[i] for i in pick], labels[pick].tolist(), cfg.image_size, 256)
        real = np.concatenate([x for x, _ in ds.map(to_gan_range(cfg)).as_numpy_iterator()])
        self.extractor = extractor
        self.real_features = extractor(real)
        self.real_stats = feature_stats(self.real_features)
        self.real_spread = mean_pairwise_distance(self.real_features)
        # Fixed evaluation latents: epoch-to-epoch changes in fid come from the generator, not the draw.
        self.latents = np.random.default_rng(cfg.seed + 1).normal(size=(cfg.fid_samples, cfg.latent_dim))
        self.latents = self.latents.astype(np.float32)
        self.labels = np.random.default_rng(cfg.seed + 2).choice(labels[pick], cfg.fid_samples).astype(np.int32)

    def __call__(self, gan: DCGAN) -> dict:
        inputs = [self.latents, self.labels] if gan.conditional else self.latents
        fake = run_batched(gan.generator, inputs, 256)
        features = self.extractor(fake)
        return {"fid": frechet_distance(*self.real_stats, *feature_stats(features)),
                "kid": kid(self.real_features, features),
                "diversity": diversity(features, self.real_spread)}


class TuneReporter(TuneCallback):
    """Measures the generator, draws the sample grid, checkpoints the pair and the collapse state."""

    def __init__(self, cfg: GanConfig, evaluator: Evaluator, state: dict, num_images: int):
        super().__init__(cfg)
        self.evaluator, self.state, self.num_images = evaluator, state, num_images

    def epoch_metrics(self, epoch: int, logs: dict, epoch_time: float) -> dict:
        cfg, state, gan = self.cfg, self.state, self.model
        state["train_time_s"] += epoch_time
        started = time.perf_counter()
        metrics = {"epoch": epoch, **{name: float(logs[name]) for name in TRACKED}}
        metrics.update(self.evaluator(gan))
        state["saturated"].append(discriminator_saturated(metrics["d_acc_real"], metrics["d_acc_fake"]))
        state["diversity"].append(metrics["diversity"])
        collapsed, reason = collapse_state(state["diversity"], state["saturated"], cfg.collapse_diversity,
                                           cfg.collapse_patience)
        metrics.update(collapsed=collapsed, collapse_reason=reason, fid_extractor=self.evaluator.extractor.name)
        grid = gan.generate(state["latents"], state["labels"]).numpy()
        os.makedirs(SAMPLES_DIR, exist_ok=True)
        path = save_grid(grid, os.path.join(SAMPLES_DIR, f"epoch_{epoch:04d}.png"), cfg.grid_size)
        shutil.copyfile(path, os.path.join(SAMPLES_DIR, "latest.png"))
        images = cfg.steps_per_epoch * cfg.batch_size if cfg.steps_per_epoch else self.num_images
        metrics.update(epoch_time_s=epoch_time, train_time_s=state["train_time_s"],
                       eval_time_s=time.perf_counter() - started, images_per_s=images / epoch_time)
        state["epoch"] = epoch
        return metrics

    def save(self, folder: str) -> None:
        save_checkpoint(folder, self.model, self.state)


def fixed_latents(cfg: GanConfig, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The grid's latents (and labels: one class a row, cycling) for a fresh trial."""
    count = cfg.grid_size ** 2
    latents = np.random.default_rng(cfg.seed + 3).normal(size=(count, cfg.latent_dim)).astype(np.float32)
    labels = (np.arange(count) // cfg.grid_size % max(num_classes, 1)).astype(np.int32)
    return latents, labels


def build_gan(cfg: GanConfig, num_classes: int, epoch: int) -> DCGAN:
    generator, discriminator = build_pair(cfg, num_classes)
    # Seeded by epoch too, so a resumed trial draws fresh, reproducible noise.
    gan = DCGAN(generator, discriminator, cfg.latent_dim, cfg.conditional, cfg.label_smoothing, cfg.d_steps,
                seed=cfg.seed * 10_000 + epoch)
    gan.compile(keras.optimizers.Adam(cfg.gen_learning_rate, beta_1=cfg.beta_1),
                keras.optimizers.Adam(cfg.disc_learning_rate, beta_1=cfg.beta_1), jit_compile=cfg.jit_compile)
    return gan


def train_gan(config: dict) -> None:
    cfg = GanConfig.model_validate(config)
    write_resolved_config(cfg)
    device.configure(cfg.seed, "float32", tune.get_context())
    paths, labels = training_images(cfg)
    num_classes = len(cfg.classes)
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        latents, grid_labels = fixed_latents(cfg, num_classes)
        state = {"epoch": 0, "train_time_s": 0.0, "saturated": [], "diversity": [],
                 "latents": latents, "labels": grid_labels}
        os.makedirs(SAMPLES_DIR, exist_ok=True)  # beside the grids they draw; a resumed trial keeps these
        np.save(os.path.join(SAMPLES_DIR, "fixed_latents.npy"), latents)
        np.save(os.path.join(SAMPLES_DIR, "fixed_labels.npy"), grid_labels)
        gan = build_gan(cfg, num_classes, 0)
    else:
        with checkpoint.as_directory() as folder:
            with open(os.path.join(folder, STATE)) as f:
                gan = build_gan(cfg, num_classes, json.load(f)["epoch"])
            state = load_checkpoint(folder, gan)
    extractor = build_extractor(cfg.feature_extractor, cfg.image_size, cfg.channels, cfg.classifier_checkpoint)
    evaluator = Evaluator(cfg, paths, labels, extractor)
    ds = make_dataset(paths, labels.tolist(), cfg.image_size, cfg.batch_size, shuffle=True,
                      seed=cfg.seed + state["epoch"]).map(to_gan_range(cfg))
    if cfg.steps_per_epoch:
        ds = ds.repeat()
    reporter = TuneReporter(cfg, evaluator, state, len(paths))
    gan.fit(ds, epochs=cfg.epochs, initial_epoch=state["epoch"], steps_per_epoch=cfg.steps_per_epoch,
            callbacks=[reporter], verbose=0)
