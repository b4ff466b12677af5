"""How alike two configurations of one Optuna search space are: the weights
of the constrained search's feasibility estimate (constrained_search.py).
A categorical value counts equal (1) or not (``OTHER_VALUE``); a number by
its distance on the parameter's own range mapped to [0, 1] (log-scaled where
the space is), through a Gaussian of width ``WIDTH``; the product over the
parameters both configurations have."""

from __future__ import annotations

import math

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution

OTHER_VALUE = 0.1  # weight of a different categorical value (1 for the same)
WIDTH = 0.5  # width of a number's Gaussian, in its range mapped to [0, 1]


def _unit(dist: BaseDistribution, value) -> float:
    low, high = dist.low, dist.high
    if getattr(dist, "log", False):
        low, high, value = math.log(low), math.log(high), math.log(value)
    return 0.0 if high == low else (value - low) / (high - low)


def similarity(configs: list[dict], others: list[dict], space: dict[str, BaseDistribution]) -> np.ndarray:
    """``[len(configs), len(others)]`` kernel weights, each in (0, 1]."""
    weights = np.ones((len(configs), len(others)))
    for name, dist in space.items():
        has = np.array([name in c for c in configs], dtype=bool)[:, None] & \
            np.array([name in o for o in others], dtype=bool)[None, :]
        if not has.any():
            continue
        if isinstance(dist, CategoricalDistribution):
            a = np.array([dist.to_internal_repr(c[name]) if name in c else -1 for c in configs])
            b = np.array([dist.to_internal_repr(o[name]) if name in o else -2 for o in others])
            factor = np.where(a[:, None] == b[None, :], 1.0, OTHER_VALUE)
        else:
            a = np.array([_unit(dist, c[name]) if name in c else 0.0 for c in configs])
            b = np.array([_unit(dist, o[name]) if name in o else 0.0 for o in others])
            factor = np.exp(-0.5 * ((a[:, None] - b[None, :]) / WIDTH) ** 2)
        weights *= np.where(has, factor, 1.0)
    return weights
