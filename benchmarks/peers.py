"""scenetune against the in-process tools a Keras or Optuna user would pick:
same search space, trial budget, data, split, decode cache, input pipeline
and model, so that only the search system differs. One process runs the
methods one after the other, for several seeds, and prints one table.

    .venv/bin/python benchmarks/peers.py --quick            # 2 seeds, 8 trials, 3 epochs: a smoke run
    .venv/bin/python benchmarks/peers.py --csv peers.csv    # 5 seeds, 24 trials, 9 epochs

Methods: scenetune (TPE + ASHA, its defaults: warm trial processes, checkpoints
at ASHA's rungs and every quarter of the epochs); scenetune-cold (a fresh process per trial, a checkpoint every
epoch: the baseline); kerastuner-hyperband (keras_tuner.Hyperband, factor 3, one
iteration; it picks its own number of trials); optuna-hyperband (TPESampler +
HyperbandPruner, factor 3, and a Keras callback that reports and prunes).
Workload: synthetic scenes written once (seed 0), the basic CNN at 32 px. The
seed is the search's and the model's (weights, shuffling), never the data's.
Not timed: the data, the decode cache (built up front, read by all), importing
TensorFlow with a one-epoch warm-up fit, and Ray's start (once, before any
method). scenetune runs two trials at once (1 CPU each); the peers one at a time.

Figures per (seed, method), times in seconds from the method's start:
  wall_s                start to finish;
  best_val_acc          the best val_accuracy of any epoch of any trial (argmax of the
                        predictions on the val split, as the classifier trainable reports it);
  time_to_target_s      when some epoch first reached target - 0.01 (--tolerance), target being
                        the best val_accuracy any method found on that seed; NaN if never;
  epochs, trials        epochs trained (all trials together), trials run;
  fit_s                 the sum of every epoch's training time (its validation excluded);
  overhead_s_per_trial  the mean over trials of (trial wall time - its fit time): start-up,
                        model build, validation, checkpoints, reporting.
The table gives each method's median over seeds (a seed that never reached the
target counts as infinitely slow) and scenetune's median time to target over
the fastest peer's (goal <= 0.8).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from peer_methods import (  # noqa: E402
    FACTOR,
    FIGURES,
    FIXED,
    FULL,
    METHODS,
    PEERS,
    QUICK,
    SPACE,
    Bench,
    Run,
    load_bench,
    run_kerastuner,
    run_optuna,
    trial_setup,
)


def scenetune_times(uri: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``Run.epochs`` and ``Run.trials`` of a finished sweep, timed by its
    driver clock (``sweep_timings.json``, :mod:`scenetune.search.clock`), which counts
    from ``run_sweep``'s start. A trial starts when Ray starts it (a new worker
    once up, a reused one once reset: a new process's spawn is outside its
    span, though inside wall_s and time_to_target_s) and ends at its end; an
    epoch's val_accuracy is known when its result reaches the driver."""
    from scenetune.analysis import load_experiment

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epochs = load_experiment(uri).epochs.rename(columns={"trial_id": "trial", "epoch_time_s": "epoch_s"})
    with open(os.path.join(uri, "sweep_timings.json")) as f:
        clock = json.load(f)["runs"][-1]["trials"]
    arrived = {(trial, i): at for trial, t in clock.items() for i, at in t["results"]}
    epochs["at_s"] = [arrived[key] for key in zip(epochs["trial"], epochs["training_iteration"])]
    trials = pd.DataFrame([(trial, t["starts"][0], t["end"] if t["end"] is not None else t["results"][-1][1])
                           for trial, t in clock.items() if t["starts"]], columns=["trial", "start_s", "end_s"])
    return epochs[["trial", "epoch", "val_accuracy", "epoch_s", "at_s"]], trials


def run_scenetune(method: str, seed: int, bench: Bench) -> Run:
    from scenetune.search.run import run_sweep
    from scenetune.search.spec import parse_spec

    args = bench.args
    spec = {"name": f"peers-{seed}-{method}", "trainable": "classifier",
            "data": {"dataset": "mit67", "root": bench.root, "categories": "all",
                     "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 42}},
            "metric": "val_accuracy", "mode": "max",
            "search": {"algorithm": "optuna", "sampler": "tpe", "num_samples": args.trials, "max_concurrent": 2,
                       "seed": seed},
            "scheduler": {"name": "asha", "max_t": args.epochs, "grace_period": 1, "reduction_factor": FACTOR},
            "resources": {"cpu": 1, "gpu": 0}, "failure": {"max_failures": 1}, "checkpoint": {"num_to_keep": 1},
            "storage": os.path.join(bench.workdir, "results"), "space": SPACE,
            "fixed": {**FIXED, "epochs": args.epochs, "seed": seed, "cache_dir": os.path.join(bench.workdir, "cache")}}
    if method == "scenetune-cold":
        spec["resources"]["reuse_processes"] = False
        spec["checkpoint"]["frequency"] = 1
    if method in ("scenetune-cold", "scenetune-before"):  # ASHA's defaults before issue 18: one bracket, by accuracy
        spec["scheduler"].update(metric="val_accuracy", mode="max", brackets=1)
    started = time.perf_counter()
    uri = run_sweep(parse_spec(spec))
    return Run(time.perf_counter() - started, *scenetune_times(uri))



RUNNERS = {"scenetune": run_scenetune, "scenetune-before": run_scenetune, "scenetune-cold": run_scenetune,
           "kerastuner-hyperband": run_kerastuner, "optuna-hyperband": run_optuna}


def figures(run: Run, target: float, tolerance: float) -> dict:
    """The figures of one run (the module's docstring says what each means)."""
    fit = run.epochs.groupby("trial")["epoch_s"].sum()
    spans = run.trials.set_index("trial")
    overhead = (spans["end_s"] - spans["start_s"] - fit.reindex(spans.index, fill_value=0.0)).mean()
    reached = run.epochs.loc[run.epochs["val_accuracy"] >= target - tolerance - 1e-9, "at_s"]
    return {"wall_s": run.wall_s, "best_val_acc": run.epochs["val_accuracy"].max(), "target": target,
            "time_to_target_s": reached.min() if len(reached) else math.nan, "epochs": len(run.epochs),
            "trials": len(run.trials), "fit_s": fit.sum(), "overhead_s_per_trial": overhead}


def summarize(rows: pd.DataFrame, tolerance: float = 0.01) -> pd.DataFrame:
    """Per method, the median over seeds of each figure, and the seeds that
    reached the target; the spread of the best (10th percentile, worst) and
    the share of seeds whose best came within ``tolerance`` of the best any
    run of any method found (the best configuration known for the task)."""
    by = rows.groupby("method", sort=False)
    table = by[FIGURES].median()
    table["time_to_target_s"] = by["time_to_target_s"].apply(lambda s: s.fillna(math.inf).median())
    table["reached"] = by["time_to_target_s"].apply(lambda s: f"{s.notna().sum()}/{len(s)}")
    table["best_p10"] = by["best_val_acc"].quantile(0.1)
    table["best_worst"] = by["best_val_acc"].min()
    known = rows["best_val_acc"].max()
    table["near_known_best"] = by["best_val_acc"].apply(lambda b: f"{int((b >= known - tolerance - 1e-9).sum())}/{len(b)}")
    return table.reset_index()


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args() -> argparse.Namespace:
    from scenetune.trainables.data.synth import SCENES

    parser = Parser(description=__doc__.split("\n\n")[0])
    for flag, what in (("seeds", "seeds 0..N-1"), ("trials", "trials of scenetune and Optuna"),
                       ("epochs", "a trial's most epochs (ASHA's max_t, Hyperband's max)"),
                       ("classes", "synthetic scene classes"), ("per-class", "synthetic images per class")):
        parser.add_argument(f"--{flag}", type=int, help=f"{what} (default {FULL[flag.replace('-', '_')]})")
    parser.add_argument("--data", help="dataset root: used as is if it holds Images/, else written (default: temp)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, of " + ", ".join(METHODS))
    parser.add_argument("--tolerance", type=float, default=0.01,
                        help="time to target: to within this of the seed's best val_accuracy (default 0.01)")
    parser.add_argument("--csv", help="write the per-seed rows to this CSV file")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 8 trials, 3 epochs (a smoke run)")
    parser.add_argument("--fresh", action="store_true",
                        help="run each method on each seed in its own Python process (a user's fresh start: "
                             "TensorFlow's per-model leak does not build up across methods and seeds)")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "SEED", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for key, value in (QUICK if args.quick else FULL).items():
        setattr(args, key, value if getattr(args, key) is None else getattr(args, key))
    for key in ("seeds", "trials", "epochs"):
        if getattr(args, key) < 1:
            parser.error(f"--{key}: must be at least 1, got {getattr(args, key)}")
    if not 1 <= args.classes <= len(SCENES):
        parser.error(f"--classes: between 1 and {len(SCENES)} (the synthetic scene kinds), got {args.classes}")
    if not 0 <= args.tolerance < 1:
        parser.error(f"--tolerance: between 0 and 1 (a val_accuracy difference), got {args.tolerance}")
    if args.per_class < 5:
        parser.error(f"--per-class: at least 5 (for a 60/20/20 split of each class), got {args.per_class}")
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not args.methods or set(args.methods) - set(METHODS) or len(set(args.methods)) < len(args.methods):
        parser.error(f"--methods: distinct names of {', '.join(METHODS)}, got {','.join(args.methods) or 'none'}")
    if "kerastuner-hyperband" in args.methods and importlib.util.find_spec("keras_tuner") is None:
        parser.error("--methods: kerastuner-hyperband needs keras-tuner (pip install 'scenetune[bench]')")
    return args


def one_run(method: str, seed: int, bench: Bench) -> Run:
    with contextlib.redirect_stdout(sys.stderr):  # Ray's and the tools' chatter; stdout: the table
        return RUNNERS[method](method, seed, bench)


def fresh_run(method: str, seed: int, bench: Bench) -> Run:
    """``method`` on ``seed`` in a new Python process running this script."""
    root, workdir = bench.root, bench.workdir
    out = os.path.join(workdir, f"run-{method}-{seed}.pkl")
    flags = [f"--{k.replace('_', '-')}={getattr(bench.args, k)}" for k in ("trials", "epochs", "classes", "per_class")]
    subprocess.run([sys.executable, os.path.abspath(__file__), "--child", method, str(seed), out, "--data", root,
                    "--workdir", workdir, *flags], check=True, stdout=sys.stderr)
    with open(out, "rb") as f:
        return pickle.load(f)


def warm_up(bench: Bench, ray_too: bool) -> None:
    """TensorFlow's one-time start-up (and Ray's), before any clock."""
    model, train = trial_setup(bench, {}, 0)
    model.fit(train, epochs=1, verbose=0, shuffle=False)
    if ray_too:
        from scenetune.search.cluster_connect import connect

        connect(None)


def main() -> int:
    args = parse_args()
    if args.child:
        method, seed, out = args.child
        bench = load_bench(args, os.path.abspath(args.data), args.workdir)
        warm_up(bench, method.startswith("scenetune"))
        with open(out, "wb") as f:
            pickle.dump(one_run(method, int(seed), bench), f)
        return 0
    workdir = tempfile.mkdtemp(prefix="scenetune-peers-")
    try:
        import ray

        from scenetune.trainables.data.synth import write_synthetic

        root = os.path.abspath(args.data or os.path.join(workdir, "synth"))
        if not os.path.isdir(os.path.join(root, "Images")) or not os.listdir(os.path.join(root, "Images")):
            print(f"writing {args.classes} x {args.per_class} synthetic scenes to {root}", file=sys.stderr, flush=True)
            write_synthetic(root, args.classes, args.per_class, size=64, seed=0)
        bench = load_bench(args, root, workdir)
        if not args.fresh:
            warm_up(bench, ray_too=True)
        rows = []
        for n, seed in enumerate(range(args.seeds), 1):
            runs = {}
            for method in args.methods:
                runs[method] = fresh_run(method, seed, bench) if args.fresh else one_run(method, seed, bench)
                print(f"seed {n}/{args.seeds}: {method} ... {runs[method].wall_s:.1f} s", file=sys.stderr, flush=True)
            target = max(run.epochs["val_accuracy"].max() for run in runs.values())
            rows += [{"seed": seed, "method": m, **figures(run, target, args.tolerance)} for m, run in runs.items()]
            if args.csv:  # as it goes: a long run stopped midway keeps its seeds
                pd.DataFrame(rows).to_csv(args.csv, index=False)
        ray.shutdown()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = pd.DataFrame(rows)
    if args.csv:
        rows.to_csv(args.csv, index=False)
    table = summarize(rows, args.tolerance)
    print(f"\n{len(bench.classes)} classes, {len(bench.train[0])} train / {len(bench.val[0])} val images, "
          f"{args.trials} trials of at most {args.epochs} epochs; medians over {args.seeds} seeds; "
          f"{os.cpu_count()} CPUs\n")
    print(table.round({f: 3 if f.startswith("best") else 1 for f in FIGURES + ["best_p10", "best_worst"]})
          .to_markdown(index=False))
    medians = table.set_index("method")
    peers = [m for m in PEERS if m in medians.index]
    if "scenetune" in medians.index and peers:
        fastest = min(peers, key=lambda m: medians.loc[m, "time_to_target_s"])
        ours, theirs = medians.loc["scenetune", "time_to_target_s"], medians.loc[fastest, "time_to_target_s"]
        if math.isinf(ours) and math.isinf(theirs):
            verdict = "n/a (both medians infinite: see reached)"
        elif math.isinf(theirs):
            verdict = "0 (the peers' median seed never came within reach of the target: goal <= 0.8: met)"
        else:
            verdict = f"{ours / theirs:.2f} (goal <= 0.8: {'met' if ours / theirs <= 0.8 else 'NOT met'})"
        print(f"\nratio_time_to_target: scenetune {ours:.1f} s / {fastest} {theirs:.1f} s = {verdict}")
        floor = medians.loc[peers, "best_val_acc"].max() - 0.01
        print(f"accuracy: the best peer's median best_val_acc - 1 point = {floor:.3f}; "
              f"scenetune's {medians.loc['scenetune', 'best_val_acc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
