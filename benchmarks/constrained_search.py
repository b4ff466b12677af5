"""Constrained search (issue 26), measured on replays of the committed recording.

    .venv/bin/python benchmarks/constrained_search.py            # 10 seeds
    .venv/bin/python benchmarks/constrained_search.py --quick    # 2 seeds

Goal: a constrained sweep (model size at most half of the unconstrained best
model's) finds a best feasible trial within 2 points of what an unconstrained
sweep of twice the trials finds among its feasible trials, and at least 80%
of the constrained sweep's trials after its start-up trials are feasible.

Every sweep is a replay (``scenetune replay``'s machinery) of
``benchmarks/fixtures/search-recorded``: 64 trials of the basic CNN on the
synthetic scenes, full 8-epoch curves. Each sampled configuration is answered
by the nearest recorded trial not yet used in that sweep of the size it asked
for (SIZE_KEYS; of any size once those are used, or always with
``--any-size``), which reports its curve and its ``model_mb`` (4 *
total_params / 1e6, from its result.json). TPE (``make_sampler("tpe", seed,
n)``) + ASHA with the recording's settings, one trial at a time
(deterministic per seed). Arms, per seed:

- constrained, N trials: ``ConstrainedOptunaSearch`` with
  ``constraints=[{metric: model_mb, max: bound}]`` (what a spec's
  ``constraints:`` builds: its sampler redraws probably infeasible draws);
- unconstrained, 2N trials: Ray Tune's ``OptunaSearch`` (the goal's reference);
- unconstrained, N trials: the same budget without the constraint;
- constrained without redraws, N trials: the constraint values told, no redraw.

Per sweep: the best final val_accuracy (each trial's last reported value, as
``scenetune best`` ranks) among trials with model_mb <= bound; the share of
feasible trials after TPE's start-up trials (``startup_trials(n)``); the
simulated compute (recorded fit seconds of every epoch run).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDED = os.path.join(HERE, "fixtures", "search-recorded")
sys.path.insert(0, os.path.dirname(HERE))

MIN_FEASIBLE = 8  # a bound leaving fewer recorded trials feasible is too tight to search
MAX_FEASIBLE_SHARE = 0.875  # ... and one leaving more than this share feasible hardly constrains
TOLERANCE = 0.02  # the goal's "within 2 points"
SHARE_GOAL = 0.8


def model_sizes(fixture: str) -> dict[str, float]:
    """Each recorded trial's model_mb (float32 weights: 4 bytes a parameter)."""
    from scenetune.analysis import load_experiment

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epochs = load_experiment(fixture).epochs
    params = epochs.dropna(subset=["total_params"]).groupby("trial_id")["total_params"].first()
    return {str(t): 4 * float(p) / 1e6 for t, p in params.items()}


def choose_bound(rec, sizes: dict, override: float | None) -> tuple[float, list[str]]:
    """The bound and the lines explaining it: half the model_mb of the recorded
    trial with the best final value; on a tie, of each tied trial in turn, the
    first that leaves a sensible number feasible; else the median model_mb."""
    finals = pd.Series({t: c[-1][0] for t, c in rec.curves.items()}).sort_index()
    mb = pd.Series(sizes).reindex(finals.index)
    n = len(finals)
    feasible = lambda bound: int((mb <= bound).sum())
    best = finals.max() if rec.mode == "max" else finals.min()
    tied = finals.index[finals == best].tolist()
    lines = [f"best final {rec.metric} of the {n} recorded trials: {best:.4f}, reached by {len(tied)}: "
             + ", ".join(f"{t} ({mb[t]:.4f} MB)" for t in tied)]
    sensible, chosen = lambda k: MIN_FEASIBLE <= k <= MAX_FEASIBLE_SHARE * n, None
    for t in tied:
        bound = mb[t] / 2
        k = feasible(bound)
        verdict = "sensible" if sensible(k) else ("too few" if k < MIN_FEASIBLE else "almost all")
        lines.append(f"  half of {t}'s {mb[t]:.4f} MB = {bound:.4f} MB: {k}/{n} recorded trials feasible ({verdict})")
        if chosen is None and sensible(k):
            chosen = bound
    if chosen is None:
        chosen = float(mb.median())
        lines.append(f"  no tied best gives a sensible bound: the median model_mb, {chosen:.4f} MB")
    if override is not None:
        chosen = override
        lines.append(f"  --bound given: {chosen:.4f} MB")
    k = feasible(chosen)
    ceiling = finals[mb <= chosen].max() if rec.mode == "max" else finals[mb <= chosen].min()
    lines.append(f"bound: model_mb <= {chosen:.4f} MB; {k}/{n} recorded trials feasible; best feasible recorded "
                 f"final {rec.metric} {ceiling:.4f}; model sizes (MB: recorded trials) "
                 + ", ".join(f"{s:.4f}: {c}" for s, c in mb.round(6).value_counts().sort_index().items()))
    return chosen, lines


def replay_with_size(config: dict, recording, sizes: dict, claims) -> None:
    """``replay_trainable`` (no checkpoints: ASHA without a quorum holds no
    trial) that also reports the answering recorded trial's ``model_mb``."""
    import ray
    from ray import tune

    trial_id = ray.get(claims.claim.remote(tune.get_context().get_trial_id(), config))
    curve = recording.curves[trial_id]
    for epoch, (value, seconds) in enumerate(curve, start=1):
        metrics = {recording.metric: value, "epoch": epoch, "epoch_time_s": seconds,
                   "simulated_time_s": sum(s for _, s in curve[:epoch]), "recorded_trial": trial_id,
                   "model_mb": sizes[trial_id]}
        if recording.rank_by:
            metrics[recording.rank_by[0]] = recording.rank_curves[trial_id][epoch - 1]
        tune.report(metrics)


def make_ledger(metric: str, mode: str):
    from scenetune.commands.replay import ComputeLedger

    class Ledger(ComputeLedger):
        """ComputeLedger, also keeping each trial's last value and model_mb in the order trials started."""

        def __init__(self, *args):
            super().__init__(*args)
            self.order, self.last, self.mb, self.configs = [], {}, {}, {}

        def on_trial_result(self, iteration, trials, trial, result, **info):
            super().on_trial_result(iteration, trials, trial, result, **info)
            if trial.trial_id not in self.last:
                self.order.append(trial.trial_id)
                self.configs[trial.trial_id] = dict(trial.config)
            self.last[trial.trial_id], self.mb[trial.trial_id] = result[self.metric], result["model_mb"]

    return Ledger(metric, mode)


SIZE_KEYS = ("cnn_filters", "dense_units")  # what sets a model's size in the recorded space (cnn_blocks fixed)


def config_sizes(rec, sizes: dict) -> dict | None:
    """model_mb by the sampled config's SIZE_KEYS, when the recording fixes it so (else None)."""
    frame = rec.configs[list(SIZE_KEYS)].assign(mb=pd.Series(sizes))
    by = frame.groupby(list(SIZE_KEYS))["mb"]
    return None if (by.nunique() > 1).any() else {k: v for k, v in by.first().items()}


def sweep(rec, sizes: dict, seed: int, num_samples: int, bound: float, constrained: bool, storage: str,
          same_size: bool = True, redraws: int | None = None) -> dict:
    """One replayed TPE + ASHA sweep, one trial at a time; ``constrained``: the
    searcher is told each trial's excess over ``model_mb <= bound``."""
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from scenetune.commands.replay import RecordedTrials, _scheduler, noting_stops
    from scenetune.search.constrained_search import REDRAWS, ConstrainedOptunaSearch, FeasibleFirstSampler
    from scenetune.search.schedulers import limit_concurrency, pending_trials, tune_ranking
    from scenetune.search.tuner import environ, make_sampler, startup_trials
    from scenetune.spaces import to_optuna

    claims = RecordedTrials.remote(rec, same=SIZE_KEYS if same_size else ())  # the size TPE asked for, while one is left
    ledger = make_ledger(rec.metric, rec.mode)
    chosen = noting_stops(_scheduler("asha", rec, seed), rec.max_t)
    settings = {"space": to_optuna(rec.params.values()), "metric": rec.metric, "mode": rec.mode,
                "sampler": make_sampler("tpe", seed, num_samples)}
    if constrained:
        settings["sampler"] = FeasibleFirstSampler(settings["sampler"], REDRAWS if redraws is None else redraws)
    searcher = (ConstrainedOptunaSearch(**settings, constraints=[{"metric": "model_mb", "max": bound, "min": None}])
                if constrained else OptunaSearch(**settings))
    search_alg, limit = limit_concurrency(searcher, 1, chosen)
    metric, mode = tune_ranking(chosen, rec.metric, rec.mode)
    name = f"{'constrained' if constrained else 'plain'}-{num_samples}-{seed}-{redraws}"
    tuner = tune.Tuner(
        tune.with_parameters(replay_with_size, recording=rec, sizes=sizes, claims=claims),
        tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=search_alg, scheduler=chosen,
                                    num_samples=num_samples, max_concurrent_trials=limit, reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=storage, callbacks=[ledger], verbose=0))
    quiet = {"RAY_AIR_NEW_OUTPUT": "0",
             **pending_trials({"name": "asha", **rec.scheduler, "max_t": rec.max_t}, num_samples)}
    try:
        with contextlib.redirect_stdout(sys.stderr), environ(quiet):
            tuner.fit()
    finally:
        ray.kill(claims)
        shutil.rmtree(os.path.join(storage, name), ignore_errors=True)
    if len(ledger.order) < num_samples:  # a trial that failed reports nothing: do not count it as missing
        raise RuntimeError(f"{name}: only {len(ledger.order)} of {num_samples} trials reported a result")
    told = sum(1 for t in searcher._ot_study.trials if t.system_attrs.get("constraints") or
               any(k.startswith("constraints") for k in t.system_attrs))
    ok = [t for t in ledger.order if ledger.mb[t] <= bound]
    values = [ledger.last[t] for t in ok]
    after = ledger.order[startup_trials(num_samples):]
    table = config_sizes(rec, sizes)  # was the sampled config itself feasible (before the replay's nearest match)?
    sampled = [table.get(tuple(ledger.configs[t].get(k) for k in SIZE_KEYS), np.inf) <= bound
               for t in after] if table is not None else []
    return {"trials": len(ledger.order), "feasible": len(ok),
            "best_feasible": (max(values) if rec.mode == "max" else min(values)) if values else np.nan,
            "share_after_startup": np.mean([ledger.mb[t] <= bound for t in after]) if after else np.nan,
            "after_startup": len(after), "sampled_share": np.mean(sampled) if sampled else np.nan, "compute_s": ledger.compute, "constraints_told": told,
            "stopped_early": len(chosen.stopped_early),
            "redrawn": settings["sampler"].redrawn if constrained else 0}


def span(values) -> str:
    values = pd.Series(values).dropna()
    return f"{values.min():.3f}-{values.max():.3f}" if len(values) else "-"


def report(runs: pd.DataFrame, arms: list[str], seeds: list[int]) -> None:
    rows = []
    for arm in arms:
        g = runs[runs["arm"] == arm]
        rows.append({"arm": arm, "best feasible, median": g["best_feasible"].median(),
                     "best min-max": span(g["best_feasible"]),
                     "no feasible trial": f"{int(g['best_feasible'].isna().sum())}/{len(g)}",
                     "feasible after start-up, median": g["share_after_startup"].median(),
                     "share min-max": span(g["share_after_startup"]),
                     "pooled": g["share_after_startup"].mul(g["after_startup"]).sum() / g["after_startup"].sum(),
                     "sampled configs feasible after start-up, median": g["sampled_share"].median(),
                     "compute s, median": g["compute_s"].median(), "trials told constraints": g["constraints_told"].sum(),
                     "draws refused": g["redrawn"].sum()})
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))
    per_seed = runs.pivot_table(index="seed", columns="arm", values="best_feasible", aggfunc="first")[arms]
    per_seed["constrained - 2N (pt)"] = 100 * (per_seed[arms[0]] - per_seed[arms[1]])
    per_seed["share after start-up (constrained)"] = runs[runs["arm"] == arms[0]].set_index("seed")[
        "share_after_startup"]
    print("\nper seed: best feasible final val_accuracy")
    print(per_seed.to_markdown(floatfmt=".3f"))

    con, ref = runs[runs["arm"] == arms[0]], runs[runs["arm"] == arms[1]]
    diff = 100 * (con["best_feasible"].median() - ref["best_feasible"].median())
    within = int((per_seed["constrained - 2N (pt)"].fillna(-np.inf) >= -100 * TOLERANCE - 1e-9).sum())
    share = con["share_after_startup"].median()
    meeting = int((con["share_after_startup"] >= SHARE_GOAL).sum())
    print(f"\ngoal 1: best feasible within {100 * TOLERANCE:.0f} points of the unconstrained 2N sweep's: "
          f"median {con['best_feasible'].median():.4f} vs {ref['best_feasible'].median():.4f}, "
          f"{diff:+.2f} points: {'MET' if diff >= -100 * TOLERANCE else 'MISSED'}; "
          f"per seed within {100 * TOLERANCE:.0f} points: {within}/{len(seeds)}")
    print(f"goal 2: >= {SHARE_GOAL:.0%} of the constrained sweep's trials after start-up feasible: median "
          f"{share:.0%}: {'MET' if share >= SHARE_GOAL else 'MISSED'}; seeds at >= {SHARE_GOAL:.0%}: "
          f"{meeting}/{len(seeds)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--quick", action="store_true", help="2 seeds")
    parser.add_argument("--num-samples", type=int, default=16, help="N: the constrained sweep's trials (default 16)")
    parser.add_argument("--bound", type=float, default=None, help="model_mb bound (default: from the recording)")
    parser.add_argument("--fixture", default=RECORDED)
    parser.add_argument("--any-size", action="store_true",
                        help="answer each config with the nearest unused recorded trial of any size (the first table)")
    args = parser.parse_args()
    seeds = list(range(2 if args.quick else args.seeds))

    import optuna
    import ray

    from scenetune.commands.replay import load_recording
    from scenetune.search.tuner import startup_trials

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = load_recording(args.fixture)
    sizes = model_sizes(args.fixture)
    n = args.num_samples
    if 2 * n > len(rec.curves):
        parser.error(f"--num-samples: the 2N arm needs {2 * n} trials, but only {len(rec.curves)} were recorded")
    bound, lines = choose_bound(rec, sizes, args.bound)
    arms = [(f"constrained TPE, N={n}", n, True, None), (f"unconstrained TPE, 2N={2 * n}", 2 * n, False, None),
            (f"unconstrained TPE, N={n}", n, False, None),
            (f"constrained TPE without redraws, N={n}", n, True, 1)]
    ray.init(address="local", include_dashboard=False, logging_level="ERROR")
    storage = tempfile.mkdtemp(prefix="scenetune-constrained-")
    runs = []
    try:
        for seed in seeds:
            for arm, samples, constrained, redraws in arms:
                t0 = time.time()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = sweep(rec, sizes, seed, samples, bound, constrained, storage,
                                   same_size=not args.any_size, redraws=redraws)
                runs.append({"arm": arm, "seed": seed, **result})
                print(f"[{len(runs)}/{len(seeds) * len(arms)}] {arm} seed {seed}: best feasible "
                      f"{result['best_feasible']:.4f}, {result['feasible']}/{result['trials']} feasible, "
                      f"{result['share_after_startup']:.0%} after start-up, compute {result['compute_s']:.1f} s, "
                      f"constraints told {result['constraints_told']}, {time.time() - t0:.0f} s wall",
                      file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
        ray.shutdown()

    print(f"recording: {os.path.relpath(args.fixture)} ({len(rec.curves)} trials, {rec.max_t} epochs each)")
    for line in lines:
        print(line)
    print(f"\n{len(seeds)} seeds ({seeds[0]}..{seeds[-1]}); TPE + ASHA (grace {rec.scheduler.get('grace_period')}, "
          f"factor {rec.scheduler.get('reduction_factor')}), one trial at a time; start-up trials: "
          f"{startup_trials(n)} of {n}, {startup_trials(2 * n)} of {2 * n}; best feasible = best last-reported "
          f"{rec.metric} among trials with model_mb <= {bound:.4f}; compute = recorded fit seconds\n")
    report(pd.DataFrame(runs), [a for a, *_ in arms], seeds)
    print(f"\nwall time {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
