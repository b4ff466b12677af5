"""Report sections for smarter search: the Pareto set of a multi-objective
experiment (its spec's ``objectives``) and what progressive resizing spent
against what the same epochs would have cost at the full image size."""

from __future__ import annotations

import os

import pandas as pd

from scenetune.analysis import style
from scenetune.analysis.experiment import Experiment
from scenetune.analysis.pareto import pareto_front, trial_points
from scenetune.analysis.section import Section


def pareto_section(exp: Experiment, out_dir: str) -> list:
    objectives = exp.spec.get("objectives")
    if not objectives or exp.epochs.empty:
        return []
    metrics = [o["metric"] for o in objectives]
    front = pareto_front(exp, objectives)
    searched = [f"config/{k}" for k in (exp.spec.get("space") or {}) if f"config/{k}" in exp.trials]
    table = front[["trial_id", "training_iteration", *metrics]].merge(
        exp.trials[["trial_id", *searched]], on="trial_id").rename(
        columns={"training_iteration": "epochs", **{c: c.removeprefix("config/") for c in searched}})
    table.attrs["floatfmt"] = ".4g"
    path = _front_figure(exp, objectives, front, os.path.join(out_dir, "figures", "pareto_front.png"))
    over = " and ".join(f"`{o['metric']}` ({o['mode']})" for o in objectives)
    return [Section(
        "Pareto front",
        f"A multi-objective search over {over}: the {len(front)} trials below are those no other trial beats on "
        f"every objective (at their last epoch). ASHA ranked trials by the first objective, `{metrics[0]}`.",
        tables={"pareto_front": table}, figures={"The Pareto front among all trials.": path})]


def _front_figure(exp: Experiment, objectives: list[dict], front: pd.DataFrame, path: str) -> str:
    x, y = objectives[1]["metric"], objectives[0]["metric"]
    points = trial_points(exp, [o["metric"] for o in objectives])
    fig, ax = style.figure(width=6.4, height=4.2)
    ax.scatter(points[x], points[y], c=style.PALETTE[0], alpha=0.6, s=30, edgecolors="none",
               label=f"trials ({len(points)})")
    ordered = front.sort_values(x)
    ax.plot(ordered[x], ordered[y], color=style.PALETTE[1], marker="o", markerfacecolor="none", markersize=9,
            linewidth=1.5, label=f"Pareto front ({len(front)})")
    ax.set_xlabel(x + (" (s)" if x.endswith("_s") else ""))
    ax.set_ylabel(y + (" (s)" if y.endswith("_s") else ""))
    ax.set_title(f"{y} against {x}")
    ax.legend()
    return style.save(fig, path)


def progressive_section(exp: Experiment, out_dir: str) -> list:
    epochs = exp.epochs
    if epochs.empty or "full_size_epoch_time_s" not in epochs or "image_size" not in epochs:
        return []
    if epochs["image_size"].nunique() < 2:
        return []
    spent, full = epochs["epoch_time_s"].sum(), epochs["full_size_epoch_time_s"].sum()
    by_size = epochs.groupby("image_size").agg(
        epochs=("epoch_time_s", "size"), trials=("trial_id", "nunique"), fit_time_s=("epoch_time_s", "sum"),
        at_full_size_s=("full_size_epoch_time_s", "sum")).reset_index()
    by_size.attrs["floatfmt"] = ".1f"
    best = exp.trials[f"best_{exp.metric}"].max() if exp.mode == "max" else exp.trials[f"best_{exp.metric}"].min()
    largest = int(epochs["image_size"].max())
    return [Section(
        "Progressive resizing",
        f"Trials trained their first rungs at small images and grew as ASHA promoted them. They spent "
        f"{spent:.0f} s of fit time; the same epochs at {largest}x{largest} throughout would have cost about "
        f"{full:.0f} s (estimated: an epoch's time scaled by the ratio of pixels, exact at the full size), so "
        f"{1 - spent / full:.0%} was saved. Best `{exp.metric}` reached: {best:.4f}.",
        tables={"progressive_compute": by_size})]
