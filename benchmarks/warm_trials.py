"""The quickstart sweep, an earlier commit against this tree, side by side.

    .venv/bin/python benchmarks/warm_trials.py                      # baseline 8074ffa, 3 rounds
    .venv/bin/python benchmarks/warm_trials.py --baseline HEAD~3 --rounds 5

Each round runs ``scenetune sweep sweeps/quickstart.yaml`` once with the
baseline's code (a git worktree of ``--baseline``, put first on PYTHONPATH
for the driver and, through the environment, for its embedded Ray's workers)
and once with this tree's, alternating which goes first, each in its own
process with its own embedded Ray, on the data of ``make demo``
(``data/synth``, written if missing). The same spec, seed and data; only the
code differs.

Per run: the command's wall time (Ray start included), the trials, the epochs
they trained, their fit time (the sum of each trial's final ``train_time_s``)
and the per-trial overhead the same way for both: (wall time x the 2 trial
slots - fit time) / trials, so process starts, imports, reporting and idle
slots all count. This tree's runs also print the driver's own per-trial
figure (``sweep_timings.json``: from Ray starting a trial to its end, minus its
fit time). The summary is the median over rounds and the ratio baseline/new.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENETUNE = [sys.executable, "-P", "-c", "import sys; from scenetune.cli import main; sys.exit(main(sys.argv[1:]))"]
SLOTS = 2  # the quickstart's search.max_concurrent


def read_trials(experiment: str) -> list[list[dict]]:
    trials = []
    for name in sorted(os.listdir(experiment)):
        path = os.path.join(experiment, name, "result.json")
        if os.path.isfile(path):
            with open(path) as f:
                trials.append([json.loads(line) for line in f if line.strip()])
    return trials


def run(code: str, label: str, storage: str, name: str) -> dict:
    env = {**os.environ, "PYTHONPATH": code, "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    done = subprocess.run([*SCENETUNE, "sweep", os.path.join(code, "sweeps", "quickstart.yaml"), "--name", name, "--storage", storage],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"warm_trials: the {label} sweep failed:\n{done.stderr[-3000:]}")
    experiment = os.path.join(storage, name)
    trials = read_trials(experiment)
    fit = sum(rows[-1]["train_time_s"] for rows in trials)
    row = {"code": label, "wall_s": wall, "trials": len(trials), "epochs": sum(len(r) for r in trials),
           "fit_s": fit, "slot_overhead_s": (wall * SLOTS - fit) / len(trials),
           "best_val_accuracy": max(r["val_accuracy"] for rows in trials for r in rows)}
    timings = os.path.join(experiment, "sweep_timings.json")
    if os.path.exists(timings):
        run_timings = json.load(open(timings))["runs"][-1]
        row.update(ray_start_s=run_timings.get("ray_start_s"), trial_overhead_s=run_timings.get("overhead_s"))
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="8074ffa", help="the commit to compare against (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds: give 1 or more")
    if not os.path.isdir(os.path.join(ROOT, "data", "synth", "Images")):
        subprocess.run([*SCENETUNE, "data", "synth", "data/synth", "--classes", "6", "--per-class", "60",
                        "--size", "64", "--seed", "0"], cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        baseline = os.path.join(tmp, "baseline")
        subprocess.run(["git", "worktree", "add", "--detach", baseline, args.baseline], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            rows = []
            for i in range(args.rounds):
                order = [("baseline", baseline), ("new", ROOT)]
                for label, code in order if i % 2 == 0 else order[::-1]:
                    row = run(code, label, os.path.join(tmp, "results"), f"{label}-{i}")
                    print(f"round {i + 1}/{args.rounds}: {label} {row['wall_s']:.1f} s", file=sys.stderr, flush=True)
                    rows.append({"round": i + 1, **row})
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", baseline], cwd=ROOT, capture_output=True)
    table = pd.DataFrame(rows)
    print(table.round(2).to_markdown(index=False))
    medians = table.groupby("code").median(numeric_only=True).drop(columns="round")
    print("\nmedian over rounds:\n" + medians.round(2).to_markdown())
    for key in ("wall_s", "slot_overhead_s"):
        ratio = medians.loc["baseline", key] / medians.loc["new", key]
        print(f"{key}: baseline / new = {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
