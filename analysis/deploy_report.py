"""The classifier report's deployment section: what shipping each trial's
model would cost. Every trial's metric against its model's size
(``model_mb``) and against its latency (``latency_ms``, one image on the
trial's node), each with its Pareto front; a constrained sweep's trials past
their bounds drawn apart (core/constraints.py); and the models exported
from the experiment (``scenetune export --format``, whose cards it keeps
under ``exports/``): each format's size, accuracy and latency.
"""

from __future__ import annotations

import json
import os

import pandas as pd

from scenetune.analysis import style
from scenetune.analysis.experiment import Experiment
from scenetune.analysis.pareto import pareto_mask, trial_points
from scenetune.analysis.section import Section
from scenetune.core import storage
from scenetune.core.constraints import describe, feasible
from scenetune.core.layout import EXPORTS_DIR

COSTS = {"model_mb": "model size (MB of float32 weights)", "latency_ms": "latency (ms, one image)"}


def deployment_table(exp: Experiment) -> pd.DataFrame | None:
    """One row per trial (its last epoch): the metric, both costs, whether it
    keeps the constraints and whether it lies on each front; best first."""
    metric = exp.metric
    if exp.epochs.empty or not set(COSTS) <= set(exp.epochs.columns):
        return None
    points = trial_points(exp, [metric, *COSTS])
    if points.empty:
        return None
    table = points[["trial_id", metric, *COSTS]].rename(columns={"trial_id": "trial"}).reset_index(drop=True)
    constraints = exp.spec.get("constraints") or []
    if constraints:
        table["feasible"] = [feasible(constraints, row) for row in points.to_dict("records")]
    for cost in COSTS:
        table[f"front_{cost}"] = pareto_mask(table[[metric, cost]].to_numpy(), [exp.mode == "max", False])
    table = table.sort_values(metric, ascending=exp.mode == "min", kind="stable").reset_index(drop=True)
    table.attrs["floatfmt"] = ".4g"
    return table


def deployment_figure(exp: Experiment, table: pd.DataFrame, path: str) -> str:
    fig, axes = style.figure(width=10, height=4.0, ncols=2)
    metric = exp.metric
    apart = "feasible" in table and not table["feasible"].all()
    for ax, cost in zip(axes.ravel(), COSTS):
        kept = table[table["feasible"]] if apart else table
        ax.scatter(kept[cost], kept[metric], s=24, color=style.PALETTE[0], alpha=0.8,
                   label="within the constraints" if apart else "trial")
        if apart:
            past = table[~table["feasible"]]
            ax.scatter(past[cost], past[metric], s=30, marker="x", color=style.PALETTE[3],
                       label="past the constraints")
        front = table[table[f"front_{cost}"]].sort_values(cost)
        ax.plot(front[cost], front[metric], color=style.PALETTE[1], drawstyle="steps-post", label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel(COSTS[cost])
        ax.set_ylabel(metric.replace("_", " "))
        ax.legend()
    fig.suptitle(f"{metric} against what the model costs to ship")
    return style.save(fig, path)


def exported_models(exp: Experiment) -> pd.DataFrame | None:
    """The cards of the models exported from this experiment, one row each."""
    folder = storage.join(exp.uri, EXPORTS_DIR)
    if not storage.is_dir(folder):
        return None
    rows = []
    for name, is_dir in storage.list_dir(folder):
        if is_dir or not name.endswith(".json"):
            continue
        try:
            card = json.loads(storage.read_text(storage.join(folder, name)))
        except ValueError:
            exp.warnings.append(f"{EXPORTS_DIR}/{name} is not valid JSON: left out of the exported models")
            continue
        source = card.get("source") or {}
        rows.append({"format": card.get("format"), "trial": source.get("trial_id"), "size_mb": card.get("size_mb"),
                     "accuracy": card.get("accuracy"), "keras_accuracy": card.get("keras_accuracy"),
                     "agreement": card.get("agreement"), "latency_ms": card.get("latency_ms"),
                     "exported_to": card.get("out")})
    if not rows:
        return None
    table = pd.DataFrame(rows).sort_values(["trial", "size_mb"], kind="stable").reset_index(drop=True)
    table.attrs["floatfmt"] = ".4g"
    return table


def deployment_section(exp: Experiment, out_dir: str) -> list[Section]:
    table = deployment_table(exp)
    exports = exported_models(exp)
    if table is None and exports is None:
        return []
    lines, tables, drawn = [], {}, {}
    if table is not None:
        constraints = exp.spec.get("constraints") or []
        lines.append(f"Each trial's `{exp.metric}` at its last epoch against its model's size and its latency (the "
                     "median time to classify one image, batch 1, measured once on the node the trial ran on: "
                     "compare trials of one kind of node). The fronts join the trials that no other beats on both.")
        if constraints:
            lines.append(f"Constraints: {', '.join(f'`{describe(c)}`' for c in constraints)}; "
                         f"{int((~table['feasible']).sum())} of {len(table)} trials lie past them.")
        tables["deployment"] = table
        drawn[f"{exp.metric} against model size and against latency, with each Pareto front."] = \
            deployment_figure(exp, table, os.path.join(out_dir, "figures", "deployment.png"))
    if exports is not None:
        lines.append("Models exported from this experiment (`scenetune export --format`, checked on the test "
                     "split against the Keras model; latency on the machine that exported them).")
        tables["exported_models"] = exports
    return [Section("Deployment: size and latency", "\n\n".join(lines), tables=tables, figures=drawn)]
