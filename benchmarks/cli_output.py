"""What a user waits for and reads: ``--help`` time for every command, and
the lines a 2-trial, 2-epoch sweep prints, for the commit that began issue
17's work (``--before``, run from a git worktree of it) against this
checkout, side by side in one process on the same data.

    .venv/bin/python benchmarks/cli_output.py --before 3bbc9f6

The old commit is run from its worktree with ``PYTHONPATH`` (its packages
were top-level: ``python -m search.cli``); Ray's local workers inherit it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
COMMANDS = [["sweep"], ["best"], ["report"], ["evaluate"], ["predict"], ["replay"], ["generate"],
            ["data", "synth"], ["data", "check"]]


def cli(checkout: str | None) -> tuple[list[str], dict]:
    """The command line of a checkout: this one, or an old worktree."""
    if checkout is None:
        return [sys.executable, "-m", "scenetune.cli"], dict(os.environ)
    return [sys.executable, "-m", "search.cli"], dict(os.environ, PYTHONPATH=checkout)


def help_seconds(command: list[str], env: dict, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=True, cwd=tempfile.gettempdir())
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def sweep_lines(base: list[str], env: dict, spec: str, name: str) -> tuple[int, float]:
    started = time.perf_counter()
    run = subprocess.run(base + ["sweep", spec, "--name", name], env=env, capture_output=True, text=True,
                         cwd=os.path.dirname(spec))
    if run.returncode != 0:
        raise SystemExit(run.stdout + run.stderr)
    return len((run.stdout + run.stderr).splitlines()), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the old commit")
    parser.add_argument("--repeats", type=int, default=5, help="--help runs per command (median)")
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "synth"), help="a synthetic dataset")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="cli-output-")
    worktree = os.path.join(work, "before")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", worktree, args.before], check=True,
                   capture_output=True)
    try:
        with open(os.path.join(ROOT, "sweeps", "quickstart.yaml")) as f:
            spec = yaml.safe_load(f)
        spec.update(storage=os.path.join(work, "results"), data=dict(spec["data"], root=os.path.abspath(args.data)))
        spec["scheduler"]["max_t"] = spec["fixed"]["epochs"] = 2
        spec["search"]["num_samples"] = 2
        path = os.path.join(work, "two.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(spec, f)
        rows = []
        for label, checkout in (("before", worktree), ("after", None)):
            base, env = cli(checkout)
            helps = {" ".join(c): help_seconds(base + c + ["--help"], env, args.repeats) for c in COMMANDS}
            lines, seconds = sweep_lines(base, env, path, f"lines-{label}")
            rows.append((label, max(helps.values()), statistics.median(helps.values()), lines, seconds))
        print("| checkout | slowest --help (s) | median --help (s) | lines of a 2-trial sweep | sweep (s) |")
        print("|:--|--:|--:|--:|--:|")
        for label, slowest, median, lines, seconds in rows:
            print(f"| {label} | {slowest:.2f} | {median:.2f} | {lines} | {seconds:.0f} |")
        (_, b_slow, _, b_lines, _), (_, a_slow, _, a_lines, _) = rows
        print(f"\nafter / before: --help {a_slow / b_slow:.2f}x the time, {a_lines / b_lines:.2f}x the lines")
    finally:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", worktree], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
