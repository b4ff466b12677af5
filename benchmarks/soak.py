"""A soak with faults on a multi-node Ray cluster on this machine: a sweep of
200 small classifier trials loses a worker node three times (a fresh node
takes its place each time) and its driver once (SIGKILL, then ``scenetune
sweep --resume``), then the same sweep runs on the same cluster without
faults, and the two are printed side by side.

The cluster is the tests' (tests/cluster/raycluster.py): a head of 0 CPUs
and worker nodes of 1 CPU, each ``ray start`` in PID, mount and UTS
namespaces of its own, lost nodes noticed in ~3 s
(tests/cluster/conftest.CLUSTER_ENV). Each sweep is ``scenetune sweep SPEC
--address CLUSTER`` as a process: basic_cnn without weights on 48 synthetic
images (``scenetune data synth``), Optuna TPE, ASHA and warm trial processes
as scenetune's defaults give, one trial per worker node at a time.

After each sweep (tests/cluster/soak_checks.check_experiment): every trial
ended (completed, or stopped by ASHA at a rung; errored is lost), no epoch
missing, an epoch run twice only after a fault that hit its trial, and
``scenetune best`` on the highest val_accuracy in the trials' files. Exit
status 1 when one of these fails, or a fault of the plan never came.

    .venv/bin/python benchmarks/soak.py                  # 200 trials of 3 epochs, 3 worker nodes
    .venv/bin/python benchmarks/soak.py --quick          # 30 trials of 2 epochs, 2 worker nodes
    .venv/bin/python benchmarks/soak.py --trials 100 --out /tmp/soak   # keep the experiments and logs

Needs root (namespaces) and ``unshare``, as tests/cluster does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tests.cluster.conftest import CLUSTER_ENV, SCENETUNE
from tests.cluster.raycluster import RayTestCluster
from tests.cluster.soak_checks import Soak, Verdict, check_experiment, soak_spec

# (fault, share of the trials started): spaced through the sweep, the driver
# kill between node kills, so that the last node kill hits the resumed driver.
PLAN = [("node", 0.15), ("node", 0.35), ("driver", 0.55), ("node", 0.75)]


def say(text: str) -> None:
    print(text, flush=True)


def run_sweep(cluster, out: str, name: str, args, plan) -> tuple[Soak, Verdict]:
    spec = soak_spec(name, os.path.join(out, "shared"), os.path.join(out, "data"), args.trials, args.epochs,
                     args.workers, seed=args.seed)
    spec_path = os.path.join(out, f"{name}.yaml")
    with open(spec_path, "w") as f:
        yaml.safe_dump(spec, f)
    logs = os.path.join(out, f"{name}-logs")
    os.makedirs(logs, exist_ok=True)
    experiment = os.path.join(out, "shared", name)
    say(f"\n== {name}: {args.trials} trials of {args.epochs} epochs on {len(cluster.workers())} worker nodes"
        f"{', faults: ' + ', '.join(f'{k} at {share:.0%}' for k, share in plan) if plan else ', no faults'}")
    soak = Soak(cluster, spec_path, experiment, args.trials, logs, plan=plan, say=say,
                status_every=args.status_every, timeout=args.timeout)
    soak.run()
    say(f"   sweep done in {soak.wall_s:.0f} s; checking {experiment}")
    verdict = check_experiment(experiment, args.trials, soak.faults)
    if len(soak.faults) != len(plan):
        verdict.problems.append(f"{len(plan) - len(soak.faults)} faults of the plan never came (the sweep ended)")
    expected_exits = [-9] * sum(kind == "driver" for kind, _ in plan) + [0]
    if soak.exits != expected_exits:
        verdict.problems.append(f"drivers exited {soak.exits}, not {expected_exits}: see {logs}")
    for line in verdict.problems:
        say(f"   FAILED: {line}")
    for line in verdict.notes:
        say(f"   note: {line}")
    say(f"   checks {'passed' if not verdict.problems else 'FAILED'}")
    return soak, verdict


def side_by_side(runs: dict[str, tuple[Soak, Verdict]]) -> None:
    (faulty, fv), (clean, cv) = runs["faults"], runs["clean"]
    ratio = faulty.wall_s / clean.wall_s if clean.wall_s else float("nan")

    def best(v: Verdict, scope: str) -> str:
        return f"{v.best[scope][1]:.4f} ({v.best[scope][0]})" if scope in v.best else "-"
    rows = [
        ("wall time (s)", f"{faulty.wall_s:.0f}", f"{clean.wall_s:.0f}"),
        ("from the first trial's start (s)", f"{faulty.end - faulty.first_trial_at:.0f}",
         f"{clean.end - clean.first_trial_at:.0f}"),
        ("wall time, faults / none", f"{ratio:.2f} (goal <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'})", ""),
        ("faults", "; ".join(f.kind for f in faulty.faults) or "-", "-"),
        ("trials in the experiment", str(fv.trials), str(cv.trials)),
        ("trials lost (errored or unfinished)", str(len(fv.lost)), str(len(cv.lost))),
        ("trials retried after a lost node", str(fv.retried), str(cv.retried)),
        ("epochs missing (the experiment)", str(len(fv.missing)), str(len(cv.missing))),
        ("epochs run again (result.json lines)", f"{fv.repeated} in {fv.rerun_trials} trials",
         f"{cv.repeated} in {cv.rerun_trials} trials"),
        ("epochs missing from result.json only", str(len(fv.json_gaps)), str(len(cv.json_gaps))),
        ("trial folders left out (unsaved at the kill)", str(len(fv.orphans)), str(len(cv.orphans))),
        ("best val_accuracy, last epoch", best(fv, "last"), best(cv, "last")),
        ("best val_accuracy, any epoch", best(fv, "all"), best(cv, "all")),
        ("checks", "passed" if not fv.problems else "FAILED", "passed" if not cv.problems else "FAILED"),
    ]
    width = max(len(r[0]) for r in rows)
    say(f"\n{'':{width}}  {'with faults':>36}  {'without':>24}")
    for label, a, b in rows:
        say(f"{label:{width}}  {a:>36}  {b:>24}")
    say("\nresident memory, MB (sum over each node's processes): once the first trial started -> once the last "
        "started (or the node was killed), and the peak")
    for run, soak in (("faults", faulty), ("clean", clean)):
        for label, (first, last, peak) in sorted(soak.memory_table().items()):
            say(f"  {run:7} {label:8} {first:7.0f} -> {last:7.0f}   peak {peak:7.0f}")
    for fault in faulty.faults:
        say("  fault " + fault.describe(faulty.start))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, help="trials per sweep (default 200; --quick: 30)")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default 3; --quick: 2)")
    parser.add_argument("--workers", type=int, help="worker nodes of 1 CPU (default 3; --quick: 2)")
    parser.add_argument("--quick", action="store_true", help="a small run: 30 trials of 2 epochs, 2 worker nodes")
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed (both sweeps)")
    parser.add_argument("--out", help="keep the data, experiments and logs here (default: a temp dir, removed)")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per sweep before giving up")
    args = parser.parse_args(argv)
    args.trials = args.trials or (30 if args.quick else 200)
    args.epochs = args.epochs or (2 if args.quick else 3)
    args.workers = args.workers or (2 if args.quick else 3)
    args.status_every = 15 if args.quick else 30
    out = args.out or tempfile.mkdtemp(prefix="soak-", dir="/tmp")
    os.makedirs(out, exist_ok=True)
    os.environ["SCENETUNE_CACHE"] = os.path.join(out, "cache")  # before the cluster: its nodes inherit it
    begun = time.time()
    say(f"soak: {args.trials} trials of {args.epochs} epochs, {args.workers} worker nodes; files in {out}")
    subprocess.run([SCENETUNE, "data", "synth", os.path.join(out, "data"), "--classes", "3", "--per-class", "16",
                    "--size", "40", "--seed", "0"], check=True, stdout=subprocess.DEVNULL)
    runs = {}
    try:
        with RayTestCluster("soak", env=CLUSTER_ENV) as cluster:
            cluster.start_head()
            cluster.ensure_workers(args.workers)
            say(f"cluster up: head {cluster.address} and {args.workers} worker nodes ({time.time() - begun:.0f} s)")
            runs["faults"] = run_sweep(cluster, out, "soak-faults", args, PLAN)
            runs["clean"] = run_sweep(cluster, out, "soak-clean", args, [])
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    side_by_side(runs)
    failed = [run for run, (_, verdict) in runs.items() if verdict.problems]
    say(f"\ntotal {time.time() - begun:.0f} s; " + (f"FAILED: {', '.join(failed)}" if failed else "every check passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
