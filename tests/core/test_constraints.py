"""core/constraints.py: a trial's excess over a spec's bounds, as Optuna's
samplers take it (0 within them, how far past otherwise, infinite when the
metric is missing)."""

import math

import numpy as np
import pytest

from scenetune.core.constraints import describe, excess, excesses, feasible

AT_MOST_15 = {"metric": "latency_ms", "max": 15}
BETWEEN = {"metric": "model_mb", "min": 1, "max": 20}


@pytest.mark.parametrize("constraint, value, expected", [
    (AT_MOST_15, 12.0, 0.0), (AT_MOST_15, 15.0, 0.0), (AT_MOST_15, 18.5, 3.5),
    (BETWEEN, 0.25, 0.75), (BETWEEN, 10, 0.0), (BETWEEN, 26, 6.0),
    (AT_MOST_15, np.float32(16), 1.0), (AT_MOST_15, np.int64(3), 0.0),  # numpy's numbers, as pandas gives them
    (AT_MOST_15, None, math.inf), (AT_MOST_15, "fast", math.inf), (AT_MOST_15, float("nan"), math.inf),
])
def test_excess(constraint, value, expected):
    assert excess(constraint, value) == pytest.approx(expected)


def test_a_trial_is_feasible_only_within_every_bound():
    assert excesses([AT_MOST_15, BETWEEN], {"latency_ms": 20, "model_mb": 5}) == {"latency_ms": 5, "model_mb": 0}
    assert feasible([AT_MOST_15, BETWEEN], {"latency_ms": 9, "model_mb": 5})
    assert not feasible([AT_MOST_15, BETWEEN], {"latency_ms": 9})  # model_mb not reported
    assert feasible([], {})


def test_describe():
    assert [describe(c) for c in (AT_MOST_15, BETWEEN, {"metric": "val_accuracy", "min": 0.5})] == [
        "latency_ms <= 15", "1 <= model_mb <= 20", "val_accuracy >= 0.5"]
