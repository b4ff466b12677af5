"""One way to time a call: the median of repeated calls after a warm-up,
used for a trial's ``latency_ms`` and for an export's latency on its card."""

from __future__ import annotations

import statistics
import time


def median_ms(call, budget_s: float = 3.0, runs: int = 50, warmup: int = 5) -> float:
    """Median milliseconds of ``call()`` after ``warmup`` calls: ``runs``
    calls, or fewer (at least 5) when they take over ``budget_s``."""
    for _ in range(warmup):
        call()
    times, started = [], time.perf_counter()
    while len(times) < runs and (len(times) < 5 or time.perf_counter() - started < budget_s):
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)
