"""Anytime performance: the best validation accuracy a search has found, as
a function of wall time and of epochs trained, for scenetune's defaults, its
candidate defaults and the peers, on several kinds of task, over seeds.

    .venv/bin/pip install -e ".[cpu,bench]"
    .venv/bin/python benchmarks/anytime.py --tasks digits --seeds 2 --methods scenetune,kerastuner-hyperband
    .venv/bin/python benchmarks/anytime.py --tasks synth,digits,photos --seeds 10 --before e5036fe --out anytime
    .venv/bin/python benchmarks/anytime.py --out anytime --reference     # the best known configuration of each task
    .venv/bin/python benchmarks/anytime.py --out anytime --table         # tables and curves from what is recorded

Every run is a whole process started by this script and timed from its
start (imports, Ray's start and the data check included), one after the
other on the same data: scenetune's command line (this tree's, or
``--before``'s from a git worktree, as ``scenetune-before``), KerasTuner's
Hyperband and Optuna with its HyperbandPruner (benchmarks/anytime_runs.py;
the tasks in benchmarks/anytime_tasks.py). Runs are appended to
``OUT/runs.csv`` and ``OUT/epochs.csv`` as they finish, so a long
benchmark stopped midway keeps what it ran, and a second call adds seeds.

The target of a task is its best known configuration: ``--reference``
retrains the 5 best configurations any scenetune run found, 3 times each,
to the last epoch with the trainable's own model and input pipeline, and
takes the best mean over the retrains of each one's best validation
accuracy (the same statistic a search reports). "To target" is the time
(or the epochs) until a run's best first came within ``--tolerance`` of it.
Without a reference the table uses the best any run reached (flagged).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from anytime_runs import METHODS, PEERS, ROOT, before_view, run_peer, run_scenetune  # noqa: E402
from anytime_tasks import TASKS, dataset  # noqa: E402


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args() -> argparse.Namespace:
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="synth,digits,photos", help=f"comma-separated, of {', '.join(TASKS)}")
    parser.add_argument("--methods", default="scenetune,scenetune-before,kerastuner-hyperband,optuna-hyperband,"
                                             "random-asha", help="comma-separated, of " + ", ".join(METHODS))
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--first-seed", type=int, default=0, help="start at this seed (default 0)")
    parser.add_argument("--before", help="the commit whose command line runs as scenetune-before")
    parser.add_argument("--code", help="a commit whose command line runs scenetune's other methods (default: this "
                                       "checkout; a commit lets the checkout change while the benchmark runs)")
    parser.add_argument("--out", default="anytime", help="folder of runs.csv, epochs.csv, tables and figures")
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "scenetune-anytime-data"),
                        help="where the tasks' datasets are written once (default: a temp folder)")
    parser.add_argument("--tolerance", type=float, default=0.01, help="within this of the target (default 0.01)")
    parser.add_argument("--reference", action="store_true", help="retrain the best configurations: the targets")
    parser.add_argument("--table", action="store_true", help="only print the tables and draw the curves")
    args = parser.parse_args()
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not args.tasks or set(args.tasks) - set(TASKS):
        parser.error(f"--tasks: names of {', '.join(TASKS)}, got {','.join(args.tasks) or 'none'}")
    if not args.methods or set(args.methods) - set(METHODS):
        parser.error(f"--methods: names of {', '.join(METHODS)}, got {','.join(args.methods) or 'none'}")
    if "scenetune-before" in args.methods and not args.table and not args.reference and not args.before:
        parser.error("--methods: scenetune-before needs --before COMMIT")
    if args.seeds < 1 or args.first_seed < 0:
        parser.error("--seeds: at least 1; --first-seed: at least 0")
    if not 0 <= args.tolerance < 1:
        parser.error(f"--tolerance: between 0 and 1, got {args.tolerance}")
    return args


def append(path: str, rows: pd.DataFrame) -> None:
    rows.to_csv(path, mode="a", header=not os.path.exists(path), index=False)


def run_all(args) -> None:
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="scenetune-anytime-")
    views, worktrees = {}, []
    try:
        for label, commit in (("before", args.before if "scenetune-before" in args.methods else None),
                              ("code", args.code)):
            if commit:
                worktree = os.path.join(work, f"{label}-tree")
                subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", worktree, commit], check=True,
                               capture_output=True)
                worktrees.append(worktree)
                views[label] = before_view(worktree, os.path.join(work, f"{label}-view"))
        total, done = len(args.tasks) * args.seeds * len(args.methods), 0
        roots = {name: dataset(TASKS[name], args.data_dir) for name in args.tasks}
        for seed in range(args.first_seed, args.first_seed + args.seeds):  # every task gets each seed in turn
            for name in args.tasks:
                task, root = TASKS[name], roots[name]
                for method in args.methods:
                    rundir = tempfile.mkdtemp(dir=work)
                    try:
                        if method in PEERS:
                            wall, epochs, trials = run_peer(task, method, seed, root, rundir, views.get("code"))
                        else:
                            code = views.get("before" if method == "scenetune-before" else "code")
                            wall, epochs, trials = run_scenetune(task, method, seed, root, rundir, code)
                    except RuntimeError as e:  # one failed run is reported, the others go on
                        print(f"FAILED: {e}", file=sys.stderr, flush=True)
                        continue
                    key = {"task": name, "method": method, "seed": seed}
                    append(os.path.join(args.out, "epochs.csv"), epochs.assign(**key))
                    append(os.path.join(args.out, "trials.csv"), trials.assign(**key))
                    append(os.path.join(args.out, "runs.csv"), pd.DataFrame([{**key, "wall_s": wall}]))
                    shutil.rmtree(rundir, ignore_errors=True)
                    done += 1
                    print(f"{done}/{total}: {name} {method} seed {seed}: {wall:.1f} s, {len(epochs)} epochs, "
                          f"best {epochs['val_accuracy'].max():.3f}", file=sys.stderr, flush=True)
    finally:
        for worktree in worktrees:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", worktree], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def reference(args) -> None:
    """The best known configuration of each task (the module's docstring)."""
    from peer_methods import Recorder, epoch_clock, load_bench, trial_setup

    trials = pd.read_csv(os.path.join(args.out, "trials.csv"))
    epochs = pd.read_csv(os.path.join(args.out, "epochs.csv"))
    path = os.path.join(args.out, "reference.json")
    known = json.load(open(path)) if os.path.exists(path) else {}
    for name in args.tasks:
        task = TASKS[name]
        best = (epochs[epochs["task"] == name].groupby(["method", "seed", "trial"])["val_accuracy"].max()
                .reset_index().merge(trials[trials["task"] == name], on=["method", "seed", "trial"]))
        best = best[best["config"].notna() & (best["config"] != "")].sort_values("val_accuracy", ascending=False)
        configs = best.drop_duplicates("config").head(5)
        bench = load_bench(argparse.Namespace(epochs=task.epochs, trials=task.trials), dataset(task, args.data_dir),
                           tempfile.mkdtemp(prefix="anytime-ref-"), task.space, task.fixed)
        rows = []
        for config in configs["config"]:
            params = {key: value for key, value in flatten(json.loads(config)).items()
                      if key in {k for k in task.space}}
            for seed in range(3):
                recorder = Recorder()
                model, train = trial_setup(bench, params, 100 + seed)
                with recorder.trial():
                    model.fit(train, epochs=task.epochs, callbacks=[epoch_clock(recorder, bench)], verbose=0,
                              shuffle=False)
                rows.append({"config": json.dumps(params, sort_keys=True), "seed": seed,
                             "best": max(e["val_accuracy"] for e in recorder.epochs)})
                print(f"{name}: {params} seed {seed}: {rows[-1]['best']:.3f}", file=sys.stderr, flush=True)
        means = pd.DataFrame(rows).groupby("config")["best"].mean().sort_values(ascending=False)
        known[name] = {"best_known": float(means.iloc[0]), "config": json.loads(means.index[0]),
                       "retrains": rows}
        with open(path, "w") as f:
            json.dump(known, f, indent=1)


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def run_figures(epochs: pd.DataFrame, target: float) -> dict:
    """One run's figures: epochs are in the order their results were known."""
    best = epochs["val_accuracy"].cummax().to_numpy()
    reached = np.flatnonzero(best >= target - 1e-9)
    return {"best": float(best[-1]), "epochs": len(epochs), "trials": epochs["trial"].nunique(),
            "to_target_s": float(epochs["at_s"].iloc[reached[0]]) if len(reached) else math.inf,
            "to_target_epochs": int(reached[0]) + 1 if len(reached) else math.inf,
            "first_result_s": float(epochs["at_s"].iloc[0])}


def tables(args) -> None:
    runs = pd.read_csv(os.path.join(args.out, "runs.csv"))
    epochs = pd.read_csv(os.path.join(args.out, "epochs.csv"))
    path = os.path.join(args.out, "reference.json")
    known = json.load(open(path)) if os.path.exists(path) else {}
    for name in [t for t in args.tasks if t in set(runs["task"])]:
        task_epochs = epochs[epochs["task"] == name]
        flagged = name not in known
        best_known = task_epochs["val_accuracy"].max() if flagged else known[name]["best_known"]
        target = best_known - args.tolerance
        rows = []
        for (method, seed), run in task_epochs.groupby(["method", "seed"], sort=False):
            wall = runs[(runs["task"] == name) & (runs["method"] == method) & (runs["seed"] == seed)]["wall_s"].iloc[-1]
            rows.append({"method": method, "seed": seed, "wall_s": wall, **run_figures(run, target)})
        table = summarize(pd.DataFrame(rows), [m for m in args.methods if m in set(task_epochs["method"])])
        print(f"\n### {name}: {TASKS[name].what}; target {target:.3f} "
              f"({'best any run reached, no reference yet' if flagged else 'best known configuration'} "
              f"{best_known:.3f} less {args.tolerance:g})\n")
        print(table.to_markdown(index=False))
        draw(name, task_epochs, target, os.path.join(args.out, f"anytime-{name}.png"), args.methods)


def summarize(rows: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Medians over seeds (a run that never reached the target counts as
    infinitely slow), with the 25th-75th percentiles of time to target."""
    out = []
    for method in order:
        r = rows[rows["method"] == method]
        q = r["to_target_s"].quantile([0.25, 0.75], interpolation="nearest")
        out.append({"method": method, "seeds": len(r),
                    "to target s (median)": r["to_target_s"].median(),
                    "to target s (p25-p75)": f"{q.iloc[0]:.0f}-{q.iloc[1]:.0f}",
                    "to target epochs": r["to_target_epochs"].median(),
                    "reached": f"{int(np.isfinite(r['to_target_s']).sum())}/{len(r)}",
                    "best (median)": round(r["best"].median(), 4), "epochs": r["epochs"].median(),
                    "trials": r["trials"].median(), "wall s": round(r["wall_s"].median(), 1),
                    "first result s": round(r["first_result_s"].median(), 1)})
    table = pd.DataFrame(out)
    peers = table[table["method"].isin(PEERS)]
    if len(peers):
        fastest = peers["to target s (median)"].min()
        # no peer's median run reached the target: the ratio is not defined (shown empty)
        table["to target vs fastest peer"] = (table["to target s (median)"] / fastest).round(2) \
            if math.isfinite(fastest) else np.nan
        table["epochs vs KerasTuner"] = (table["epochs"] / table.loc[table["method"] == "kerastuner-hyperband",
                                                                      "epochs"].median()).round(2)
    return table.round({"to target s (median)": 1})


def draw(name: str, epochs: pd.DataFrame, target: float, path: str, order: list[str]) -> None:
    """Median best-so-far over seeds against wall time and against epochs,
    with the 25th-75th percentile band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    wall_grid = np.linspace(0, epochs["at_s"].max(), 200)
    epoch_grid = np.arange(1, epochs.groupby(["method", "seed"]).size().max() + 1)
    for method in [m for m in order if m in set(epochs["method"])]:
        runs = [r for _, r in epochs[epochs["method"] == method].groupby("seed")]
        for ax, grid, x in ((axes[0], wall_grid, "at_s"), (axes[1], epoch_grid, None)):
            curves = []
            for run in runs:
                best = run["val_accuracy"].cummax().to_numpy()
                xs = run[x].to_numpy() if x else np.arange(1, len(run) + 1)
                idx = np.searchsorted(xs, grid, side="right") - 1
                curves.append(np.where(idx >= 0, best[np.clip(idx, 0, None)], np.nan))
            curves = np.array(curves)
            median = np.nanmedian(curves, axis=0) if len(curves) else grid * np.nan
            line, = ax.plot(grid, median, label=method)
            ax.fill_between(grid, np.nanpercentile(curves, 25, axis=0), np.nanpercentile(curves, 75, axis=0),
                            color=line.get_color(), alpha=0.15)
    for ax, label in ((axes[0], "seconds from the command"), (axes[1], "epochs trained")):
        ax.axhline(target, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(label)
        ax.set_ylabel("best val_accuracy so far (median of seeds)")
        ax.set_ylim(max(0.0, target - 0.3), min(1.0, target + 0.05))
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{name}: {TASKS[name].what} (dotted: the target)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    args = parse_args()
    if args.reference:
        reference(args)
    elif not args.table:
        run_all(args)
    tables(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
