"""Reading Ray Tune's experiment-state file at the end of a long sweep: whole
against one trial at a time (``core/state_file.py``; issue 24, item 6).

    .venv/bin/python benchmarks/state_file_read.py                  # 10,000 trials
    .venv/bin/python benchmarks/state_file_read.py --state FILE     # a real experiment_state-*.json

What ``scenetune sweep`` does once Ray Tune returns (``search.run.finished_trials``:
has every trial ended?), in one process on the same file: the file read
whole and parsed with ``json.loads`` (before), and its ``trial_data`` decoded
one entry at a time from a stream (now). Each trial's status is parsed from
its JSON in both. The file (unless ``--state``): N trials, each a pair of
indented JSON texts of the sizes Ray Tune 2.60 writes (12 KB and 12 KB, hex
pickles inside: 240 MB at 10,000). Memory: tracemalloc's peak above the
start of each read (Python's own allocations, where both reads allocate).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def write_state(path: str, trials: int) -> None:
    rng = random.Random(0)
    with open(path, "w") as f:
        f.write('{"trial_data": [')
        for i in range(trials):
            trial = {"trial_id": f"{i:08x}", "status": "TERMINATED", "config": {"lr": rng.random()},
                     "placement_group_factory": rng.randbytes(2000).hex(), "storage": rng.randbytes(3800).hex()}
            metadata = {"start_time": 1.0 + i, "checkpoint_manager": rng.randbytes(5900).hex()}
            f.write(("," if i else "") + json.dumps([json.dumps(trial, indent=2), json.dumps(metadata, indent=2)]))
        f.write('], "runner_data": {"_iteration": 1}, "stats": {"start_time": 1.0}}')


def whole(path: str) -> int:
    from scenetune.core import storage

    state = json.loads(storage.read_text(path))
    return sum(json.loads(trial)["status"] == "TERMINATED" for trial, _ in state["trial_data"])


def streamed(path: str) -> int:
    from scenetune.core.state_file import trial_data

    return sum(json.loads(trial)["status"] == "TERMINATED" for trial, _ in trial_data(path))


def measure(read, path: str) -> tuple[int, float, float]:
    tracemalloc.start()
    started = time.perf_counter()
    ended = read(path)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return ended, seconds, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--state", help="an experiment_state-*.json to read instead of a written one")
    args = parser.parse_args()
    if args.trials < 1:
        parser.error("--trials: at least 1")
    if args.state and not os.path.isfile(args.state):
        parser.error(f"--state: no file {args.state}")
    with tempfile.TemporaryDirectory() as folder:
        path = args.state or os.path.join(folder, "experiment_state.json")
        if not args.state:
            write_state(path, args.trials)
        rows = {name: measure(read, path) for name, read in (("whole (before)", whole), ("streamed (now)", streamed))}
        size = os.path.getsize(path) / 2**20
    print(f"\n.venv/bin/python benchmarks/state_file_read.py {' '.join(sys.argv[1:])}\n")
    print(f"experiment state: {size:.0f} MB, {rows['whole (before)'][0]:,} trials ended\n")
    (_, s0, m0), (_, s1, m1) = rows.values()
    print("| read | s | peak Python memory, MB |\n|:--|--:|--:|")
    for name, (_, seconds, peak) in rows.items():
        print(f"| {name} | {seconds:.2f} | {peak:.0f} |")
    print(f"| streamed / whole | {s1 / s0:.2f} | {m1 / m0:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
