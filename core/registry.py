"""What scenetune knows by name, in one place: the trainables (one record
each), the Optuna samplers and the Ray Tune schedulers. The spec's checks,
the CLI, the sweep and the report read these records instead of keeping
lists of their own.

A record names its train function and its config model as ``module:name``
strings, imported only when asked for: the driver reads the config model
(no TensorFlow), and only the trial process imports the train function.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from scenetune.core.errors import UserError

# What Ray Tune adds to every result, for every trainable.
TUNE_METRICS = ("training_iteration", "time_total_s", "time_this_iter_s")
# What every trainable adds to its epoch's metrics (trainables/reporting.py).
REPORTING_METRICS = ("checkpoint_s", "checkpoint_mb", "process_rss_mb")


@dataclass(frozen=True)
class TrainableRecord:
    name: str
    train: str  # "module:function(config)", imported in the trial process
    config: str  # "module:PydanticModel" validating the trial's config; no TensorFlow
    metrics: tuple[str, ...]  # what the trainable reports every epoch (besides TUNE_METRICS)
    report: str  # "module:function" that builds the report's sections for it (scenetune.analysis)
    commands: tuple[str, ...]  # the user commands that work on its experiments

    @property
    def known_metrics(self) -> tuple[str, ...]:
        return self.metrics + TUNE_METRICS

    def config_model(self):
        return _load(self.config)

    def train_function(self):
        return _load(self.train)

    def report_builder(self):
        return _load(self.report)


TRAINABLES: dict[str, TrainableRecord] = {
    "classifier": TrainableRecord(
        name="classifier",
        train="scenetune.trainables.classifier.train:train_classifier",
        config="scenetune.trainables.classifier.config:ClassifierConfig",
        metrics=("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "epoch_time_s", "train_time_s",
                 "images_per_s", "model_mb", "latency_ms") + REPORTING_METRICS,
        report="scenetune.analysis.classifier_report:classifier_sections",
        commands=("evaluate", "predict", "export")),
    "gan": TrainableRecord(
        name="gan",
        train="scenetune.trainables.gan.train:train_gan",
        config="scenetune.trainables.gan.config:GanConfig",
        metrics=("epoch", "d_loss", "g_loss", "d_acc_real", "d_acc_fake", "fid", "kid", "diversity", "collapsed",
                 "train_time_s", "epoch_time_s", "eval_time_s", "images_per_s") + REPORTING_METRICS,
        report="scenetune.analysis.gan_report:gan_sections",
        commands=("generate",)),
}

# Optuna's samplers a spec may name (search.algorithm: optuna), built by
# scenetune.search.tuner.make_sampler; "grid" is search.algorithm: grid.
SAMPLERS = ("tpe", "random", "cmaes", "nsga2", "qmc")
# Ray Tune's schedulers, built by scenetune.search.schedulers.make_scheduler: a
# sweep may name the first three; a replay any of them.
SWEEP_SCHEDULERS = ("asha", "hyperband", "none")
SCHEDULERS = SWEEP_SCHEDULERS + ("median",)
# The searchers a replay compares (scenetune.commands.replay).
REPLAY_SEARCHERS = ("random", "tpe")


class UnknownTrainableError(UserError):
    pass


def trainable(name: str) -> TrainableRecord:
    """The record of the named trainable; a one-line error naming the known ones."""
    if name not in TRAINABLES:
        raise UnknownTrainableError(f"trainable: unknown trainable {name!r}; known: {', '.join(TRAINABLES)}")
    return TRAINABLES[name]


def _load(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)
