"""The report's figures, drawn from an experiment's trial logs in the one
figure style (:mod:`scenetune.analysis.style`). Each function writes one PNG and
returns its path (or None when the experiment has too little to draw).
"""

from __future__ import annotations

import io
import math

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
from sklearn.metrics import ConfusionMatrixDisplay

from scenetune.analysis import style
from scenetune.analysis.experiment import Experiment
from scenetune.analysis.pareto import pareto_mask
from scenetune.analysis.tables import scored_trials
from scenetune.core import storage

STATUS_STYLE = {  # colour, marker, alpha: stopped trials dimmed, errored ones drawn as crosses
    "completed": (style.PALETTE[0], "o", 0.9),
    "stopped": ("#888888", "s", 0.45),
    "errored": (style.PALETTE[3], "X", 0.9),
}


def _label(metric: str) -> str:
    if "accuracy" in metric:
        return f"{metric.replace('_', ' ')} (fraction correct)"
    if "loss" in metric:
        return f"{metric.replace('_', ' ')} (cross-entropy)"
    return metric.replace("_", " ")


def best_trial_curves(exp: Experiment, trial_id: str, path: str) -> str:
    """Figure 1: train and validation accuracy and loss per epoch of one trial."""
    rows = exp.epochs[exp.epochs["trial_id"] == trial_id].sort_values("training_iteration")
    panels = [(name, [c for c in (name, f"val_{name}") if c in rows]) for name in ("accuracy", "loss")]
    panels = [(name, cols) for name, cols in panels if cols]
    fig, axes = style.figure(width=4.2 * len(panels), height=3.4, ncols=len(panels))
    for ax, (name, columns) in zip(np.ravel(axes), panels):
        for i, column in enumerate(columns):
            ax.plot(rows["training_iteration"], rows[column], marker=style.MARKERS[i], linestyle=["-", "--"][i],
                    label="validation" if column.startswith("val_") else "train")
        ax.set_xlabel("epoch")
        ax.set_ylabel(_label(name))
        ax.set_title(f"{name.capitalize()}, trial {trial_id}")
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    return style.save(fig, path)


def accuracy_vs_time(exp: Experiment, path: str) -> str | None:
    """Every trial's metric against its training time, the Pareto front drawn."""
    trials = scored_trials(exp).dropna(subset=["time_s"])
    if trials.empty:
        return None
    fig, ax = style.figure(width=6.4, height=4.2)
    for status, group in trials.groupby("status"):
        colour, marker, alpha = STATUS_STYLE.get(status, (style.PALETTE[4], "v", 0.9))
        ax.scatter(group["time_s"], group["score"], c=colour, marker=marker, alpha=alpha, s=36,
                   label=f"{status} ({len(group)})", edgecolors="none")
    front = trials[pareto_mask(trials[["time_s", "score"]].to_numpy(), [False, exp.mode == "max"])]
    front = front.sort_values("time_s")
    ax.step(front["time_s"], front["score"], where="post", color=style.PALETTE[1], linewidth=1.5,
            label=f"Pareto front ({len(front)})")
    ax.scatter(front["time_s"], front["score"], facecolors="none", edgecolors=style.PALETTE[1], s=90, linewidths=1.5)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel(_label(exp.metric))
    ax.set_title(f"{exp.metric} against training time, {len(trials)} trials")
    ax.legend(loc="lower right" if exp.mode == "max" else "upper right")
    return style.save(fig, path)


def all_trial_curves(exp: Experiment, best_id: str | None, path: str) -> str | None:
    """Every trial's validation metric by epoch; the scheduler's rungs marked, stopped trials dimmed."""
    if exp.epochs.empty or exp.metric not in exp.epochs:
        return None
    status = exp.trials.set_index("trial_id")["status"].to_dict()
    fig, ax = style.figure(width=6.4, height=4.2)
    for rung in exp.rungs:
        ax.axvline(rung, color="#555555", linestyle=":", linewidth=1)
        ax.annotate(f"rung {rung}", (rung, 1), xycoords=("data", "axes fraction"), rotation=90, va="top",
                    ha="right", fontsize=7, color="#555555")
    seen = set()
    for trial_id, rows in exp.epochs.sort_values("training_iteration").groupby("trial_id"):
        state = status.get(trial_id, "completed")
        colour, marker, alpha = STATUS_STYLE.get(state, (style.PALETTE[4], "v", 0.9))
        width = 2.5 if trial_id == best_id else 1.0
        label = state if state not in seen else None
        seen.add(state)
        ax.plot(rows["training_iteration"], rows[exp.metric], color=colour, alpha=alpha, linewidth=width,
                marker=marker, markersize=3, label=label, linestyle=":" if state == "errored" else "-")
    if best_id is not None:
        rows = exp.epochs[exp.epochs["trial_id"] == best_id].sort_values("training_iteration")
        ax.plot(rows["training_iteration"], rows[exp.metric], color=style.PALETTE[1], linewidth=2.5,
                label=f"best ({best_id})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(_label(exp.metric))
    ax.set_title(f"{exp.metric} by epoch, every trial" + (f" (dotted: {_scheduler_name(exp)} rungs)" if exp.rungs else ""))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    return style.save(fig, path)


def confusion_matrix(predictions: pd.DataFrame, title: str, path: str) -> str:
    classes = [c.removeprefix("prob_") for c in predictions.columns if c.startswith("prob_")]
    classes = classes or sorted(set(predictions["true"]) | set(predictions["predicted"]))
    side = max(4.0, 0.32 * len(classes) + 2.5)
    fig, ax = style.figure(width=side + 0.8, height=side)
    ConfusionMatrixDisplay.from_predictions(predictions["true"].astype(str), predictions["predicted"].astype(str),
                                            labels=classes, ax=ax, cmap="Blues", colorbar=False,
                                            xticks_rotation=90 if len(classes) > 6 else 45)
    ax.grid(False)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return style.save(fig, path)


def importance(scores: pd.Series, path: str, evaluator_name: str) -> str:
    """Horizontal bars of hyperparameter importances (they sum to 1)."""
    scores = scores.sort_values()
    fig, ax = style.figure(width=6.4, height=1.2 + 0.35 * len(scores))
    ax.barh(scores.index, scores.values, color=style.PALETTE[0])
    for y, value in enumerate(scores.values):
        ax.annotate(f"{value:.2f}", (value, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xlabel(f"importance ({evaluator_name}; fraction of explained variance)")
    ax.set_title("Hyperparameter importance")
    ax.set_xlim(0, max(1.0, scores.max() * 1.15))
    return style.save(fig, path)


def image_grid(images: list[tuple[str, str]], title: str, path: str, columns: int = 4) -> str | None:
    """``images``: ``[(png uri, caption)]`` drawn in a grid (Grad-CAM overlays)."""
    if not images:
        return None
    columns = min(columns, len(images))
    rows = math.ceil(len(images) / columns)
    fig, axes = style.figure(width=2.6 * columns, height=2.9 * rows, ncols=columns, nrows=rows)
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, (uri, caption) in zip(np.ravel(axes), images):
        ax.imshow(mpimg.imread(io.BytesIO(storage.read_bytes(uri)), format="png"))
        ax.set_title(caption, fontsize=8)
    fig.suptitle(title)
    return style.save(fig, path)


def _scheduler_name(exp) -> str:
    return {"asha": "ASHA", "hyperband": "HyperBand"}.get((exp.spec.get("scheduler") or {}).get("name"), "scheduler")
