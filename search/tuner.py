"""Tuner assembly: spec -> ``ray.tune.Tuner`` (searcher, scheduler, resources,
storage, failure and checkpoint policy), and the sweep's start and resume.

The driver never imports TensorFlow: the trainable is resolved by name and
imported inside each trial process.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field

import optuna
from ray import tune
from ray.tune.search import BasicVariantGenerator
from ray.tune.search.optuna import OptunaSearch

from scenetune.core import registry, storage
from scenetune.core.layout import DATA_CHECK_FILE, MANIFEST_FILE, SPEC_FILE
from scenetune.search.bounded_history import BoundedHistorySampler
from scenetune.search.constrained_search import ConstrainedOptunaSearch
from scenetune.search.finished_trials import CompactOptunaSearch
from scenetune.search.ray_compat import set_restored_callbacks
from scenetune.search.schedulers import RunningVariants, holds_trials, limit_concurrency, make_scheduler, tune_ranking
from scenetune.search.spec import SpecError, SweepSpec
from scenetune.search.warm_prior import PriorForStartup, prior_for_startup, run_first
from scenetune.spaces import Param, deep_merge, flatten, to_optuna, to_tune, unflatten
from scenetune.trainables.data.datacheck import check_dataset, enforce
from scenetune.trainables.data.datasets import SplitSpec, build_manifest, manifest_to_csv

STUDY_NAME = "optuna"  # OptunaSearch's name for its in-memory study


def startup_trials(num_samples: int) -> int:
    """Random trials before a model-based sampler takes over. Optuna's default
    (10 for TPE, a population of 50 for NSGA-II) suits hundreds of trials; a
    sweep of 8 would never leave its random start. A quarter of the budget,
    between 2 and Optuna's own default."""
    return max(2, min(10, num_samples // 4))


def make_sampler(name: str, seed: int, num_samples: int) -> optuna.samplers.BaseSampler:
    startup = startup_trials(num_samples)
    match name:
        case "tpe":
            return BoundedHistorySampler(optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup))
        case "random":
            return optuna.samplers.RandomSampler(seed=seed)
        case "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup)
        case "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(startup, 4))
        case "qmc":
            return optuna.samplers.QMCSampler(seed=seed)
    raise SpecError(f"search.sampler: unknown sampler {name!r}; known: {', '.join(registry.SAMPLERS)}")


class ExperimentExists(SpecError):
    """A new sweep would overwrite an experiment of the same name."""


@dataclass
class Prepared:
    """What the driver settles before any trial runs."""
    spec: SweepSpec
    experiment: str  # URI of the experiment directory
    manifest_uri: str
    classes: list[str]
    data_check: object = None  # scenetune.trainables.data.datacheck.DataCheck
    warm_trials: list = field(default_factory=list)  # earlier experiments' Optuna trials (warm start)


def study_with_points(points: list[dict], mode, sampler,
                      warm: list | None = None) -> optuna.storages.BaseStorage | None:
    """Optuna's storage with the ``warm`` trials (earlier experiments' Optuna
    trials, :mod:`scenetune.analysis.warm_start`) and then ``points`` enqueued
    as the study's first trials, for OptunaSearch to load. Optuna samples the
    keys a point leaves out; Ray's own ``points_to_evaluate`` refuses a point
    that does not name every key, and takes no learning curves."""
    if not points and not warm:
        return None
    storage = optuna.storages.InMemoryStorage()
    modes = mode if isinstance(mode, list) else [mode]
    study = optuna.create_study(storage=storage, study_name=STUDY_NAME, sampler=sampler,
                                directions=["minimize" if m == "min" else "maximize" for m in modes])
    study.add_trials(warm or [])
    for point in points:
        study.enqueue_trial(point)
    return storage


def searcher_and_space(spec: SweepSpec, chosen=None, warm: list | None = None):
    """``(search_alg, param_space)``: Optuna gets the declared distributions and
    Tune the constants; random and grid hand Tune the domains themselves.
    ``chosen``: the sweep's scheduler; when it holds trials at its rungs,
    random and grid search leave them out of ``max_concurrent``. ``warm``: the
    earlier trials the Optuna study starts with."""
    params = list(spec.params.values())
    points = spec.search.points
    if spec.search.algorithm == "optuna" and params:
        sampler = make_sampler(spec.search.sampler, spec.search.seed, spec.search.num_samples)
        if warm and prior_for_startup(spec.search.warm_start_prior, warm):
            sampler = PriorForStartup(sampler, startup_trials(spec.search.num_samples))
        metric, mode = spec.metric, spec.mode
        if spec.objectives:  # Optuna's samplers (TPE, NSGA-II) search the Pareto front
            metric, mode = [o.metric for o in spec.objectives], [o.mode for o in spec.objectives]
        first = [flatten(unflatten(flatten(p)), sep="/") for p in points]
        first += run_first(warm or [], spec.search, spec.mode)  # best at another image size
        storage = study_with_points(first, mode, sampler, warm)
        settings = dict(space=to_optuna(params), metric=metric, mode=mode, sampler=sampler, storage=storage,
                        study_name=STUDY_NAME)
        searcher = (ConstrainedOptunaSearch(**settings, constraints=[c.model_dump() for c in spec.constraints])
                    if spec.constraints else CompactOptunaSearch(**settings))
        return searcher, {}
    if spec.search.algorithm == "grid":
        params = [Param(p.key, "grid", p.args) for p in params]
    # A SearchGenerator ignores TuneConfig.max_concurrent_trials: it takes its own.
    settings = dict(random_state=spec.search.seed, max_concurrent=spec.search.max_concurrent or 0,
                    points_to_evaluate=[unflatten(flatten(p)) for p in points] or None)
    generator = RunningVariants(chosen, **settings) if holds_trials(chosen) else BasicVariantGenerator(**settings)
    return generator, to_tune(params)


def scheduler(spec: SweepSpec):
    return make_scheduler(spec.scheduler.model_dump(), spec.search.seed)


@contextlib.contextmanager
def environ(values: dict):
    """``os.environ`` with ``values`` set, and those variables as they were
    afterwards (only those: Ray's threads read the environment meanwhile)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def trial_dirname(trial) -> str:
    """Short trial folders (``classifier_1a2b3c4d``): Ray's default packs the
    whole config into the name, including the data block."""
    return f"{trial.trainable_name}_{trial.trial_id}"


def trial_function(name: str):
    """``fn(config)`` that imports and runs the named trainable's train
    function in the trial process: the driver never imports its module."""
    record = registry.trainable(name)

    def run(config: dict) -> None:
        return record.train_function()(config)

    run.__name__ = run.__qualname__ = name
    return run


def trial_slots(spec: SweepSpec) -> int:
    """How many trials run at once: ``search.max_concurrent``, else as many
    as the cluster's CPUs and GPUs hold (at least one; Ray is connected)."""
    if spec.search.max_concurrent:
        return spec.search.max_concurrent
    import ray

    available = ray.cluster_resources()
    held = [available.get("CPU", 0) / spec.resources.cpu]
    if spec.resources.gpu:
        held.append(available.get("GPU", 0) / spec.resources.gpu)
    return max(1, int(min(held)))


def trainable(spec: SweepSpec):
    resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    return tune.with_resources(trial_function(spec.trainable), resources)


def _progress(done: int, total: int) -> None:
    if done < total:  # the summary line follows the last
        print(f"data check: {done}/{total} files", file=sys.stderr, flush=True)


def check_new_experiment(spec: SweepSpec) -> str:
    """Refuse storage that cannot hold experiments and a name already there
    (reads only); the experiment's URI."""
    experiment = spec.experiment_uri
    problem = storage.unwritable_reason(spec.storage)
    if problem:
        raise SpecError(f"storage: {spec.storage} cannot hold experiments: {problem}")
    if storage.exists(experiment):
        raise ExperimentExists(f"name: experiment {spec.name!r} already exists at {experiment}; "
                               "pass --resume to continue it, or choose another name")
    return experiment


def prepare(spec: SweepSpec, checked: bool = False) -> Prepared:
    """Refuse an existing name (unless the caller ``checked`` it with
    :func:`check_new_experiment`), check the data (refusing more than
    ``data.max_bad_fraction`` bad files), compute the split once, and write
    the manifest (bad files included, split ``bad``), the data check and the
    resolved spec into the experiment directory. Nothing is written when it
    refuses."""
    experiment = spec.experiment_uri if checked else check_new_experiment(spec)
    data = spec.data
    check = check_dataset(data.root, data.dataset, data.categories, progress=_progress)
    print(check.summary(), file=sys.stderr, flush=True)
    enforce(check, data.max_bad_fraction)
    split = SplitSpec(**data.split.model_dump())
    manifest = build_manifest(data.root, data.dataset, data.categories, split, bad=check.bad_reasons())
    manifest_uri = storage.join(experiment, MANIFEST_FILE)
    storage.write_text(manifest_uri, manifest_to_csv(manifest))
    storage.write_text(storage.join(experiment, DATA_CHECK_FILE), check.to_json())
    storage.write_text(storage.join(experiment, SPEC_FILE), spec.to_yaml())
    classes = sorted(manifest.loc[manifest["split"] != "bad", "label"].unique())
    return Prepared(spec, experiment, manifest_uri, classes, check)


def build_tuner(prepared: Prepared, callbacks: list | None = None, quiet: bool = False) -> tune.Tuner:
    """The sweep's Tuner; ``callbacks`` (the clock, the progress line) in
    Ray Tune's driver; ``quiet``: no table of trials from Ray Tune (the
    progress line stands for it)."""
    spec = prepared.spec
    chosen = scheduler(spec)
    search_alg, space = searcher_and_space(spec, chosen, prepared.warm_trials)
    sweep_set = {"data": {"root": spec.data.root, "manifest": prepared.manifest_uri, "classes": prepared.classes},
                 "checkpoint_epochs": spec.checkpoint_epochs()}
    param_space = deep_merge(deep_merge(spec.fixed, space), sweep_set)
    metric, mode = tune_ranking(chosen, spec.metric, spec.mode)
    search_alg, max_concurrent = limit_concurrency(
        search_alg, spec.search.max_concurrent if isinstance(search_alg, OptunaSearch) else None, chosen)
    tune_config = tune.TuneConfig(
        metric=metric, mode=mode, search_alg=search_alg, scheduler=chosen,
        num_samples=spec.search.num_samples, max_concurrent_trials=max_concurrent,
        trial_dirname_creator=trial_dirname,
        # Warm trials: Ray hands a finished trial's worker process to the next trial
        # of the same resources; the trainable resets TensorFlow's state on entry
        # (scenetune.trainables.device.configure), and the GPU memory plan, fixed for a
        # process's life, is the same for every trial of those resources.
        reuse_actors=spec.resources.reuse_processes)
    run_config = tune.RunConfig(
        name=spec.name, storage_path=storage.normalize(spec.storage),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=spec.checkpoint.num_to_keep),
        failure_config=tune.FailureConfig(max_failures=spec.failure.max_failures),
        sync_config=tune.SyncConfig(sync_artifacts=True),
        callbacks=callbacks or None,
        verbose=0 if quiet else 1)
    return tune.Tuner(trainable(spec), param_space=param_space, tune_config=tune_config, run_config=run_config)


def check_restorable(spec: SweepSpec) -> None:
    """Refuse ``--resume`` of an experiment with no Ray Tune state (before any Ray starts)."""
    experiment = spec.experiment_uri
    if not tune.Tuner.can_restore(experiment):
        what = "holds no Ray Tune state" if storage.exists(experiment) else "does not exist"
        raise SpecError(f"--resume: experiment {spec.name!r} at {experiment} {what}")


def restore_tuner(spec: SweepSpec, callbacks: list | None = None, quiet: bool = False) -> tune.Tuner:
    check_restorable(spec)
    # Errored trials already spent their retries (FailureConfig): they stay errored.
    tuner = tune.Tuner.restore(spec.experiment_uri, trainable=trainable(spec), resume_unfinished=True,
                               resume_errored=False)
    set_restored_callbacks(tuner, callbacks or [], verbose=0 if quiet else 1)
    return tuner
