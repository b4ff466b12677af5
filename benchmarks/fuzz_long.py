"""The fuzz tests (all of tests/fuzz) at length: Hypothesis' ``long`` profile
(random, not derandomized: each run tries new inputs) and every test's CI
example count multiplied by ``--scale``, in one pytest run. Prints, per
test, how many examples ran and how long they took, and the totals.

    .venv/bin/python benchmarks/fuzz_long.py                  # scale 10
    .venv/bin/python benchmarks/fuzz_long.py --scale 50       # longer
    .venv/bin/python benchmarks/fuzz_long.py -- -k spec -m "not slow"   # pytest arguments after --

The tests read the environment: SCENETUNE_FUZZ_PROFILE=long chooses the
profile (tests/fuzz/conftest.py) and SCENETUNE_FUZZ_EXAMPLES_SCALE the
multiplier (each test's ``@settings(max_examples=examples(n))``). A failure
prints Hypothesis' falsifying example and its ``@reproduce_failure`` blob;
failures are kept in the example database (.hypothesis/, ignored by git),
so the next run (CI's derandomized one included, when it shares the folder)
tries them first. Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

TEST = re.compile(r"^(\S+::\S+):\s*$")
COUNTS = re.compile(r"(\d+) passing(?: examples)?, (\d+) failing(?: examples)?,(?: and)? (\d+) invalid")
PHASE = re.compile(r"during (\w+) phase \(([\d.]+) seconds\)")


def statistics(output: str) -> dict[str, dict]:
    """Per test, from ``--hypothesis-show-statistics``: examples run (passing
    and failing, every phase), invalid ones (rejected by a filter or assume),
    and the seconds Hypothesis spent in its phases."""
    stats: dict[str, dict] = {}
    current = None
    for line in output.splitlines():
        test = TEST.match(line.strip())
        if test:
            current = stats.setdefault(test.group(1), {"examples": 0, "failing": 0, "invalid": 0, "seconds": 0.0})
            continue
        if current is None:
            continue
        phase = PHASE.search(line)
        if phase:
            current["seconds"] += float(phase.group(2))
        counts = COUNTS.search(line)
        if counts:
            passing, failing, invalid = map(int, counts.groups())
            current["examples"] += passing + failing
            current["failing"] += failing
            current["invalid"] += invalid
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10,
                        help="multiply every fuzz test's CI example count by this (default 10)")
    parser.add_argument("--profile", default="long", help="Hypothesis profile of tests/fuzz/conftest.py (default long)")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --), e.g. -k spec")
    args = parser.parse_args(argv)
    if args.scale < 1:
        parser.error("--scale must be 1 or more")

    env = dict(os.environ, SCENETUNE_FUZZ_PROFILE=args.profile, SCENETUNE_FUZZ_EXAMPLES_SCALE=str(args.scale))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics",
               "--timeout=0", os.path.join("tests", "fuzz"), *args.pytest_args]
    print(f"$ SCENETUNE_FUZZ_PROFILE={args.profile} SCENETUNE_FUZZ_EXAMPLES_SCALE={args.scale} "
          + shlex.join(command[2:]), flush=True)
    start = time.perf_counter()
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    output = run.stdout + run.stderr
    summary = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    if run.returncode != 0:  # the failures, as pytest wrote them
        print(output.split("= Hypothesis Statistics =")[0].rstrip())

    stats = statistics(output)
    if stats:
        width = max(len(name) for name in stats)
        print(f"\n{'test':<{width}}  {'examples':>9}  {'invalid':>8}  {'seconds':>8}  {'per example':>11}")
        for name, s in stats.items():
            each = f"{1000 * s['seconds'] / s['examples']:.1f} ms" if s["examples"] else "-"
            flag = f"  {s['failing']} FAILING" if s["failing"] else ""
            print(f"{name:<{width}}  {s['examples']:>9}  {s['invalid']:>8}  {s['seconds']:>8.1f}  {each:>11}{flag}")
    total = sum(s["examples"] for s in stats.values())
    print(f"\n{total} examples in {len(stats)} fuzz tests, {wall:.1f} s in all (profile {args.profile}, "
          f"scale {args.scale}); pytest: {summary[-1].strip('= ') if summary else 'no summary'}")
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
