"""Pareto fronts: the trials no other trial beats on every objective.

Used by ``scenetune best`` for multi-objective experiments (the spec's
``objectives:``) and by the report's accuracy-versus-time figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scenetune.analysis.experiment import Experiment


def pareto_mask(points: np.ndarray, maximize: list[bool]) -> np.ndarray:
    """``mask[i]`` is True when no other point is at least as good on every
    objective and strictly better on one."""
    signed = np.where(maximize, 1.0, -1.0) * np.asarray(points, dtype=float)  # larger is better
    better_or_equal = (signed[None, :, :] >= signed[:, None, :]).all(axis=2)  # [i, j]: j >= i everywhere
    strictly_better = (signed[None, :, :] > signed[:, None, :]).any(axis=2)
    dominated = (better_or_equal & strictly_better).any(axis=1)
    return ~dominated


def objectives_of(exp: Experiment) -> list[dict]:
    """The experiment's objectives: ``[{metric, mode}]`` (one when single-objective)."""
    return exp.spec.get("objectives") or [{"metric": exp.metric, "mode": exp.mode}]


def trial_points(exp: Experiment, metrics: list[str], scope: str = "last") -> pd.DataFrame:
    """One row per trial with the objectives' values: at its last epoch
    (``scope="last"``), or at its epoch best on the first objective."""
    rows = exp.epochs.dropna(subset=metrics).sort_values("training_iteration")
    if scope == "last":
        return rows.groupby("trial_id").tail(1).reset_index(drop=True)
    first, mode = metrics[0], objectives_of(exp)[0]["mode"]
    ordered = rows.sort_values(first, ascending=(mode == "min"), kind="stable")
    return ordered.groupby("trial_id").head(1).reset_index(drop=True)


def pareto_front(exp: Experiment, objectives: list[dict] | None = None, scope: str = "last") -> pd.DataFrame:
    """The non-dominated trials, sorted by the first objective (best first)."""
    objectives = objectives or objectives_of(exp)
    metrics = [o["metric"] for o in objectives]
    points = trial_points(exp, metrics, scope)
    if points.empty:
        return points
    mask = pareto_mask(points[metrics].to_numpy(), [o["mode"] == "max" for o in objectives])
    front = points[mask]
    return front.sort_values(metrics[0], ascending=objectives[0]["mode"] == "min", kind="stable")
