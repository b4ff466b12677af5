"""Which early-stopping defaults keep the best trials? Replay candidates on a recording.

Replays the recorded sweep of ``benchmarks/search_efficiency.py`` (64 trials
of the basic CNN, every one trained to its last epoch: the "grid" that tells
which configurations are best when trained to the end) with TPE, the default
searcher, and each candidate scheduler setting, ``--repeats`` seeds each, and
prints per candidate:

  best median / p10 / worst   the sweep's best val_accuracy over the seeds;
  within 1 pt                 the share of seeds whose best came within 1 point
                              of the best recorded configuration;
  compute                     mean simulated compute (recorded fit seconds of
                              every epoch run), and relative to no stopping;
  top-5 stopped               the regret of stopping: of the replayed trials
                              whose configuration is among the 5 best recorded
                              ones at their last epoch, the share the scheduler
                              stopped before the end (pooled over seeds).

    .venv/bin/python benchmarks/early_stopping.py                 # 30 seeds, about 15 minutes
    .venv/bin/python benchmarks/early_stopping.py --repeats 5     # a quick look
"""

from __future__ import annotations

import argparse
import os
import sys

import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# name -> (scheduler, settings over the recorded spec's, ASHA ranks by)
CANDIDATES = {
    "none": ("none", {}, None),
    "asha-accuracy (before)": ("asha", {}, ("val_accuracy", "max")),
    "asha-loss": ("asha", {}, ("val_loss", "min")),
    "asha-2brackets-accuracy": ("asha", {"brackets": 2}, ("val_accuracy", "max")),
    "asha-2brackets-loss": ("asha", {"brackets": 2}, ("val_loss", "min")),
    "asha-3brackets-loss": ("asha", {"brackets": 3}, ("val_loss", "min")),
    "asha-grace2-loss": ("asha", {"grace_period": 2}, ("val_loss", "min")),
    "hyperband-accuracy": ("hyperband", {}, ("val_accuracy", "max")),
    "hyperband-loss": ("hyperband", {}, ("val_loss", "min")),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixture", default=os.path.join(HERE, "fixtures", "search-recorded"),
                        help="a recorded experiment whose trials all ran to the end")
    parser.add_argument("--repeats", type=int, default=30, help="seeds per candidate")
    parser.add_argument("--num-samples", type=int, default=32, help="trials per replayed sweep")
    parser.add_argument("--searcher", default="tpe", choices=["tpe", "random"])
    parser.add_argument("--candidates", default=",".join(CANDIDATES), help="comma-separated names")
    parser.add_argument("--csv", help="write the per-seed rows here")
    args = parser.parse_args()
    chosen = [c.strip() for c in args.candidates.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in CANDIDATES]
    if unknown:
        parser.error(f"--candidates: unknown {unknown}; known: {list(CANDIDATES)}")

    import ray

    from scenetune.commands.replay import load_recording, replay_once

    ray.init(address="local", include_dashboard=False, logging_level="ERROR")
    plain = load_recording(args.fixture, rank_by=("val_accuracy", "max"))
    finals = {trial: curve[-1][0] for trial, curve in plain.curves.items()}
    top5 = set(sorted(finals, key=finals.get)[-5:])
    best = plain.best
    rows = []
    for n, name in enumerate(chosen):
        scheduler, settings, rank_by = CANDIDATES[name]
        rec = load_recording(args.fixture, rank_by=rank_by)
        for seed in range(args.repeats):
            out = replay_once(rec, args.searcher, scheduler, seed, args.num_samples, settings=settings)
            replayed, stopped = set(out["replayed_trials"]), set(out["stopped_trials"])
            rows.append({"candidate": name, "seed": seed, "best": out["best"], "compute_s": out["compute_s"],
                         "top5_replayed": len(replayed & top5), "top5_stopped": len(stopped & top5),
                         "stopped": out["stopped_early"]})
            print(f"\r{name}: {seed + 1}/{args.repeats} ({n + 1}/{len(chosen)} candidates)", end="",
                  file=sys.stderr, flush=True)
            if args.csv:  # as it goes: a long run stopped midway keeps its replays
                pd.DataFrame(rows).to_csv(args.csv, index=False)
        print(file=sys.stderr)
    runs = pd.DataFrame(rows)
    if args.csv:
        runs.to_csv(args.csv, index=False)
    grouped = runs.groupby("candidate", sort=False)
    table = pd.DataFrame({
        "best median": grouped["best"].median(),
        "best p10": grouped["best"].quantile(0.1),
        "best worst": grouped["best"].min(),
        "within 1 pt": grouped["best"].apply(lambda b: f"{int((b >= best - 0.01 - 1e-9).sum())}/{len(b)}"),
        "compute s": grouped["compute_s"].mean(),
        "trials stopped": grouped["stopped"].mean(),
        "top-5 stopped": grouped.apply(lambda g: g["top5_stopped"].sum() / max(g["top5_replayed"].sum(), 1),
                                       include_groups=False),
        "top-5 replayed": grouped["top5_replayed"].sum(),
    })
    if "none" in table.index:
        table.insert(5, "compute vs none", table["compute s"] / table.loc["none", "compute s"])
    print(f"{args.fixture}: best recorded val_accuracy {best:.4f}; top 5 at their last epoch "
          f"{sorted(round(finals[t], 4) for t in top5)}")
    print(f"{args.searcher}, {args.repeats} seeds x {args.num_samples} trials per candidate\n")
    print(table.reset_index().to_markdown(index=False, floatfmt=".3f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
