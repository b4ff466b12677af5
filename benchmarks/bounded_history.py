"""TPE over a bounded history (search/bounded_history.py) against TPE over
the whole study, side by side in one process: what a suggestion costs and
what the search finds, past the window.

    .venv/bin/python benchmarks/bounded_history.py             # 2,500 trials, 3 tasks x 3 seeds: run it alone
    .venv/bin/python benchmarks/bounded_history.py --quick     # 1,600 trials, 1 seed
    .venv/bin/python benchmarks/bounded_history.py --windows 500,1000   # windows of other sizes beside

Each task is an Optuna study of ``--trials`` trials asked and told one at a
time (scenetune's TPE settings: its seed, 10 random start-up trials), with
TPE as scenetune builds it (``BoundedHistorySampler``: 500 finished
trials at most, the 50 best of all) and TPE alone. Three kinds of task, so
that the default is not judged on one: a classifier's known learning curve
(the driver benchmark's, its final epoch: a log-scaled rate, a dropout and
two choices), a 6-dimensional Rosenbrock valley (continuous, correlated)
and a mixed space whose best lies in a narrow corner (four choices, two
numbers). ``--windows`` adds rows for windows of other sizes (the 50 best of
all kept in each). Reported: the best value at trial 1,000 and at the last
trial, the regret of the last 500 trials (how good the trials TPE proposes
late are), and milliseconds per suggestion over the last 500.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import optuna

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scenetune.search.bounded_history import WINDOW, BoundedHistorySampler  # noqa: E402

F, C = optuna.distributions.FloatDistribution, optuna.distributions.CategoricalDistribution
LATE = 500  # the last trials whose regret and suggestion time are reported


def classifier(p: dict) -> float:
    """The driver benchmark's known curve at epoch 9 (accuracy, maximized: negated)."""
    quality = 1.0 - 0.3 * abs(math.log10(p["learning_rate"]) + 2.5) - abs(p["dropout"] - 0.2)
    quality = min(1.0, max(0.05, quality - (0.1 if p["dense_units"] == 32 else 0.0)))
    return -(0.1 + 0.85 * quality * (1 - 0.6 ** 9) - (0.02 if p["cnn_filters"] == 16 else 0.0))


def rosenbrock(p: dict) -> float:
    x = [p[f"x{i}"] for i in range(6)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(5))


def corner(p: dict) -> float:
    penalty = sum(0.0 if p[f"c{i}"] == "d" else 1.0 for i in range(4))
    return penalty + 10 * abs(p["u"] - 0.93) + 5 * abs(math.log10(p["v"]) + 3.7)


TASKS = {
    "classifier curve": (classifier, {"learning_rate": F(1e-4, 1e-2, log=True), "dropout": F(0.0, 0.5),
                                      "dense_units": C([32, 64, 128]), "cnn_filters": C([16, 32])}),
    "Rosenbrock 6-d": (rosenbrock, {f"x{i}": F(-2.0, 2.0) for i in range(6)}),
    "narrow corner": (corner, {**{f"c{i}": C(["a", "b", "c", "d"]) for i in range(4)}, "u": F(0.0, 1.0),
                               "v": F(1e-5, 1e-1, log=True)}),
}


def run(objective, space: dict, sampler, trials: int) -> dict:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=sampler, direction="minimize")
    values, spent = [], []
    for _ in range(trials):
        started = time.perf_counter()
        trial = study.ask(fixed_distributions=space)
        spent.append(time.perf_counter() - started)
        values.append(objective(trial.params))
        study.tell(trial, values[-1])
    return {"best at 1,000": min(values[:1000]), "best": min(values), "late": values[-LATE:],
            "ms": 1000 * statistics.fmean(spent[-LATE:])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=2500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1,600 trials, 1 seed")
    parser.add_argument("--windows", default=str(WINDOW),
                        help=f"comma-separated window sizes to run (default: scenetune's, {WINDOW})")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.seeds = 1600, 1
    try:
        windows = sorted({int(w) for w in args.windows.split(",")})
    except ValueError:
        parser.error(f"--windows: comma-separated whole numbers, not {args.windows!r}")
    if min(windows) <= 50 or args.trials <= max(windows) + LATE:
        parser.error(f"--trials: more than {max(windows) + LATE} (the largest window, then {LATE} trials past "
                     "it), and each window above 50")
    print(f"\n.venv/bin/python benchmarks/bounded_history.py {' '.join(sys.argv[1:] if argv is None else argv)}\n")
    print("| task | sampler | best at trial 1,000 | best at the end | mean of the last 500 | ms a suggestion, "
          "last 500 |\n|:--|:--|--:|--:|--:|--:|")
    for task, (objective, space) in TASKS.items():
        samplers = [(f"window {w:,}{' (scenetune)' if w == WINDOW else ''}", lambda s, w=w: BoundedHistorySampler(
            optuna.samplers.TPESampler(seed=s, n_startup_trials=10), window=w)) for w in windows]
        samplers.append(("TPE alone", lambda s: optuna.samplers.TPESampler(seed=s, n_startup_trials=10)))
        for label, make in samplers:
            runs = [run(objective, space, make(seed), args.trials) for seed in range(args.seeds)]
            median = lambda key: statistics.median(r[key] for r in runs)
            late = statistics.median(statistics.fmean(r["late"]) for r in runs)
            print(f"| {task} | {label} | {median('best at 1,000'):.4g} | {median('best'):.4g} | {late:.4g} | "
                  f"{median('ms'):.1f} |", flush=True)
    print(f"\nmedians over {args.seeds} seed(s), {args.trials:,} trials each; values are minimized "
          "(the classifier's accuracy negated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
