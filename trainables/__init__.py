"""Everything that runs inside a trial. Importing this package (and its
registry, datasets, config and backbones modules) does not import TensorFlow:
the driver uses them to validate specs and compute the split, and only the
trial process imports the modules that train.

Trainables are registered by name. Each entry names the function (imported
lazily, inside the trial) and the pydantic model of its config.
"""

from __future__ import annotations

import importlib

TRAINABLES: dict[str, tuple[str, str]] = {
    "classifier": ("scenetune.trainables.classifier.train:train_classifier", "scenetune.trainables.classifier.config:ClassifierConfig"),
    "gan": ("scenetune.trainables.gan.train:train_gan", "scenetune.trainables.gan.config:GanConfig"),
}


# What each trainable reports every epoch (DESIGN.md), plus Ray Tune's own.
TUNE_METRICS = ["training_iteration", "time_total_s", "time_this_iter_s"]
METRICS: dict[str, list[str]] = {
    "classifier": ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "epoch_time_s",
                   "train_time_s", "images_per_s", "checkpoint_s", "checkpoint_mb", "process_rss_mb"],
    "gan": ["epoch", "d_loss", "g_loss", "d_acc_real", "d_acc_fake", "fid", "kid", "diversity", "collapsed",
            "train_time_s", "epoch_time_s", "eval_time_s", "images_per_s", "checkpoint_s", "checkpoint_mb", "process_rss_mb"],
}


def _load(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def _check(name: str) -> tuple[str, str]:
    if name not in TRAINABLES:
        raise ValueError(f"unknown trainable {name!r}; known: {', '.join(TRAINABLES)}")
    return TRAINABLES[name]


def get_trainable(name: str):
    """A function ``fn(config)`` that imports and runs the named trainable in
    the trial process; the driver never imports its module."""
    target, _ = _check(name)

    def run(config: dict) -> None:
        return _load(target)(config)

    run.__name__ = run.__qualname__ = name
    return run


def config_model(name: str):
    """The pydantic model that validates the named trainable's config."""
    _, model = _check(name)
    return _load(model)


__all__ = ["TRAINABLES", "METRICS", "TUNE_METRICS", "get_trainable", "config_model"]
