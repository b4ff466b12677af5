"""One run of benchmarks/anytime.py: a method on a task for a seed, as a
whole process started by the benchmark, timed from that start.

scenetune's methods run its command line (``scenetune sweep SPEC``) as a
user would: this tree's, or an earlier commit's from a git worktree
(``--before``). The peers (KerasTuner's Hyperband, Optuna with its
HyperbandPruner) run in a child Python process of this script, which imports
what they need (TensorFlow included) on the clock. Every run leaves the same
record: one row per trained epoch (trial, epoch, val_accuracy, the epoch's
fit time, when its result was known, in seconds from the process's start)
and one per trial (its configuration).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time

import pandas as pd
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Spec settings of scenetune's methods, over the task's spec. "scenetune" is
# this tree's defaults; "scenetune-before" the same spec under --before's code.
CANDIDATES = {
    "scenetune": {},
    "scenetune-before": {},
    "random-asha": {"search": {"sampler": "random"},
                    "scheduler": {"brackets": 1, "quorum": 1, "metric": "val_accuracy", "mode": "max"}},
    "asha-1b": {"scheduler": {"brackets": 1, "quorum": 1}},
    "asha-2b": {"scheduler": {"brackets": 2, "quorum": 1}},
    "hold-1b": {"scheduler": {"brackets": 1, "quorum": 3}},
    "hold-2b": {"scheduler": {"brackets": 2, "quorum": 3}},
    "hold-1b-acc": {"scheduler": {"brackets": 1, "quorum": 3, "metric": "val_accuracy", "mode": "max"}},
    "hyperband": {"scheduler": {"name": "hyperband", "brackets": None, "quorum": None}},
}
PEERS = ["kerastuner-hyperband", "optuna-hyperband"]
METHODS = list(CANDIDATES) + PEERS

# The old code has no absolute start in sweep_timings.json: the runner adds it.
CLI = ("import sys\nimport scenetune.search.clock as clock\nto_dict = clock.SweepClock.to_dict\n"
       "def with_start(self):\n    d = to_dict(self)\n    d.setdefault('started_at', self.started)\n    return d\n"
       "clock.SweepClock.to_dict = with_start\nfrom scenetune.cli import main\nsys.exit(main(sys.argv[1:]))\n")


def merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def sweep_spec(task, method: str, seed: int, root: str, storage: str) -> dict:
    """The spec a user would write for ``task``: its space and fixed
    settings, every other key scenetune's default, and the method's settings."""
    spec = {"name": f"{task.name}-{method}-{seed}", "data": {"root": root},
            "search": {"num_samples": task.trials, "seed": seed},
            "scheduler": {"reduction_factor": task.factor}, "storage": storage,
            "space": task.space, "fixed": {**task.fixed, "epochs": task.epochs, "seed": seed}}
    return merge(spec, CANDIDATES[method])


def before_view(worktree: str, folder: str) -> str:
    """A folder to put first on PYTHONPATH so that ``import scenetune`` finds
    the worktree's code: its layers are top-level folders that the installed
    package maps into one name, so the view links them under ``scenetune/``."""
    view = os.path.join(folder, "scenetune")
    os.makedirs(view, exist_ok=True)
    for name in os.listdir(os.path.join(worktree, "scenetune")):
        os.symlink(os.path.join(worktree, "scenetune", name), os.path.join(view, name))
    for layer in ("core", "spaces", "trainables", "search", "analysis", "commands"):
        os.symlink(os.path.join(worktree, layer), os.path.join(view, layer))
    return folder


def run_scenetune(task, method: str, seed: int, root: str, workdir: str, code: str | None) -> tuple:
    """``scenetune sweep`` of the method's spec; ``code``: a PYTHONPATH view of older code."""
    storage = os.path.join(workdir, "results")
    spec = sweep_spec(task, method, seed, root, storage)
    path = os.path.join(workdir, f"{spec['name']}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(spec, f)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if code:
        env["PYTHONPATH"] = code
    launched = time.time()
    done = subprocess.run([sys.executable, "-P", "-c", CLI, "sweep", path], cwd=workdir, env=env,
                          capture_output=True, text=True)
    wall = time.time() - launched
    if done.returncode != 0:
        raise RuntimeError(f"{method} on {task.name} seed {seed} failed:\n{done.stderr[-3000:]}")
    return read_sweep(os.path.join(storage, spec["name"]), launched, wall)


def read_sweep(uri: str, launched: float, wall: float) -> tuple:
    """``(wall, epochs, trials)`` of a finished sweep: each epoch's result
    known when the driver received it (``sweep_timings.json``)."""
    import warnings

    from scenetune.analysis import load_experiment

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = load_experiment(uri)
    with open(os.path.join(uri, "sweep_timings.json")) as f:
        runs = json.load(f)["runs"]
    arrived = {}
    for run in runs:
        for trial, entry in run["trials"].items():
            for iteration, at in entry["results"]:
                arrived[(trial, iteration)] = run["started_at"] + at - launched
    epochs = exp.epochs.rename(columns={"trial_id": "trial", "epoch_time_s": "epoch_s"})
    epochs["at_s"] = [arrived[key] for key in zip(epochs["trial"], epochs["training_iteration"])]
    epochs = epochs[["trial", "epoch", "val_accuracy", "epoch_s", "at_s"]].sort_values("at_s")
    trials = pd.DataFrame([{"trial": trial, "config": json.dumps(config, sort_keys=True, default=str)}
                           for trial, config in exp.configs.items()])
    return wall, epochs.reset_index(drop=True), trials


def run_peer(task, method: str, seed: int, root: str, workdir: str, code: str | None = None) -> tuple:
    """A peer in a child process of this module (``child`` below); ``code``:
    a PYTHONPATH view of the scenetune code whose model and input pipeline it uses."""
    out = os.path.join(workdir, f"{task.name}-{method}-{seed}.pkl")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if code:
        env["PYTHONPATH"] = code
    launched = time.time()
    done = subprocess.run([sys.executable, os.path.abspath(__file__), task.name, method, str(seed), root, workdir,
                           repr(launched), out], env=env, capture_output=True, text=True)
    wall = time.time() - launched
    if done.returncode != 0:
        raise RuntimeError(f"{method} on {task.name} seed {seed} failed:\n{done.stderr[-3000:]}")
    with open(out, "rb") as f:
        epochs, trials = pickle.load(f)
    return wall, epochs, trials


def child(task_name: str, method: str, seed: int, root: str, workdir: str, launched: float, out: str) -> None:
    """Runs in the peer's own process: its clock started at ``launched``."""
    import argparse

    sys.path.insert(0, HERE)
    from anytime_tasks import TASKS
    from peer_methods import load_bench, run_kerastuner, run_optuna

    task = TASKS[task_name]
    args = argparse.Namespace(epochs=task.epochs, trials=task.trials)
    bench = load_bench(args, root, os.path.join(workdir, f"peer-{method}-{seed}"), task.space, task.fixed)
    runner = run_kerastuner if method == "kerastuner-hyperband" else run_optuna
    run = runner(method, seed, bench, origin=launched)
    trials = pd.DataFrame({"trial": sorted(run.epochs["trial"].unique()), "config": ""})
    with open(out, "wb") as f:
        pickle.dump((run.epochs.sort_values("at_s").reset_index(drop=True), trials), f)


if __name__ == "__main__":
    task_name, method, seed, root, workdir, launched, out = sys.argv[1:]
    child(task_name, method, int(seed), root, workdir, float(launched), out)
