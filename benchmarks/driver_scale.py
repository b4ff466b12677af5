"""The Ray Tune driver over a very long sweep: scenetune's against Ray Tune
driven directly, side by side (issue "Every road to a cluster", item 6).

    .venv/bin/python benchmarks/driver_scale.py                 # 10,000 trials a side: run it alone
    .venv/bin/python benchmarks/driver_scale.py --trials 2000   # a quicker look
    .venv/bin/python benchmarks/driver_scale.py --trials 2000 --profile scenetune   # cProfile of one side

Each side runs in a process of its own with its own embedded Ray (8 logical CPUs,
its own temp folder): N trials 8 at a time, each up to 9 epochs of a known curve
that cost nothing, so what is measured is the driver.
- scenetune: ``search.run.drive()`` (what ``scenetune sweep`` runs once Ray
  is up) on a classifier spec with the defaults: TPE with scenetune's sampler
  settings, ASHA with rung quorum holds by ``val_loss``, the concurrency
  limit, warm processes, 2 checkpoints kept a trial, the ``ray_compat``
  patches, SweepClock and ProgressLine. Swapped: no data check or split, and
  the classifier's train function is ``cheap_classifier`` (below), which
  reports and checkpoints through scenetune's ``report_epoch`` as the real
  trainables do. Ray starts as in ``connect()``, less the worker hook that
  imports TensorFlow (a trial-process cost).
- Ray Tune alone: ``OptunaSearch`` with the same TPE settings, ``ASHAScheduler``
  (max_t 9, grace 1, factor 3, by ``val_loss``), ``max_concurrent_trials=8``,
  ``reuse_actors=True``, the same metrics reported, no checkpoints.

A driver callback records the wall time and the driver's VmRSS at each
trial's end (after the sweep, its VmRSS and highest VmRSS, VmHWM). Windows:
the first and the last 1,000 trials (half in shorter runs); per trial in
each, the driver's CPU time and the wall time in its parts (wrapped here):
the snapshot (``TuneController.save_to_dir``), new trials (TPE's suggestion,
the Trial made), the searcher's results, the scheduler, the callbacks, GC.

What grew before issue 24's fixes: forced snapshots, ASHA's and the progress
line's scans of every trial on every event (paced, ``ray_compat``, and
skipped); TPE's suggestion walking every finished trial (a window of 500,
``search/bounded_history.py``), ASHA's choice walking every trial (sorted
rungs), every finished trial's statistics and results (cut,
``search/finished_trials.py``), saved state JSON (compressed,
``search/packed_trial_state.py``), factory and log key (``shared_trial_parts``),
each snapshot's upload of all trials' logs (``incremental_upload``), the end's
read of all results (``unused_results``). ``--without`` leaves one out.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import math
import os
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURE = os.path.join(ROOT, "benchmarks", "figures", "driver-scale.png")
SIDES, LABELS = ("scenetune", "ray"), {"scenetune": "scenetune", "ray": "Ray Tune alone"}
WITHOUT = {"handoff": "keep_starting_processes", "packing": "pack_ended_trial_state",  # --without: search.run's name
           "sharing": "share_placement_group_factories", "one-key": "one_key_for_encoder_fallbacks",
           "upload": "upload_changed_files", "dataframes": "no_trial_dataframes"}
EPOCHS, FACTOR, CONCURRENCY = 9, 3, 8
SPACE = {"learning_rate": {"loguniform": [1.0e-4, 1.0e-2]}, "dense_units": {"choice": [32, 64, 128]},
         "dropout": {"uniform": [0.0, 0.5]}, "cnn_filters": {"choice": [16, 32]}}
FIXED = {"backbone": "basic_cnn", "epochs": EPOCHS, "weights": "none"}


# --- the trials (Ray's workers import this file as ``driver_scale``: nothing heavy at import) ---

def epoch_metrics(config: dict, epoch: int) -> dict:
    """A known learning curve of the configuration, with the classifier's metrics."""
    quality = 1.0 - 0.3 * abs(math.log10(config["learning_rate"]) + 2.5) - abs(config["dropout"] - 0.2)
    quality = min(1.0, max(0.05, quality - (0.1 if config["dense_units"] == 32 else 0.0)))
    noise = random.Random(f"{config['learning_rate']}/{epoch}").gauss(0.0, 0.02)
    accuracy = 0.1 + 0.85 * quality * (1 - 0.6 ** epoch) + noise
    return {"epoch": epoch, "loss": 2.4 * (1 - accuracy), "accuracy": accuracy, "val_loss": 2.3 * (1 - accuracy) + 0.05,
            "val_accuracy": accuracy, "epoch_time_s": 0.001, "train_time_s": 0.001 * epoch, "images_per_s": 1e6,
            "trainable_params": 1000, "total_params": 1000}


def cheap_classifier(config: dict) -> None:
    """The classifier's reporting and checkpoints (resumed when held at a rung), without training."""
    from ray import tune

    from scenetune.trainables.reporting import report_epoch

    start = 0
    if tune.get_checkpoint() is not None:
        with tune.get_checkpoint().as_directory() as folder, open(os.path.join(folder, "epoch")) as f:
            start = int(f.read())
    for epoch in range(start + 1, config["epochs"] + 1):
        def save(folder: str, epoch=epoch) -> None:
            with open(os.path.join(folder, "epoch"), "w") as f:
                f.write(str(epoch))
        report_epoch(epoch_metrics(config, epoch), epoch, config["epochs"], config.get("checkpoint_epochs"), save)


def cheap_trial(config: dict) -> None:
    """Ray Tune alone: the same metrics every epoch (with the three that scenetune's reporting adds)."""
    from ray import tune

    for epoch in range(1, config["epochs"] + 1):
        tune.report({**epoch_metrics(config, epoch), "process_rss_mb": rss_mb(), "checkpoint_s": 0.0,
                     "checkpoint_mb": 0.0})


def rss_mb(field: str = "VmRSS:") -> float:  # "VmHWM:": the highest VmRSS so far
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


# --- one side, in its own process ---

SPENT: dict[str, float] = defaultdict(float)  # site -> seconds spent in it so far
CALLS: dict[str, int] = defaultdict(int)


def timed(owner, name: str, site: str) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            SPENT[site] += time.perf_counter() - started
            CALLS[site] += 1

    setattr(owner, name, wrapper)


def instrument(side: str) -> None:
    """Time the driver's parts (a perf_counter pair a call) and its garbage collections."""
    from ray.tune.callback import CallbackList
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    events = {"on_step_begin", "on_step_end", "on_trial_start", "on_trial_result", "on_trial_complete"}
    sites = [(TuneController, {"save_to_dir"}, "snapshot"),
             (TuneController, {"_maybe_update_trial_queue"}, "new trials"),
             (OptunaSearch, {"on_trial_result", "on_trial_complete"}, "searcher: results"),
             (CallbackList, events, "callbacks")]
    if side == "scenetune":
        from scenetune.search.clock import SweepClock
        from scenetune.search.progress import ProgressLine
        from scenetune.search.schedulers import ASHA

        sites += [(ASHA, {"choose_trial_to_run", "on_trial_result"}, "scheduler"),
                  *((cls, set(vars(cls)) & events, "callbacks: scenetune's") for cls in (SweepClock, ProgressLine))]
    else:
        sites += [(FIFOScheduler, {"choose_trial_to_run"}, "scheduler"),
                  (AsyncHyperBandScheduler, {"on_trial_result"}, "scheduler")]
    for owner, names, site in sites:
        for name in names:
            timed(owner, name, site)
    started = [0.0]

    def collected(phase, info):
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            SPENT["garbage collection"] += time.perf_counter() - started[0]
    gc.callbacks.append(collected)


def make_probe(total: int, window: int, label: str):
    from ray.tune import Callback

    marks = {0, window, total - 1 - window, total - 1}

    class Probe(Callback):
        """Wall time and driver RSS at each trial's end; the time spent by site at the windows' ends."""

        def __init__(self):
            self.times, self.rss, self.marks = array("d"), array("d"), {}
            self.results = self.errors = 0

        def setup(self, **info):
            self.started, self.rss_start = time.perf_counter(), rss_mb()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.results += 1

        def on_trial_complete(self, iteration, trials, trial, **info):
            index = len(self.times)
            self.times.append(time.perf_counter() - self.started)
            self.rss.append(rss_mb())
            if index in marks:
                self.marks[index] = {**SPENT, "cpu": time.process_time(), "results": self.results,
                                     "snapshots": CALLS["snapshot"]}
            if (index + 1) % max(1, total // 10) == 0:
                print(f"{label}: {index + 1}/{total} trials, {self.times[-1]:.0f} s, driver RSS {self.rss[-1]:.0f} MB",
                      file=sys.stderr, flush=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.errors += 1
            self.on_trial_complete(iteration, trials, trial)

    return Probe()


def start_ray(args) -> None:
    import ray

    # "local": a fresh embedded Ray, not a `ray start` cluster of this machine; its own temp folder
    ray.init(address="local", num_cpus=CONCURRENCY, include_dashboard=False, object_store_memory=100 * 2**20,
             configure_logging=True, logging_level="WARNING", logging_config=ray.LoggingConfig(log_level="WARNING"),
             _temp_dir=os.path.join(args.storage, "ray"))


def run_scenetune(args, probe) -> None:
    import dataclasses

    from scenetune.core import registry
    from scenetune.search import run, tuner
    from scenetune.search.clock import SweepClock
    from scenetune.search.spec import parse_spec

    for part in args.without:  # scenetune with these patches left out (WITHOUT)
        setattr(run, WITHOUT[part], contextlib.nullcontext if part == "dataframes" else lambda: False)
    record = registry.TRAINABLES["classifier"]
    registry.TRAINABLES["classifier"] = dataclasses.replace(record, train="driver_scale:cheap_classifier")
    os.makedirs(data := os.path.join(args.storage, "data"), exist_ok=True)
    spec = parse_spec({
        "name": "scenetune", "trainable": "classifier", "data": {"root": data}, "storage": args.storage,
        "metric": "val_accuracy", "mode": "max", "space": SPACE, "fixed": FIXED, "resources": {"cpu": 1},
        "search": {"algorithm": "optuna", "sampler": "tpe", "num_samples": args.trials,
                   "max_concurrent": CONCURRENCY, "seed": 0},
        "scheduler": {"name": "asha", "max_t": EPOCHS, "grace_period": 1, "reduction_factor": FACTOR}})
    run.prepare = lambda spec, checked=False: tuner.Prepared(spec, spec.experiment_uri, os.path.join(data, "split.csv"),
                                                            ["a", "b"])
    build = tuner.build_tuner
    run.build_tuner = lambda prepared, callbacks=None, quiet=False: build(prepared, [*(callbacks or []), probe], quiet)
    run.drive(spec, resume=False, verbose=False, clock=SweepClock())


def run_ray(args, probe) -> None:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {"learning_rate": FloatDistribution(1e-4, 1e-2, log=True), "dropout": FloatDistribution(0.0, 0.5),
             "dense_units": CategoricalDistribution([32, 64, 128]), "cnn_filters": CategoricalDistribution([16, 32])}
    searcher = OptunaSearch(space=space, metric="val_accuracy", mode="max",
                            sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=10))
    scheduler = ASHAScheduler(time_attr="training_iteration", metric="val_loss", mode="min", max_t=EPOCHS,
                              grace_period=1, reduction_factor=FACTOR)
    tune.Tuner(tune.with_resources(cheap_trial, {"cpu": 1}), param_space=dict(FIXED),
               tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=args.trials,
                                           max_concurrent_trials=CONCURRENCY, reuse_actors=True),
               run_config=tune.RunConfig(name="ray", storage_path=args.storage, callbacks=[probe], verbose=0)).fit()


def run_side(args) -> int:
    window = min(1000, args.trials // 2)
    instrument(args.side)
    probe = make_probe(args.trials, window, args.side)
    start_ray(args)
    profiler = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    (run_scenetune if args.side == "scenetune" else run_ray)(args, probe)
    fit_s = time.perf_counter() - started
    if profiler:
        profiler.disable()
        for order, count in (("cumulative", 45), ("tottime", 30)):
            pstats.Stats(profiler, stream=sys.stderr).sort_stats(order).print_stats(count)
    with open(args.out, "w") as f:
        json.dump({"times": list(probe.times), "rss": list(probe.rss), "rss_start": probe.rss_start, "window": window,
                   "rss_after": rss_mb(), "rss_peak": rss_mb("VmHWM:"),
                   "marks": probe.marks, "results": probe.results, "errors": probe.errors, "fit_s": fit_s}, f)
    return 0


# --- both sides: the table, the figure ---

SITES = ("snapshot", "new trials", "searcher: results", "scheduler", "callbacks", "callbacks: scenetune's",
         "garbage collection")


def summary(run: dict) -> dict:
    """The table's figures of one side; a window's are (first, last) pairs."""
    times, rss, w = run["times"], run["rss"], run["window"]
    n, marks = len(times), {int(k): v for k, v in run["marks"].items()}
    row = {"trials": n, "errors": run["errors"], "results": run["results"], "fit_s": run["fit_s"],
           "first_s": (times[w] - times[0]) / w, "last_s": (times[n - 1] - times[n - 1 - w]) / w,
           "rss_start": run["rss_start"], "rss_window": rss[w - 1], "rss_end": rss[-1],
           "growth": rss[-1] - run["rss_start"], "rss_after": run.get("rss_after", math.nan),
           "peak": run.get("rss_peak", math.nan) - run["rss_start"]}  # (not in the runs recorded before)
    row["ratio"] = row["last_s"] / row["first_s"]
    spans = [(marks[a], marks[b]) for a, b in ((0, w), (n - 1 - w, n - 1)) if a in marks and b in marks]
    if len(spans) == 2:
        delta = lambda key, a, b: b.get(key, 0.0) - a.get(key, 0.0)
        for key in ("results", "snapshots"):
            row[key + "/trial"] = [delta(key, a, b) / w for a, b in spans]
        row["ms/snapshot"] = [1000 * delta("snapshot", a, b) / max(1, delta("snapshots", a, b)) for a, b in spans]
        for key in ("cpu",) + SITES:
            row[key] = [1000 * delta(key, a, b) / w for a, b in spans]
    return row


def table(s: dict, r: dict, w: str) -> str:
    lines = ["| | scenetune | Ray Tune alone | scenetune / Ray |", "|:--|--:|--:|--:|",
             f"| trials ended (errored) | {s['trials']:,} ({s['errors']}) | {r['trials']:,} ({r['errors']}) | - |"]
    for label, key, fmt in (
            ("results (epochs) reported", "results", ",d"), ("wall time of the trials, s", "fit_s", ".0f"),
            (f"s per trial, first {w}", "first_s", ".4f"), (f"s per trial, last {w}", "last_s", ".4f"),
            ("last / first (goal <= 1.25)", "ratio", ".2f"), ("driver RSS at start, MB", "rss_start", ".0f"),
            (f"driver RSS after {w} trials, MB", "rss_window", ".0f"), ("driver RSS at the end, MB", "rss_end", ".0f"),
            ("RSS growth, MB (goal < 250)", "growth", ".0f"), ("driver RSS after the sweep, MB", "rss_after", ".0f"),
            ("highest RSS (VmHWM) above the start, MB", "peak", ".0f")):
        lines.append(f"| {label} | {s[key]:{fmt}} | {r[key]:{fmt}} | {s[key] / r[key]:.2f} |")
    lines.append(f"| *per trial, first {w} → last {w}:* | | | |")
    for label, key, fmt in (("results (epochs)", "results/trial", ".2f"), ("snapshots", "snapshots/trial", ".3f"),
                            ("ms each snapshot", "ms/snapshot", ".0f"), ("driver CPU, ms", "cpu", ".1f"),
                            *((f"ms in {site}", site, ".1f") for site in SITES)):
        a, b = s.get(key), (None if key == "callbacks: scenetune's" else r.get(key))
        pair = lambda v, fmt=fmt: "-" if v is None else f"{v[0]:{fmt}} → {v[1]:{fmt}}"
        ratios = f"{a[0] / b[0]:.2f} → {a[1] / b[1]:.2f}" if a and b and b[0] and b[1] else "-"
        lines.append(f"| {label} | {pair(a)} | {pair(b)} | {ratios} |")
    return "\n".join(lines)


def figure(runs: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    n = max(len(run["times"]) for run in runs.values())
    k = max(10, n // 50)
    for side, run in runs.items():
        t = run["times"]
        top.plot(range(k + 1, len(t) + 1), [(t[i] - t[i - k]) / k for i in range(k, len(t))], label=LABELS[side])
        bottom.plot(range(1, len(t) + 1), run["rss"], label=LABELS[side])
    top.set(ylabel=f"s per trial (rolling, {k} trials)", title=f"The Ray Tune driver over {n:,} trials, 8 at a time")
    bottom.set(ylabel="driver RSS, MB", xlabel="trials ended")
    [(ax.grid(alpha=0.3), ax.legend()) for ax in (top, bottom)]
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--figure", default=FIGURE)
    parser.add_argument("--profile", choices=SIDES, help="run only this side, under cProfile (to stderr)")
    parser.add_argument("--without", action="append", choices=sorted(WITHOUT), default=[],
                        help="scenetune's side without this patch of search/ (repeatable): process_handoff, "
                             "packed_trial_state, the two of shared_trial_parts, incremental_upload, unused_results")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # what a side's own process runs
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.trials < 4:
        parser.error("--trials: at least 4")
    if args.side:
        return run_side(args)
    storage = tempfile.mkdtemp(prefix="driver-scale-")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    runs = {}
    try:
        for side in [args.profile] if args.profile else SIDES:
            out, log = os.path.join(storage, f"{side}.json"), os.path.join(storage, f"{side}.log")
            command = [sys.executable, os.path.abspath(__file__), "--side", side, "--trials", str(args.trials),
                       "--storage", os.path.join(storage, side), "--out", out]
            command += ["--profile", side] if args.profile else []
            command += [f"--without={part}" for part in args.without]
            with open(log, "w") as f:  # Ray's own lines; ours (and a profile) on stderr
                done = subprocess.run(command, cwd=ROOT, env=env, stdout=f, check=False)
            if done.returncode != 0:
                sys.exit(f"driver_scale: the {side} side failed (exit {done.returncode}):\n{open(log).read()[-3000:]}")
            with open(out) as f:
                runs[side] = json.load(f)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    rows = {side: summary(run) for side, run in runs.items()}
    if args.profile:
        print(json.dumps(rows, indent=1))
        return 0
    print("\n.venv/bin/python benchmarks/driver_scale.py " + " ".join(sys.argv[1:] if argv is None else argv) + "\n")
    print(table(rows["scenetune"], rows["ray"], f"{runs['scenetune']['window']:,}"))
    figure(runs, args.figure)
    print(f"\nfigure: {os.path.relpath(args.figure, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
