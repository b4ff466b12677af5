"""The shared set-up of benchmarks/peers.py and its peers' runners: the
search space, the bench (split and decode cache), and one trial run the way
KerasTuner's Hyperband and Optuna's pruner run them, in this process."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

METHODS = ["scenetune", "scenetune-before", "scenetune-cold", "kerastuner-hyperband", "optuna-hyperband"]
PEERS = ["kerastuner-hyperband", "optuna-hyperband"]
SPACE = {"learning_rate": {"loguniform": [1.0e-4, 1.0e-2]}, "cnn_filters": {"choice": [16, 32]},
         "cnn_blocks": {"choice": [2, 3]}, "dense_units": {"choice": [32, 64]},
         "dropout": {"uniform": [0.0, 0.4]}, "augment.horizontal_flip": {"choice": [True, False]}}
FIXED = {"backbone": "basic_cnn", "batch_size": 32, "weights": "none", "pooling": "avg", "image_size": 32}
FACTOR = 3
FIGURES = ["wall_s", "best_val_acc", "time_to_target_s", "epochs", "trials", "fit_s", "overhead_s_per_trial"]
FULL = {"seeds": 5, "trials": 24, "epochs": 9, "classes": 10, "per_class": 60}
QUICK = dict(FULL, seeds=2, trials=8, epochs=3)


@dataclass
class Run:
    """One method on one seed, in seconds from its start. ``epochs``: trial,
    epoch, val_accuracy, epoch_s (training time), at_s (when its val_accuracy
    was known); ``trials``: trial, start_s, end_s."""
    wall_s: float
    epochs: pd.DataFrame
    trials: pd.DataFrame


@dataclass
class Bench:
    """The flags and what a classifier trial reads: the split (absolute paths,
    label indices) and the decode cache; the searched space (scenetune's
    declarations) and the fixed settings."""
    args: argparse.Namespace
    root: str
    workdir: str  # experiments, decode cache, KerasTuner's folders
    classes: list[str]
    train: tuple[list[str], list[int]]
    val: tuple[list[str], list[int]]
    cache: object  # scenetune.trainables.data.cache.ImageCache
    space: dict = None
    fixed: dict = None

    def __post_init__(self):
        self.space = SPACE if self.space is None else self.space
        self.fixed = FIXED if self.fixed is None else self.fixed

    def distributions(self) -> dict:
        """Optuna's distributions of the space, by dotted key."""
        from scenetune.spaces import parse_space, to_optuna

        return {key.replace("/", "."): d for key, d in to_optuna(parse_space(self.space).values()).items()}


def load_bench(args, root: str, workdir: str, space: dict | None = None, fixed: dict | None = None) -> Bench:
    """The split as ``scenetune.search.tuner.prepare`` computes it; opens (builds) the cache."""
    from scenetune.trainables.data.cache import open_cache
    from scenetune.trainables.data.datasets import SplitSpec, build_manifest

    manifest = build_manifest(root, "mit67", "all", SplitSpec(0.6, 0.2, 0.2, 42))
    classes = sorted(manifest["label"].unique())

    def split(name: str) -> tuple[list[str], list[int]]:
        rows = manifest[manifest["split"] == name]
        return [os.path.join(root, p) for p in rows["path"]], [classes.index(label) for label in rows["label"]]

    train, val = split("train"), split("val")
    fixed = FIXED if fixed is None else fixed
    return Bench(args, root, workdir, classes, train, val,
                 open_cache(train[0] + val[0], fixed["image_size"], os.path.join(workdir, "cache")), space, fixed)


def trial_setup(bench: Bench, params: dict, seed: int):
    """``(model, training batches)`` as ``train_classifier`` builds them for
    ``params`` (SPACE's keys), after clearing Keras' state and seeding."""
    import keras

    from scenetune.spaces import unflatten
    from scenetune.trainables.classifier.config import ClassifierConfig
    from scenetune.trainables.classifier.models import build_classifier
    from scenetune.trainables.data.pipeline import cached_dataset

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    cfg = ClassifierConfig.model_validate(unflatten({**bench.fixed, "epochs": bench.args.epochs, "seed": seed,
                                                     **params}))
    model = build_classifier(cfg, len(bench.classes))  # first, as in train_classifier: the same random draws
    return model, cached_dataset(bench.cache, *bench.train, cfg.batch_size, cfg.augment, shuffle=True, seed=cfg.seed)


class Recorder:
    """A peer's clock (seconds from ``origin``, a ``time.time()``; default the
    method's start): trial spans, epochs."""

    def __init__(self, origin: float | None = None):
        self.origin, self.epochs, self.trials = time.time() if origin is None else origin, [], []

    def now(self) -> float:
        return time.time() - self.origin

    @contextlib.contextmanager
    def trial(self):
        self.trials.append({"trial": len(self.trials), "start_s": self.now(), "end_s": math.nan})
        try:
            yield
        finally:
            self.trials[-1]["end_s"] = self.now()

    def run(self) -> Run:
        return Run(self.now(), pd.DataFrame(self.epochs, columns=["trial", "epoch", "val_accuracy", "epoch_s", "at_s"]),
                   pd.DataFrame(self.trials, columns=["trial", "start_s", "end_s"]))


def epoch_clock(recorder: Recorder, bench: Bench, on_epoch=None):
    """A Keras callback: at each epoch's end, val_accuracy as the classifier's
    reporter computes it goes into ``logs`` (KerasTuner's objective) and into
    ``recorder`` with the epoch's training time; then ``on_epoch(epoch,
    val_accuracy)`` (Optuna's report and prune)."""
    import keras

    from scenetune.trainables.data.pipeline import cached_dataset

    val, labels = cached_dataset(bench.cache, *bench.val, bench.fixed["batch_size"]), np.asarray(bench.val[1])

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            fit_s = time.perf_counter() - self.began
            accuracy = float((self.model.predict(val, verbose=0).argmax(axis=1) == labels).mean())
            if logs is not None:
                logs["val_accuracy"] = accuracy
            recorder.epochs.append({"trial": recorder.trials[-1]["trial"], "epoch": epoch + 1,
                                    "val_accuracy": accuracy, "epoch_s": fit_s, "at_s": recorder.now()})
            if on_epoch is not None:
                on_epoch(epoch + 1, accuracy)

        def __deepcopy__(self, memo):  # KerasTuner copies the callbacks of every trial: share this one
            return self

    return EpochClock()


def kerastuner_value(hp, key: str, distribution):
    """KerasTuner's hyperparameter for an Optuna distribution of the space."""
    import optuna.distributions as od

    if isinstance(distribution, od.CategoricalDistribution):
        return hp.Choice(key, list(distribution.choices))
    sampling = "log" if distribution.log else "linear"
    if isinstance(distribution, od.IntDistribution):
        return hp.Int(key, distribution.low, distribution.high, step=None if distribution.log else distribution.step,
                      sampling=sampling)
    return hp.Float(key, distribution.low, distribution.high, step=distribution.step, sampling=sampling)


def run_kerastuner(method: str, seed: int, bench: Bench, origin: float | None = None) -> Run:
    """A trial spans KerasTuner's ``run_trial``: build (for a trial that goes
    on from another, its weights' load), fit, the best epoch's checkpoint."""
    import keras_tuner as kt

    epochs, recorder = bench.args.epochs, Recorder(origin)
    distributions = bench.distributions()

    class SceneModel(kt.HyperModel):
        def build(self, hp):
            params = {key: kerastuner_value(hp, key, d) for key, d in distributions.items()}
            model, self.train = trial_setup(bench, params, seed)
            return model

        def fit(self, hp, model, *args, **kwargs):
            return model.fit(self.train, shuffle=False, **kwargs)

    class TimedHyperband(kt.Hyperband):
        def run_trial(self, trial, *args, **kwargs):
            with recorder.trial():
                return super().run_trial(trial, *args, **kwargs)

    tuner = TimedHyperband(SceneModel(), objective="val_accuracy", max_epochs=epochs, factor=FACTOR,
                           hyperband_iterations=1, seed=seed, overwrite=True,
                           directory=os.path.join(bench.workdir, "kerastuner"), project_name=f"seed{seed}")
    tuner.search(epochs=epochs, callbacks=[epoch_clock(recorder, bench)], verbose=0)
    return recorder.run()


def optuna_value(trial, key: str, distribution):
    """``trial.suggest_*`` for an Optuna distribution of the space."""
    import optuna.distributions as od

    if isinstance(distribution, od.CategoricalDistribution):
        return trial.suggest_categorical(key, list(distribution.choices))
    suggest = trial.suggest_int if isinstance(distribution, od.IntDistribution) else trial.suggest_float
    return suggest(key, distribution.low, distribution.high, step=distribution.step, log=distribution.log)


def run_optuna(method: str, seed: int, bench: Bench, origin: float | None = None) -> Run:
    """A trial spans the objective from its sampled values to its return or prune."""
    import optuna

    epochs, recorder = bench.args.epochs, Recorder(origin)
    distributions = bench.distributions()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs,
                                                                      reduction_factor=FACTOR))

    def objective(trial):
        params = {key: optuna_value(trial, key, d) for key, d in distributions.items()}

        def report(epoch, accuracy):
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        with recorder.trial():
            model, train = trial_setup(bench, params, seed)
            model.fit(train, epochs=epochs, callbacks=[epoch_clock(recorder, bench, report)], verbose=0, shuffle=False)
            return recorder.epochs[-1]["val_accuracy"]

    study.optimize(objective, n_trials=bench.args.trials)
    return recorder.run()

