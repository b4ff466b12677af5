"""Warm start (issue 25), measured on replays of the committed recording.

    .venv/bin/python benchmarks/warm_start.py            # 10 seeds (--quick: 2)

Every sweep here is a replay (``scenetune replay``'s machinery) of
``benchmarks/fixtures/search-recorded``: 64 trials of the basic CNN on the
synthetic scenes, full 8-epoch curves. TPE + ASHA with the recording's ASHA
settings, one trial at a time (deterministic per seed). New sweeps use seeds
0..N-1; the earlier sweep each one is warm-started from is a cold sweep of the
same kind with seed + 100, replayed into a storage folder and read back by
scenetune's own reader (``read_warm_start``: completed trials COMPLETE with
their value, ASHA-stopped trials PRUNED with their values by epoch). A replay
answers each sampled configuration with the curve of the nearest recorded
trial not yet used, which can lie far from it, so each warm trial's params
are then set to those of the recorded trial whose curve it carries (config
and curve belong together, as in a real experiment); the rows "sampled
configs" keep the sampled ones, as the replay's experiment records them.

Scenarios (the issue's goals; each one in benchmarks/README.md#warm-start-replayed):
1. same task, same space, from one earlier 24-trial sweep (goal <= 0.5x cold),
   beside Ray Tune's ``points_to_evaluate`` + ``evaluated_rewards``;
2. scale: earlier sweep at image_size 32, new one at 64, 12 trials, on
   ``benchmarks/fixtures/scale-recorded`` (the same 48 configurations
   recorded at both sizes, ``benchmarks/scale_recording.py``;
   ``--scale-fixture same``: the first measurement, the main recording's
   trials at 32 and 48 px); the earlier trials (a) left out, (b) a prior,
   (c) their 3 best configurations run first, (d) both (scenetune's
   default), (e) a prior for the start-up trials only (goal <= 0.7x cold);
3. unrelated: scenario 1's earlier trials with values reversed, or params
   shuffled between trials (goal <= 1.2x cold).
In scenarios 1 and 3, rows "prior for the start-up only" run the warm start
with ``search.warm_start_prior: startup`` (``search/warm_prior.py``): TPE
sees the earlier trials for the sweep's start-up trials, then its own alone.

Measured per sweep: simulated compute (recorded fit seconds) and epochs run
until the sweep's best first came within 0.01 of the best recorded value; a
sweep that never came that near counts all it ran (and is counted as not
reaching it).
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

import pandas as pd
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDED = os.path.join(HERE, "fixtures", "search-recorded")
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from warm_start_trials import as_answered, ray_peer, reversed_values, shuffled_params  # noqa: E402

TOLERANCE = 0.01
SCALE_RECORDED = os.path.join(HERE, "fixtures", "scale-recorded")  # benchmarks/scale_recording.py
RERUN_K = 3
LOOSE = 0.05  # a second, looser target (not the goal's)


def restrict(rec, key: str, value):
    """The recording's trials with ``key`` == ``value``, ``key`` no longer searched."""
    from scenetune.commands.replay import Recording

    keep = rec.configs.index[rec.configs[key] == value]
    params = {k: p for k, p in rec.params.items() if k != key}
    return Recording(params, rec.metric, rec.mode, rec.configs.loc[keep, list(params)],
                     {t: rec.curves[t] for t in keep}, rec.scheduler, rec.rank_by,
                     {t: rec.rank_curves[t] for t in keep} if rec.rank_curves else None)


def scale_recordings(rec, fixture: str):
    """Scenario 2's earlier and new recordings and their image sizes."""
    from scenetune.commands.replay import load_recording

    if fixture == "same":
        return restrict(rec, "image_size", 32), restrict(rec, "image_size", 48), (32, 48)
    sizes = (32, 64)
    return (*(load_recording(os.path.join(fixture, f"px{size}")) for size in sizes), sizes)


def make_ledger(metric: str, mode: str):
    from scenetune.commands.replay import ComputeLedger

    class Ledger(ComputeLedger):
        """ComputeLedger, also counting the epochs run at each new best."""

        def __init__(self, *args):
            super().__init__(*args)
            self.epochs_run, self.epochs_at = 0, []  # epochs run so far at each entry of .improvements

        def on_trial_result(self, iteration, trials, trial, result, **info):
            before = len(self.improvements)
            super().on_trial_result(iteration, trials, trial, result, **info)
            self.epochs_run += 1
            if len(self.improvements) > before:
                self.epochs_at.append(self.epochs_run)

    return Ledger(metric, mode)


def sweep(rec, seed: int, num_samples: int, storage: str, name: str, fixed: dict, *,
          warm: list | None = None, enqueue: list | None = None, ray_points: tuple | None = None,
          prior_for_startup: bool = False) -> dict:
    """One replayed TPE + ASHA sweep (``replay_once`` with a warm-started searcher).
    ``warm``: Optuna trials the study starts with (scenetune's way: a pre-filled
    storage); ``enqueue``: configs run first (``study.enqueue_trial``);
    ``ray_points``: ``(configs, values)`` for Ray's own ``points_to_evaluate`` /
    ``evaluated_rewards``; ``prior_for_startup``: the earlier trials shown to
    TPE for the sweep's start-up trials only (``PriorForStartup``). ``fixed`` go into every trial's config (as a sweep's
    fixed values do), so the experiment reads back as a scenetune one."""
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from scenetune.commands.replay import RecordedTrials, _scheduler, noting_stops, replay_trainable
    from scenetune.search.schedulers import limit_concurrency, pending_trials, tune_ranking
    from scenetune.search.tuner import STUDY_NAME, environ, make_sampler, startup_trials, study_with_points
    from scenetune.search.warm_prior import PriorForStartup
    from scenetune.spaces import to_optuna

    claims = RecordedTrials.remote(rec)
    ledger = make_ledger(rec.metric, rec.mode)
    chosen = noting_stops(_scheduler("asha", rec, seed), rec.max_t)
    sampler = make_sampler("tpe", seed, num_samples)
    if prior_for_startup:
        sampler = PriorForStartup(sampler, startup_trials(num_samples))
    space = to_optuna(rec.params.values())
    if ray_points is not None:
        points, rewards = ray_points
        searcher = OptunaSearch(space=space, metric=rec.metric, mode=rec.mode, sampler=sampler,
                                points_to_evaluate=points, evaluated_rewards=rewards)
    else:
        study = study_with_points(enqueue or [], rec.mode, sampler, warm)
        searcher = OptunaSearch(space=space, metric=rec.metric, mode=rec.mode, sampler=sampler,
                                storage=study, study_name=STUDY_NAME)
    search_alg, limit = limit_concurrency(searcher, 1, chosen)
    metric, mode = tune_ranking(chosen, rec.metric, rec.mode)
    # Trial folders in the order the trials were created: scenetune reads an
    # experiment's trials in folder order, and Optuna's trial ids are random.
    created: dict[str, int] = {}

    def dirname(trial) -> str:
        return f"replay_{created.setdefault(trial.trial_id, len(created)):05d}"

    tuner = tune.Tuner(
        tune.with_parameters(replay_trainable, recording=rec, checkpoint=False, claims=claims),
        param_space=dict(fixed),
        tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=search_alg, scheduler=chosen,
                                    num_samples=num_samples, max_concurrent_trials=limit, reuse_actors=True,
                                    trial_dirname_creator=dirname),
        run_config=tune.RunConfig(name=name, storage_path=storage, callbacks=[ledger], verbose=0))
    quiet = {"RAY_AIR_NEW_OUTPUT": "0",
             **pending_trials({"name": "asha", **rec.scheduler, "max_t": rec.max_t}, num_samples)}
    try:
        with contextlib.redirect_stdout(sys.stderr), environ(quiet):
            tuner.fit()
    finally:
        ray.kill(claims)
    return {"best": ledger.best, "improvements": list(ledger.improvements), "epochs_at": list(ledger.epochs_at),
            "total_compute_s": ledger.compute, "total_epochs": ledger.epochs_run,
            "folder": os.path.join(storage, name)}


def to_target(run: dict, rec, tolerance: float) -> dict:
    """When the sweep's best first came within ``tolerance`` of the best
    recorded value: compute and epochs run by then (all it ran when never)."""
    target = rec.best - tolerance if rec.mode == "max" else rec.best + tolerance
    hit = next((i for i, (_, value) in enumerate(run["improvements"])
                if (value >= target if rec.mode == "max" else value <= target)), None)
    if hit is None:
        return {"reached": False, "compute_s": run["total_compute_s"], "epochs": run["total_epochs"]}
    return {"reached": True, "compute_s": run["improvements"][hit][0], "epochs": run["epochs_at"][hit]}


def earlier_trials(rec, folder: str, space: dict, fixed: dict, new_space: dict, new_fixed: dict,
                   other_sizes: str = "prior"):
    """The earlier replayed experiment at ``folder`` read the way a sweep's
    warm start reads it: its spec written beside Ray's state (a replay writes
    none), then ``read_warm_start`` for the new sweep's space and fixed values."""
    from scenetune.analysis.warm_start import read_warm_start

    spec = {"name": os.path.basename(folder), "trainable": "classifier", "metric": rec.metric, "mode": rec.mode,
            "scheduler": {**rec.scheduler, "name": "asha", "max_t": rec.max_t}, "space": space, "fixed": fixed}
    with open(os.path.join(folder, "scenetune_spec.yaml"), "w") as f:
        yaml.safe_dump(spec, f, sort_keys=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_warm_start([folder], "classifier", [(rec.metric, rec.mode)], new_space, new_fixed,
                               other_sizes=other_sizes)


def table(runs: pd.DataFrame, rec, cold_policy: str, goal: float, goal_policies: list[str]) -> str:
    """Per policy: medians over the seeds of compute and epochs until within
    1 point of ``rec``'s best, each against ``cold_policy``'s median; then the
    compute ratio again for a target 5 points from the best (a second look,
    not the goal's)."""
    rows = {}
    for tolerance in (TOLERANCE, LOOSE):
        reach = pd.DataFrame([to_target(run, rec, tolerance) for run in runs.to_dict("records")], index=runs.index)
        reach["policy"] = runs["policy"]
        cold = reach[reach["policy"] == cold_policy]
        cold_c, cold_e = cold["compute_s"].median(), cold["epochs"].median()
        for policy, group in reach.groupby("policy", sort=False):
            c, e = group["compute_s"].median(), group["epochs"].median()
            row = rows.setdefault(policy, {"policy": policy})
            if tolerance == TOLERANCE:
                row.update({"compute to target, median (s)": c, "vs cold": c / cold_c,
                            "epochs to target, median": e, "epochs vs cold": e / cold_e,
                            "reached": f"{int(group['reached'].sum())}/{len(group)}"})
            else:
                row.update({"5 pt: compute vs cold": c / cold_c, "5 pt: reached": f"{int(group['reached'].sum())}/"
                                                                                  f"{len(group)}"})
        for policy, group in runs.groupby("policy", sort=False):
            rows[policy]["best, median"] = group["best"].median()
    lines = [pd.DataFrame(list(rows.values())).to_markdown(index=False, floatfmt=".2f")]
    for policy in goal_policies:
        row = rows[policy]
        lines.append(f"goal: {policy} <= {goal}x the cold median compute: {row['vs cold']:.2f}x, "
                     f"{'met' if row['vs cold'] <= goal else 'NOT met'} (epochs: {row['epochs vs cold']:.2f}x)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="new sweeps' seeds 0..N-1 (default 10)")
    parser.add_argument("--quick", action="store_true", help="2 seeds")
    parser.add_argument("--fixture", default=RECORDED)
    parser.add_argument("--scale-fixture", default=SCALE_RECORDED,
                        help="scenario 2's paired recording (px32/ and px64/); 'same': --fixture's trials at "
                             "image_size 32 and 48 (the first measurement)")
    parser.add_argument("--num-samples", type=int, default=24, help="trials per sweep in scenarios 1 and 3")
    parser.add_argument("--scale-samples", type=int, default=12, help="trials per sweep in scenario 2")
    args = parser.parse_args()
    seeds = list(range(2 if args.quick else args.seeds))

    import optuna
    import ray

    from scenetune.commands.replay import load_recording
    from scenetune.search.warm_prior import reruns

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.time()
    ray.init(address="local", include_dashboard=False, logging_level="ERROR")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = load_recording(args.fixture)
    with open(os.path.join(args.fixture, "scenetune_spec.yaml")) as f:
        space = yaml.safe_load(f)["space"]
    small, large, (SMALL, LARGE) = scale_recordings(rec, args.scale_fixture)
    scale_space = {k: v for k, v in space.items() if k != "image_size"}
    fixed = {"epochs": rec.max_t}
    fix_small, fix_large = {**fixed, "image_size": SMALL}, {**fixed, "image_size": LARGE}
    for label, r, n in (("--num-samples", rec, args.num_samples), ("--scale-samples", small, args.scale_samples),
                        ("--scale-samples", large, args.scale_samples)):
        if n > len(r.curves):
            parser.error(f"{label}: {n} trials per sweep, but only {len(r.curves)} recorded")
    storage = tempfile.mkdtemp(prefix="scenetune-warm-start-")
    runs, notes, count = [], [], [0]
    total = len(seeds) * 18  # per seed: 1 + 5 same task, 4 unrelated, 1 + 7 scale

    def run(scenario: str, policy: str, seed: int, r, n: int, fix: dict, **kw) -> dict:
        t0 = time.time()
        name = f"{scenario}-{len([x for x in runs if x['scenario'] == scenario])}-{seed}"
        result = sweep(r, seed, n, storage, name, fix, **kw)
        reach = to_target(result, r, TOLERANCE)
        count[0] += 1
        print(f"[{count[0]}/{total}] {scenario} {policy} seed {seed}: best {result['best']:.4f}, "
              f"{'reached' if reach['reached'] else 'never reached'} at {reach['compute_s']:.1f} s / "
              f"{reach['epochs']} epochs (of {result['total_compute_s']:.1f} s / {result['total_epochs']}), "
              f"{time.time() - t0:.0f} s wall", file=sys.stderr, flush=True)
        if policy != "earlier":
            runs.append({"scenario": scenario, "policy": policy, "seed": seed, **result, **reach})
        return result

    try:
        for seed in seeds:
            # Scenario 1 (and 3's source): one earlier sweep of another seed, same space.
            earlier = run("same", "earlier", seed + 100, rec, args.num_samples, fixed)
            read = earlier_trials(rec, earlier["folder"], space, fixed, space, fixed)
            warm = as_answered(rec, read.trials, earlier["folder"])
            states = pd.Series([t.state.name for t in warm]).value_counts().to_dict()
            notes.append(f"seed {seed}, same task: {read.line()} ({states}); earlier best {earlier['best']:.4f}")
            run("same", "cold", seed, rec, args.num_samples, fixed)
            run("same", "warm", seed, rec, args.num_samples, fixed, warm=warm)
            run("same", "warm, prior for the start-up only", seed, rec, args.num_samples, fixed, warm=warm,
                prior_for_startup=True)
            run("same", "warm, sampled configs", seed, rec, args.num_samples, fixed, warm=read.trials)
            run("same", "peer: Ray points+rewards", seed, rec, args.num_samples, fixed, ray_points=ray_peer(warm))
            # Scenario 3: the same trials made unrelated.
            run("unrelated", "warm: values reversed", seed, rec, args.num_samples, fixed,
                warm=reversed_values(warm))
            run("unrelated", "warm: params shuffled", seed, rec, args.num_samples, fixed,
                warm=shuffled_params(warm, seed + 200))
            run("unrelated", "warm: values reversed, prior for the start-up only", seed, rec, args.num_samples,
                fixed, warm=reversed_values(warm), prior_for_startup=True)
            run("unrelated", "warm: params shuffled, prior for the start-up only", seed, rec, args.num_samples,
                fixed, warm=shuffled_params(warm, seed + 200), prior_for_startup=True)

            # Scenario 2: an earlier sweep at image_size 32, the new one at 48.
            n = args.scale_samples
            earlier = run("scale", "earlier", seed + 100, small, n, fix_small)
            left_out = earlier_trials(small, earlier["folder"], scale_space, fix_small, scale_space, fix_large,
                                      other_sizes="leave_out")
            assert not left_out.trials, left_out.line()  # (a) leaves every one out, so (a) = cold
            read = earlier_trials(small, earlier["folder"], scale_space, fix_small, scale_space, fix_large)
            assert len(read.trials) == sum(read.prior.values()), read.line()  # (b), the prior of (d)
            prior = as_answered(small, read.trials, earlier["folder"])
            rerun = reruns(prior, RERUN_K, rec.mode)  # scenetune's own choice
            notes.append(f"seed {seed}, scale: (a) {left_out.line()}; (b) {len(prior)} trials as the prior; "
                         f"earlier best {earlier['best']:.4f}")
            run("scale", "(a) left out = cold", seed, large, n, fix_large)
            run("scale", "(b) prior", seed, large, n, fix_large, warm=prior)
            run("scale", "(e) prior for the start-up only", seed, large, n, fix_large, warm=prior,
                prior_for_startup=True)
            run("scale", "(b) prior, sampled configs", seed, large, n, fix_large, warm=read.trials)
            run("scale", f"(c) rerun_best {RERUN_K}", seed, large, n, fix_large, enqueue=rerun)
            run("scale", f"(d) prior + rerun_best {RERUN_K}", seed, large, n, fix_large, warm=prior, enqueue=rerun)
            run("scale", "peer: Ray points+rewards (prior)", seed, large, n, fix_large, ray_points=ray_peer(prior))
            for folder in os.listdir(storage):  # this seed's experiments, read already
                shutil.rmtree(os.path.join(storage, folder), ignore_errors=True)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
        ray.shutdown()
    wall = time.time() - started

    runs = pd.DataFrame(runs)
    scale_from = args.fixture if args.scale_fixture == "same" else args.scale_fixture
    print(f"recordings: {os.path.relpath(args.fixture)} ({len(rec.curves)} trials); scenario 2: "
          f"{os.path.relpath(scale_from)} ({len(small.curves)} trials at image_size {SMALL}, {len(large.curves)} at "
          f"{LARGE})")
    print(f"{len(seeds)} seeds (new sweeps {seeds[0]}..{seeds[-1]}, each earlier sweep seed + 100); TPE + ASHA "
          f"(grace {rec.scheduler.get('grace_period')}, factor {rec.scheduler.get('reduction_factor')}), one trial "
          "at a time; compute = recorded fit seconds of the new sweep; a sweep that never reaches the target "
          "counts all it ran; \"5 pt\": the same for a target 5 points from the best\n")
    for title, scenario, r, cold, goal in (
            ((f"1. same task, same space ({args.num_samples} trials, warm from one earlier {args.num_samples}-trial "
              "sweep)"), "same", rec, "cold", 0.5),
            ((f"2. scale: earlier sweep at image_size {SMALL}, new sweep at {LARGE} ({args.scale_samples} trials "
              "each, image_size not searched)"), "scale", large, "(a) left out = cold", 0.7),
            (f"3. unrelated task, built from scenario 1's earlier trials ({args.num_samples} trials)", "unrelated",
             rec, "cold", 1.2)):
        chosen = runs[runs["scenario"] == scenario]
        if scenario == "unrelated":
            chosen = pd.concat([runs[(runs["scenario"] == "same") & (runs["policy"] == "cold")], chosen])
        print(f"## {title}; target {r.best - TOLERANCE:.4f} (best recorded {r.best:.4f} - {TOLERANCE})")
        print(table(chosen, r, cold, goal, [p for p in chosen["policy"].unique() if p != cold]) + "\n")
    print("per-seed compute to target (s; * = never reached: all it ran)")
    runs["cell"] = [f"{c:.1f}" + ("" if r else "*") for c, r in zip(runs["compute_s"], runs["reached"])]
    print(runs.pivot_table(index=["scenario", "policy"], columns="seed", values="cell", aggfunc="first",
                           sort=False).to_markdown())
    print("\nthe earlier sweeps as scenetune's warm start reads them:")
    for line in notes:
        print("  " + line)
    print(f"\nwall time {wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
