"""ASHA's rung cut-off as a rung fills: Ray's ``_Bracket.cutoff`` (numpy's
percentile of every recorded result) against scenetune's sorted rungs
(search/sorted_rungs.py), in one process on the same results.

    .venv/bin/python benchmarks/rung_cutoffs.py

For each rung size, the time of one cut-off followed by one result recorded,
as ASHA does for each result that reaches a rung; and whether every cut-off
was the same number.
"""

from __future__ import annotations

import random
import sys
import time

from ray.tune.schedulers.async_hyperband import _Bracket

from scenetune.search.sorted_rungs import SortedRung

SIZES = (100, 1_000, 5_000, 10_000, 20_000)


def fill(cutoff, bracket, size: int, seed: int = 0) -> tuple[list, float]:
    """Record ``size`` results at the first rung, a cut-off before each; the
    cut-offs and the seconds spent on the last 1,000 (or all of them)."""
    rng = random.Random(seed)
    rung = bracket._rungs[-1][1]
    cutoffs, started = [], None
    for i in range(size):
        if i == max(0, size - 1000):
            started = time.perf_counter()
        cutoffs.append(cutoff(rung))
        rung[f"t{i}"] = rng.random()
    return cutoffs, (time.perf_counter() - started) / min(size, 1000)


def main() -> int:
    print("\n.venv/bin/python benchmarks/rung_cutoffs.py\n")
    print("| results at the rung | Ray's cut-off, µs | sorted rungs, µs | Ray / sorted | the same numbers |")
    print("|--:|--:|--:|--:|:--|")
    for size in SIZES:
        ray_bracket = _Bracket(min_t=1, max_t=9, reduction_factor=3, s=0)
        ray_s, ray_t = fill(lambda rung, b=ray_bracket: _Bracket.cutoff(b, rung), ray_bracket, size)
        ours_bracket = _Bracket(min_t=1, max_t=9, reduction_factor=3, s=0)
        ours, ours_t = fill(SortedRung(ours_bracket), ours_bracket, size)
        print(f"| {size:,} | {ray_t * 1e6:.1f} | {ours_t * 1e6:.1f} | {ray_t / ours_t:.1f} | {ray_s == ours} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
