"""Replay: compare search strategies on a finished experiment in seconds.

A replay runs a new Ray Tune sweep over the recorded experiment's space whose
trainable does not train: it answers each sampled configuration with the
recorded learning curve of the nearest recorded trial, epoch by epoch, with
that epoch's recorded fit time, so searchers and schedulers see what they
would have seen. For each strategy (searcher x scheduler) and repeat it
measures the best metric reached, the simulated compute (the sum of the
recorded epoch times of every epoch run) and the compute spent until the
sweep first came within ``tolerance`` of the best recorded value.

Its limits, by construction: only recorded configurations exist (a sampled
configuration is answered by its nearest recorded neighbour, distance in the
declared space normalised to [0, 1] per parameter, log scale for log
declarations). Within a replayed sweep each recorded trial answers at most
one replayed trial, the nearest one not yet used, since a real sweep never
runs the same configuration twice: a searcher that exploits a good region
gets the recorded trials around it, not the same curve again at full price
(with ``repeat_recorded`` the nearest one answers every time). A recorded
curve that ASHA cut short ends the replayed trial there too: record the
experiment without early stopping for a fair replay. Replayed trials run one
at a time unless ``max_concurrent`` says otherwise, which makes a replay
deterministic for a seed.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass

import numpy as np
import pandas as pd
import ray
from ray import tune
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import BasicVariantGenerator
from ray.tune.search.optuna import OptunaSearch

from scenetune.analysis import load_experiment
from scenetune.core.errors import UserError
from scenetune.core.registry import REPLAY_SEARCHERS as SEARCHERS
from scenetune.core.registry import SCHEDULERS
from scenetune.search.schedulers import (
    RunningVariants,
    holds_trials,
    limit_concurrency,
    make_scheduler,
    pending_trials,
    tune_ranking,
)
from scenetune.search.tuner import environ, make_sampler
from scenetune.spaces import Param, get_path, parse_space, to_optuna, to_tune


class ReplayError(UserError):
    """An experiment that cannot be replayed, or a bad replay option."""


@dataclass
class Recording:
    """What a replay needs from a finished experiment."""
    params: dict[str, Param]
    metric: str
    mode: str
    configs: pd.DataFrame  # index trial_id, one column per searched key
    curves: dict[str, list[tuple[float, float]]]  # trial_id -> [(metric, epoch_time_s)] per epoch
    scheduler: dict  # the recorded spec's scheduler settings
    rank_by: tuple[str, str] | None = None  # (metric, mode) the schedulers rank by, when not ``metric``
    rank_curves: dict[str, list[float]] | None = None  # trial_id -> that metric per epoch

    @property
    def best(self) -> float:
        values = [v for curve in self.curves.values() for v, _ in curve]
        return max(values) if self.mode == "max" else min(values)

    @property
    def max_t(self) -> int:
        return max(len(c) for c in self.curves.values())


def load_recording(uri: str, rank_by: tuple[str, str] | None = None) -> Recording:
    """``rank_by``: (metric, mode) for the schedulers to rank trials by
    (default: the recorded spec's ``scheduler.metric``, else the sweep's metric)."""
    exp = load_experiment(uri)
    if not exp.spec:
        raise ReplayError(f"{uri}: no scenetune_spec.yaml: only scenetune experiments can be replayed")
    params = parse_space(exp.spec.get("space"))
    if not params:
        raise ReplayError(f"{uri}: the experiment searched nothing (empty space)")
    metric, mode = exp.metric, exp.mode
    if exp.epochs.empty or metric not in exp.epochs or "epoch_time_s" not in exp.epochs:
        raise ReplayError(f"{uri}: no recorded {metric} and epoch_time_s curves to replay")
    scheduler = exp.spec.get("scheduler") or {}
    if rank_by is None and scheduler.get("metric"):
        rank_by = (scheduler["metric"], scheduler["mode"])
    if rank_by is not None and rank_by[0] == metric:
        rank_by = None if rank_by[1] == mode else rank_by
    if rank_by is not None and rank_by[0] not in exp.epochs:
        raise ReplayError(f"{uri}: no recorded {rank_by[0]} curves for the scheduler to rank by")
    needed = [metric, "epoch_time_s"] + ([rank_by[0]] if rank_by else [])
    curves, rank_curves = {}, {}
    for trial_id, rows in exp.epochs.sort_values("training_iteration").groupby("trial_id"):
        rows = rows.dropna(subset=needed)
        if len(rows):
            curves[str(trial_id)] = list(zip(rows[metric].astype(float), rows["epoch_time_s"].astype(float)))
            if rank_by:
                rank_curves[str(trial_id)] = rows[rank_by[0]].astype(float).tolist()
    configs = pd.DataFrame({tid: {k: get_path(exp.configs[tid], k) for k in params} for tid in curves}).T
    return Recording(params, metric, mode, configs, curves, scheduler, rank_by, rank_curves if rank_by else None)


def _normalise(param: Param, value) -> float:
    low, high = param.low, param.high
    if param.kind in ("loguniform", "logint"):
        low, high, value = math.log(low), math.log(high), math.log(value)
    return 0.0 if high == low else (value - low) / (high - low)


def nearest(recording: Recording, config: dict, exclude=()) -> str:
    """The recorded trial closest to ``config`` (first one on ties), leaving out ``exclude``."""
    distance = np.zeros(len(recording.configs))
    for key, param in recording.params.items():
        wanted, column = get_path(config, key), recording.configs[key]
        if param.is_categorical:
            distance += (column != wanted).to_numpy(dtype=float)
        else:
            recorded = np.array([_normalise(param, v) for v in column])
            distance += np.abs(recorded - _normalise(param, wanted))
    distance[recording.configs.index.isin(list(exclude))] = np.inf
    if np.isinf(distance).all():
        raise ReplayError(f"all {len(distance)} recorded trials are taken")
    return recording.configs.index[int(np.argmin(distance))]


@ray.remote(num_cpus=0)
class RecordedTrials:
    """The driver-side ledger of one replayed sweep: hands each replayed trial
    the nearest recorded trial that no other replayed trial has had, the same
    one again when that trial asks again (a paused trial resuming); with
    ``same``, one whose values of those keys are the config's while one is left."""

    def __init__(self, recording: Recording, same: tuple[str, ...] = ()):
        self.recording, self.given = recording, {}  # replayed trial id -> recorded trial id
        self.same = list(same)  # keys whose values the recorded trial shares with the config while one is left

    def claim(self, replayed_trial: str, config: dict) -> str:
        if replayed_trial not in self.given:
            used, configs = set(self.given.values()), self.recording.configs
            if self.same:
                other = configs.index[(configs[self.same] != [get_path(config, k) for k in self.same]).any(axis=1)]
                if len(used | set(other)) < len(configs):
                    used |= set(other)
            self.given[replayed_trial] = nearest(self.recording, config, used)
        return self.given[replayed_trial]


def replay_trainable(config: dict, recording: Recording, checkpoint: bool = False, claims=None) -> None:
    """Report the nearest recorded trial's curve, one recorded epoch at a time:
    the nearest not yet used when ``claims`` (a :class:`RecordedTrials`) is
    given. With ``checkpoint`` (schedulers that pause trials: HyperBand, ASHA holding a trial) each
    epoch is checkpointed so a paused trial resumes where it stopped."""
    if claims is None:
        trial_id = nearest(recording, config)
    else:
        trial_id = ray.get(claims.claim.remote(tune.get_context().get_trial_id(), config))
    start = 0
    if checkpoint and tune.get_checkpoint() is not None:
        with tune.get_checkpoint().as_directory() as folder:
            start = int(open(os.path.join(folder, "epoch")).read())
    curve = recording.curves[trial_id]
    for epoch in range(start + 1, len(curve) + 1):
        value, seconds = curve[epoch - 1]
        metrics = {recording.metric: value, "epoch": epoch, "epoch_time_s": seconds,
                   "simulated_time_s": sum(s for _, s in curve[:epoch]), "recorded_trial": trial_id}
        if recording.rank_by:
            metrics[recording.rank_by[0]] = recording.rank_curves[trial_id][epoch - 1]
        if not checkpoint:
            tune.report(metrics)
            continue
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "epoch"), "w") as f:
                f.write(str(epoch))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def noting_stops(scheduler, max_t: int):
    """The same scheduler, also noting (in ``.stopped_early``) each recorded
    trial it stops before ``max_t`` on that trial's own result: what a real
    run's early stops are (a recorded curve that ASHA cut short is stopped
    again where it ends). HyperBand also stops paused trials of a bracket it
    halves, on another trial's result: :meth:`ComputeLedger.cut_short` sees those."""
    base = type(scheduler)

    class Noting(base):
        def on_trial_result(self, tune_controller, trial, result):
            decision = super().on_trial_result(tune_controller, trial, result)
            if decision == TrialScheduler.STOP and result["training_iteration"] < max_t:
                self.stopped_early.append(result["recorded_trial"])
            return decision

    scheduler.__class__ = Noting
    scheduler.stopped_early = []
    return scheduler


class ComputeLedger(tune.Callback):
    """Adds up simulated compute in the order results arrive (driver side)."""

    def __init__(self, metric: str, mode: str):
        self.metric, self.mode = metric, mode
        self.compute, self.best = 0.0, None
        self.replayed: dict[str, str] = {}  # replayed trial -> recorded trial that answered it
        self.epochs: dict[str, int] = {}  # replayed trial -> the last epoch it reported
        self.improvements: list[tuple[float, float]] = []  # (compute so far, new best) at each new best

    def cut_short(self, curves: dict) -> set[str]:
        """The recorded trials whose replay ended before their recorded curve did."""
        return {recorded for replayed, recorded in self.replayed.items() if self.epochs[replayed] < len(curves[recorded])}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.replayed[trial.trial_id] = result["recorded_trial"]
        self.epochs[trial.trial_id] = max(self.epochs.get(trial.trial_id, 0), result["epoch"])
        self.compute += result["epoch_time_s"]
        value = result[self.metric]
        if self.best is None or (value > self.best if self.mode == "max" else value < self.best):
            self.best = value
            self.improvements.append((self.compute, value))


def compute_to_reach(improvements: list[tuple[float, float]], target: float, mode: str) -> float | None:
    """The compute spent when a run's best first reached ``target`` (None: never)."""
    return next((compute for compute, value in improvements
                 if (value >= target if mode == "max" else value <= target)), None)


def _searcher(name: str, rec: Recording, seed: int, max_concurrent: int, num_samples: int, chosen):
    """``(search_alg, param_space, max_concurrent_trials)`` as a sweep under ``chosen`` would have them."""
    if name == "tpe":  # the sampler a sweep of this size would get
        searcher = OptunaSearch(space=to_optuna(rec.params.values()), metric=rec.metric, mode=rec.mode,
                                sampler=make_sampler("tpe", seed, num_samples))
        search_alg, limit = limit_concurrency(searcher, max_concurrent or None, chosen)
        return search_alg, {}, limit
    settings = dict(random_state=seed, max_concurrent=max_concurrent)
    generator = RunningVariants(chosen, **settings) if holds_trials(chosen) else BasicVariantGenerator(**settings)
    return generator, to_tune(rec.params.values()), None


def _scheduler(name: str, rec: Recording, seed: int, settings: dict | None = None):
    """The scheduler a sweep with the recorded spec's settings (updated by
    ``settings``) would build, ranking by ``rec.rank_by`` when set."""
    chosen = {**rec.scheduler, **(settings or {}), "name": name, "max_t": rec.max_t}
    chosen.update(zip(("metric", "mode"), rec.rank_by or (None, None)))
    return make_scheduler(chosen, seed)


def replay_once(rec: Recording, searcher: str, scheduler: str, seed: int, num_samples: int,
                max_concurrent: int = 1, tolerance: float = 0.01, storage: str | None = None,
                repeat_recorded: bool = False, settings: dict | None = None) -> dict:
    """One replayed sweep; returns its best value and compute figures.
    ``repeat_recorded``: answer every sampled configuration with its nearest
    recorded trial, even one already replayed in this sweep. ``settings``:
    scheduler settings over the recorded spec's (e.g. ``{"brackets": 3}``).
    HyperBand pauses a bracket's trials until all of them reach its milestone,
    so its replays let the searcher hand out trials without a limit (Ray runs
    as many at once as the CPUs hold; paused trials hold none)."""
    if not repeat_recorded and num_samples > len(rec.curves):
        raise ReplayError(f"--num-samples: {num_samples} trials, but only {len(rec.curves)} were recorded, and each "
                          "answers one replayed trial (--repeat-recorded lets them answer again)")
    claims = None if repeat_recorded else RecordedTrials.remote(rec)
    target = rec.best - tolerance if rec.mode == "max" else rec.best + tolerance
    ledger = ComputeLedger(rec.metric, rec.mode)
    if scheduler == "hyperband":
        max_concurrent = 0
    chosen = noting_stops(_scheduler(scheduler, rec, seed, settings), rec.max_t)
    search_alg, space, limit = _searcher(searcher, rec, seed, max_concurrent, num_samples, chosen)
    metric, mode = tune_ranking(chosen, rec.metric, rec.mode)
    pauses = scheduler == "hyperband" or holds_trials(chosen)  # a paused trial resumes from its checkpoint
    tuner = tune.Tuner(
        tune.with_parameters(replay_trainable, recording=rec, checkpoint=pauses, claims=claims),
        param_space=space,
        tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=search_alg,
                                    scheduler=chosen, num_samples=num_samples, max_concurrent_trials=limit,
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=f"replay-{searcher}-{scheduler}-{seed}", storage_path=storage,
                                  callbacks=[ledger], verbose=0))
    # Quiet: Ray's new console output prints a box per sweep even at verbose=0;
    # its classic reporter honours verbose=0. Anything left goes to stderr.
    quiet = {"RAY_AIR_NEW_OUTPUT": "0", **pending_trials({"name": scheduler, **rec.scheduler, "max_t": rec.max_t},
                                                         num_samples)}
    try:
        with contextlib.redirect_stdout(sys.stderr), environ(quiet):
            tuner.fit()
    finally:
        if claims is not None:
            ray.kill(claims)
    stopped = sorted(set(chosen.stopped_early) | ledger.cut_short(rec.curves))
    return {"searcher": searcher, "scheduler": scheduler, "seed": seed, "best": ledger.best,
            "compute_s": ledger.compute,
            "compute_to_target_s": compute_to_reach(ledger.improvements, target, rec.mode),
            "improvements": ledger.improvements,
            "stopped_early": len(stopped), "stopped_trials": stopped,
            "replayed_trials": sorted(ledger.replayed.values())}


def replay(uri: str, searchers=("random", "tpe"), schedulers=("none", "asha"), repeats: int = 10,
           num_samples: int | None = None, max_concurrent: int = 1, tolerance: float = 0.01,
           seed: int = 0, progress=None, rank_by: tuple[str, str] | None = None,
           repeat_recorded: bool = False, settings: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every searcher x scheduler, ``repeats`` times; ``(runs, summary)`` tables.
    ``rank_by``: (metric, mode) the schedulers rank trials by (default: the
    recording's). ``repeat_recorded``, ``settings``: see :func:`replay_once`."""
    for name in searchers:
        if name not in SEARCHERS:
            raise ReplayError(f"--searcher: unknown {name!r}; known: {', '.join(SEARCHERS)}")
    for name in schedulers:
        if name not in SCHEDULERS:
            raise ReplayError(f"--scheduler: unknown {name!r}; known: {', '.join(SCHEDULERS)}")
    if repeats < 1:
        raise ReplayError(f"--repeats: must be at least 1, got {repeats}")
    rec = load_recording(uri, rank_by)
    num_samples = num_samples or len(rec.curves)
    storage = tempfile.mkdtemp(prefix="scenetune-replay-")
    runs = []
    try:
        for searcher in searchers:
            for scheduler in schedulers:
                for r in range(repeats):
                    runs.append(replay_once(rec, searcher, scheduler, seed + r, num_samples, max_concurrent,
                                            tolerance, storage, repeat_recorded, settings))
                    if progress:
                        progress(len(runs), len(searchers) * len(schedulers) * repeats)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    return pd.DataFrame(runs), summarise(pd.DataFrame(runs), rec, tolerance)


def summarise(runs: pd.DataFrame, rec: Recording, tolerance: float) -> pd.DataFrame:
    """Mean and spread per strategy; compute relative to random search without early stopping."""
    grouped = runs.groupby(["searcher", "scheduler"], sort=False)
    table = pd.DataFrame({
        "best_mean": grouped["best"].mean(), "best_std": grouped["best"].std(ddof=0),
        "compute_s_mean": grouped["compute_s"].mean(), "compute_s_std": grouped["compute_s"].std(ddof=0),
        "to_target_s_mean": grouped["compute_to_target_s"].mean(),
        "to_target_s_std": grouped["compute_to_target_s"].std(ddof=0),
        "reached_target": grouped["compute_to_target_s"].apply(lambda s: f"{s.notna().sum()}/{len(s)}"),
    }).reset_index()
    baseline = table.query("searcher == 'random' and scheduler == 'none'")["to_target_s_mean"]
    if len(baseline) and baseline.iloc[0]:
        table["to_target_vs_random"] = table["to_target_s_mean"] / baseline.iloc[0]
    table.attrs.update(target=(rec.best - tolerance if rec.mode == "max" else rec.best + tolerance),
                       best_recorded=rec.best, metric=rec.metric)
    return table
