"""Constraints on what a trial reports (``constraints:`` in a spec): the
bounds a model must keep to be shipped, such as ``latency_ms`` at most 15 or
``model_mb`` at most 20.

A constraint is a mapping ``{metric, max, min}`` (one bound or both). Its
excess for a trial is how far the trial's value lies past the bound (0 or
less: within it), the number Optuna's samplers take as a trial's constraint
value (``Trial.set_constraint``: feasible when every value is 0 or less).
A trial that did not report the metric is infeasible.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping


def excess(constraint: Mapping, value) -> float:
    """How far ``value`` lies past the constraint's bounds (0: within them)."""
    if not isinstance(value, numbers.Real) or math.isnan(value):  # numpy's numbers too
        return math.inf
    over = [value - constraint["max"]] if constraint.get("max") is not None else []
    under = [constraint["min"] - value] if constraint.get("min") is not None else []
    return max([0.0, *over, *under])


def excesses(constraints: list[Mapping], metrics: Mapping) -> dict[str, float]:
    """Each constrained metric's excess for one trial's ``metrics``."""
    return {c["metric"]: excess(c, metrics.get(c["metric"])) for c in constraints}


def feasible(constraints: list[Mapping], metrics: Mapping) -> bool:
    return all(v <= 0 for v in excesses(constraints, metrics).values())


def describe(constraint: Mapping) -> str:
    """``latency_ms <= 15``, ``0.5 <= val_accuracy``, or both bounds."""
    low, high = constraint.get("min"), constraint.get("max")
    name = constraint["metric"]
    if low is not None and high is not None:
        return f"{low:g} <= {name} <= {high:g}"
    return f"{name} <= {high:g}" if high is not None else f"{name} >= {low:g}"
