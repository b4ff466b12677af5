"""The best trials of an experiment, as data and as text, JSON or YAML.

``scope="last"`` ranks trials by their last reported epoch (what ASHA and
Ray's ``get_best_result`` default to); ``scope="all"`` by their best epoch.
Each entry's ``config`` holds the trial's hyperparameters without the
experiment-specific ``data`` block, so it can be pasted as a spec's ``fixed:``.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import yaml

from scenetune.analysis.experiment import Experiment, ExperimentError
from scenetune.analysis.pareto import objectives_of, pareto_front
from scenetune.core.constraints import describe, feasible

SCOPES = ("last", "all")
FORMATS = ("text", "json", "yaml")


def infeasible_trials(exp: Experiment, scope: str = "last", metric: str | None = None,
                      mode: str | None = None) -> list[str]:
    """The trials past the spec's ``constraints`` at the epoch ``best`` ranks them by."""
    constraints = exp.spec.get("constraints") or []
    if not constraints or exp.epochs.empty:
        return []
    picked = _ranked_rows(exp, metric or exp.metric, mode or exp.mode, scope)
    return [str(row["trial_id"]) for _, row in picked.iterrows() if not feasible(constraints, row.to_dict())]


def _ranked_rows(exp: Experiment, metric: str, mode: str, scope: str) -> pd.DataFrame:
    """Each trial's row at its last epoch (``scope="last"``) or its best one."""
    rows = exp.epochs.dropna(subset=[metric]).sort_values("training_iteration")
    rows = rows[rows[metric].map(lambda v: math.isfinite(float(v)))]
    if scope == "last":
        return rows.groupby("trial_id").tail(1)
    return rows.sort_values(metric, ascending=(mode == "min"), kind="stable").groupby("trial_id").head(1)


def best_trials(exp: Experiment, metric: str | None = None, mode: str | None = None,
                scope: str = "last", top: int = 1, constrained: bool = True) -> list[dict]:
    """The best ``top`` trials; with the spec's ``constraints`` (unless not
    ``constrained``) among the trials that keep them."""
    metric, mode = metric or exp.metric, mode or exp.mode
    if scope not in SCOPES:
        raise ExperimentError(f"--scope: expected one of {', '.join(SCOPES)}, got {scope!r}")
    if mode not in ("max", "min"):
        raise ExperimentError(f"--mode: expected max or min, got {mode!r}")
    if top < 1:
        raise ExperimentError(f"--top: must be at least 1, got {top}")
    epochs = exp.epochs
    if epochs.empty:
        raise ExperimentError(f"{exp.uri}: no trial has reported a result yet")
    if metric not in epochs.columns or not pd.api.types.is_numeric_dtype(epochs[metric]):
        known = sorted(c for c in epochs.select_dtypes("number").columns if c != "trial_id")
        reported = "was not reported" if metric not in epochs.columns else "was not reported as a number"
        raise ExperimentError(f"--metric: {metric!r} {reported}; known: {', '.join(known)}")
    picked = _ranked_rows(exp, metric, mode, scope)
    constraints = (exp.spec.get("constraints") or []) if constrained else []
    if constraints and not picked.empty:
        kept = picked[[feasible(constraints, row.to_dict()) for _, row in picked.iterrows()]]
        if kept.empty:
            raise ExperimentError(f"{exp.uri}: none of {len(picked)} trials keeps the constraints "
                                  f"({', '.join(describe(c) for c in constraints)})")
        picked = kept
    picked = picked.sort_values(metric, ascending=(mode == "min"), kind="stable").head(top)
    return _entries(exp, picked, [metric])


def best_in_report(exp: Experiment) -> dict:
    """The trial a report shows as the best: the best that keeps the spec's
    constraints, or, when none does, the best of all."""
    try:
        return best_trials(exp)[0]
    except ExperimentError:
        if not exp.spec.get("constraints"):
            raise
        return best_trials(exp, constrained=False)[0]


def best_trials_of(exps: list[Experiment], metric: str | None = None, mode: str | None = None,
                   scope: str = "last", top: int = 1) -> list[dict]:
    """The best ``top`` trials of several experiments ranked together (a
    series of sweeps, warm-started or not), each entry naming its
    ``experiment``. ``metric`` and ``mode``: default the first experiment's."""
    metric, mode = metric or exps[0].metric, mode or exps[0].mode
    entries = []
    for exp in exps:
        for entry in best_trials(exp, metric, mode, scope, top):
            entries.append({"experiment": exp.name, **entry})
    entries.sort(key=lambda e: e[metric], reverse=(mode == "max"))
    return entries[:top]


def pareto_trials(exp: Experiment, scope: str = "last") -> list[dict]:
    """The Pareto set of a multi-objective experiment (its spec's ``objectives``)."""
    if scope not in SCOPES:
        raise ExperimentError(f"--scope: expected one of {', '.join(SCOPES)}, got {scope!r}")
    if exp.epochs.empty:
        raise ExperimentError(f"{exp.uri}: no trial has reported a result yet")
    objectives = objectives_of(exp)
    return _entries(exp, pareto_front(exp, objectives, scope), [o["metric"] for o in objectives])


# Trial config keys the sweep fills in (not the user's): left out of the
# config shown, so it can be pasted back as a spec's ``fixed:``.
SWEEP_SET_KEYS = ("data", "checkpoint_epochs")


def _entries(exp: Experiment, rows: pd.DataFrame, shown: list[str]) -> list[dict]:
    status = exp.trials.set_index("trial_id")["status"]
    entries = []
    for _, row in rows.iterrows():
        trial_id = row["trial_id"]
        metrics = {k: _plain(v) for k, v in row.items()
                   if k != "trial_id" and isinstance(v, (int, float)) and not pd.isna(v)}
        config = {k: v for k, v in exp.configs.get(trial_id, {}).items() if k not in SWEEP_SET_KEYS}
        entry = {"trial_id": trial_id, "status": status.get(trial_id, "unknown"),
                 "epoch": int(row["training_iteration"])}
        entry.update({m: _plain(row[m]) for m in shown})
        entry.update(metrics=metrics, config=config)
        entries.append(entry)
    return entries


def _plain(v):
    """numpy scalars -> Python numbers, for JSON and YAML."""
    return v.item() if hasattr(v, "item") else v


def format_best(entries: list[dict], fmt: str, metric: str, mode: str, scope: str,
                objectives: list[dict] | None = None, compact: bool = False,
                constraints: list[dict] | None = None, infeasible: list[str] | None = None) -> str:
    """Text, JSON or YAML. With ``objectives`` the entries are a Pareto set.
    ``compact`` text gives each configuration on one line (YAML flow style).
    ``constraints``: the spec's, with the ``infeasible`` trials left out of the ranking."""
    if fmt not in FORMATS:
        raise ExperimentError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    document = {"metric": metric, "mode": mode, "scope": scope, "best": entries}
    if constraints:
        document.update(constraints=constraints, infeasible=infeasible or [])
    if objectives:
        document = {"objectives": objectives, "scope": scope, "pareto": entries}
    if fmt == "json":
        return json.dumps(document, indent=2)
    if fmt == "yaml":
        return yaml.safe_dump(document, sort_keys=False)
    shown = [o["metric"] for o in objectives] if objectives else [metric]
    table = pd.DataFrame([{"rank": i + 1, **({"experiment": e["experiment"]} if "experiment" in e else {}),
                           "trial": e["trial_id"], "status": e["status"], "epoch": e["epoch"],
                           **{m: e[m] for m in shown}, "train_time_s": e["metrics"].get("train_time_s")}
                          for i, e in enumerate(entries)])
    if objectives:
        over = ", ".join(f"{o['metric']} ({o['mode']})" for o in objectives)
        title = f"Pareto set of {len(entries)} trials over {over} (scope {scope}):"
    else:
        title = f"best {len(entries)} by {metric} ({mode}, scope {scope}):"
    if constraints:
        title += (f" among the trials within {', '.join(describe(c) for c in constraints)}"
                  f" ({len(infeasible or [])} past them left out)")
    lines = [title, table.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
    for entry in entries if objectives else entries[:1]:  # every point of a front; the best one otherwise
        config = (yaml.safe_dump(entry["config"], sort_keys=True, default_flow_style=True, width=10**6)
                  if compact else yaml.safe_dump(entry["config"], sort_keys=True))
        lines += ["", f"configuration of {entry['trial_id']} (paste under `fixed:` to train it again):",
                  config.rstrip()]
    return "\n".join(lines)
