"""The report's anytime section: the best metric the sweep had found at each
moment, against the sweep's wall time and against the epochs it had trained,
beside what each trial cost.

Wall time is the driver's: when each epoch's result reached it, from
``sweep_timings.json`` (:mod:`scenetune.search.clock`), counted from the
sweep's first start; a resumed sweep's runs are placed at their own start.
An epoch with no arrival time (a run whose driver was killed before it wrote
its timings) is left off the time axis and counted in the text; on the
epochs axis it comes after the epochs whose arrival is known.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd

from scenetune.analysis import style
from scenetune.analysis.experiment import Experiment
from scenetune.analysis.section import Section
from scenetune.core import storage
from scenetune.core.layout import TIMINGS_FILE

STATUS_COLOUR = {"completed": style.PALETTE[0], "stopped": "#888888", "errored": style.PALETTE[3]}


def read_timings(uri: str) -> list[dict]:
    """The runs of ``sweep_timings.json`` (a resumed sweep has several); [] if absent or unreadable."""
    path = storage.join(uri, TIMINGS_FILE)
    if not storage.exists(path):
        return []
    try:
        runs = json.loads(storage.read_bytes(path).decode("utf-8")).get("runs", [])
    except (ValueError, AttributeError):
        return []
    return [run for run in runs if isinstance(run, dict) and isinstance(run.get("trials"), dict)]


def arrivals(runs: list[dict]) -> tuple[dict, dict]:
    """``({(trial, iteration): seconds}, {trial: (start, end)})`` from the
    sweep's first start. Runs without an absolute start (older timings)
    follow the previous run's last arrival."""
    at, spans, offset, origin = {}, {}, 0.0, None
    starts = [run["started_at"] for run in runs if isinstance(run.get("started_at"), (int, float))]
    origin = min(starts) if starts else None
    for run in runs:
        if origin is not None and isinstance(run.get("started_at"), (int, float)):
            offset = run["started_at"] - origin
        last = offset
        for trial, entry in run["trials"].items():
            for item in entry.get("results") or []:
                if isinstance(item, list) and len(item) == 2 and all(isinstance(v, (int, float)) for v in item):
                    at[(str(trial), int(item[0]))] = offset + item[1]
                    last = max(last, offset + item[1])
            begun = [s for s in entry.get("starts") or [] if isinstance(s, (int, float))]
            if begun:
                end = entry.get("end") if isinstance(entry.get("end"), (int, float)) else None
                first = spans.get(str(trial), (offset + begun[0], None))[0]
                spans[str(trial)] = (first, offset + end if end is not None else None)
        offset = last
    return at, spans


def anytime_table(exp: Experiment, runs: list[dict] | None = None) -> pd.DataFrame:
    """One row per reported epoch, in the order the driver received them:
    ``trial_id``, ``epoch`` (its training iteration), ``at_s`` (NaN when
    unknown), ``epochs_trained`` and ``fit_s`` so far, the metric, and ``best``
    so far."""
    metric = exp.metric
    if exp.epochs.empty or metric not in exp.epochs:
        return pd.DataFrame()
    at, _ = arrivals(read_timings(exp.uri) if runs is None else runs)
    rows = exp.epochs[["trial_id", "training_iteration", metric]
                      + [c for c in ("epoch_time_s",) if c in exp.epochs]].dropna(subset=[metric]).copy()
    rows["at_s"] = [at.get((t, int(i)), math.nan) for t, i in zip(rows["trial_id"], rows["training_iteration"])]
    rows = rows.sort_values(["at_s", "trial_id", "training_iteration"], na_position="last").reset_index(drop=True)
    rows = rows.rename(columns={"training_iteration": "epoch"})
    rows["epochs_trained"] = np.arange(1, len(rows) + 1)
    rows["fit_s"] = rows["epoch_time_s"].fillna(0).cumsum() if "epoch_time_s" in rows else math.nan
    rows["best"] = rows[metric].cummax() if exp.mode == "max" else rows[metric].cummin()
    return rows


def improvements(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The rows where the best so far improved."""
    better = table["best"].ne(table["best"].shift())
    out = table[better][["at_s", "epochs_trained", "fit_s", "trial_id", "epoch", "best"]]
    out = out.rename(columns={"at_s": "at (s)", "epochs_trained": "epochs trained", "fit_s": "fit so far (s)",
                              "trial_id": "trial", "best": f"best {metric}"}).reset_index(drop=True)
    out.attrs["floatfmt"] = ".4g"
    return out


def anytime_figure(exp: Experiment, table: pd.DataFrame, path: str) -> str:
    """Top: the best so far against wall time and against epochs trained.
    Bottom: when each trial ran (from its start to its end, a dot per
    epoch) and the fit time each one took, by status."""
    runs = read_timings(exp.uri)
    _, spans = arrivals(runs)
    status = exp.trials.set_index("trial_id")["status"].to_dict()
    fig, axes = style.figure(width=11, height=7.2, ncols=2, nrows=2)
    timed = table.dropna(subset=["at_s"])
    label = f"best {exp.metric} so far"
    if len(timed):
        axes[0][0].step(timed["at_s"], timed["best"], where="post", color=style.PALETTE[1], linewidth=2)
        axes[0][0].scatter(timed["at_s"], timed[exp.metric], s=8, color="#999999", alpha=0.5, label="each epoch")
    axes[0][0].set_xlabel("sweep wall time (s)")
    axes[0][1].step(table["epochs_trained"], table["best"], where="post", color=style.PALETTE[1], linewidth=2,
                    label=label)
    axes[0][1].scatter(table["epochs_trained"], table[exp.metric], s=8, color="#999999", alpha=0.5)
    axes[0][1].set_xlabel("epochs trained (every trial together)")
    for ax in axes[0]:
        ax.set_ylabel(exp.metric)
    axes[0][1].legend(loc="lower right" if exp.mode == "max" else "upper right")
    order = sorted(spans, key=lambda t: spans[t][0]) if spans else list(exp.trials["trial_id"])
    for row, trial in enumerate(order):
        colour = STATUS_COLOUR.get(status.get(trial), style.PALETTE[4])
        start, end = spans.get(trial, (math.nan, math.nan))
        points = timed[timed["trial_id"] == trial]["at_s"]
        end = end if end is not None else (points.max() if len(points) else start)
        axes[1][0].plot([start, end], [row, row], color=colour, linewidth=1.5, alpha=0.8)
        axes[1][0].scatter(points, [row] * len(points), s=6, color=colour)
    axes[1][0].set_xlabel("sweep wall time (s)")
    axes[1][0].set_ylabel("trial, in order of start")
    fit = exp.trials.set_index("trial_id")
    seconds = fit["train_time_s"] if "train_time_s" in fit else pd.Series(dtype=float)
    bars = [(t, float(seconds.get(t, math.nan))) for t in order if t in fit.index]
    axes[1][1].bar(range(len(bars)), [s for _, s in bars],
                   color=[STATUS_COLOUR.get(status.get(t), style.PALETTE[4]) for t, _ in bars])
    axes[1][1].set_xlabel("trial, in order of start")
    axes[1][1].set_ylabel("fit time (s)")
    from matplotlib.patches import Patch

    axes[1][1].legend(handles=[Patch(color=colour, label=name) for name, colour in STATUS_COLOUR.items()])
    axes[0][0].set_title(f"Best {exp.metric} so far against wall time")
    axes[0][1].set_title(f"Best {exp.metric} so far against epochs")
    axes[1][0].set_title("When each trial ran")
    axes[1][1].set_title("What each trial cost")
    fig.subplots_adjust(hspace=0.4, wspace=0.25)
    return style.save(fig, path)


def anytime_section(exp: Experiment, out_dir: str) -> list[Section]:
    table = anytime_table(exp)
    if table.empty:
        return []
    path = anytime_figure(exp, table, os.path.join(out_dir, "figures", "anytime.png"))
    final = table["best"].iloc[-1]
    first = table[table["best"] == final].iloc[0]
    when = f"{first['at_s']:.1f} s into the sweep, " if not math.isnan(first["at_s"]) else ""
    text = (f"The best `{exp.metric}`, {final:.4g}, was first reached {when}after {int(first['epochs_trained'])} of "
            f"the {len(table)} epochs trained ({100 * first['epochs_trained'] / len(table):.0f}%), by trial "
            f"`{first['trial_id']}` at its epoch {int(first['epoch'])}.")
    unknown = int(table["at_s"].isna().sum())
    if unknown:
        text += (f" {unknown} epochs have no arrival time (a run whose driver was killed before it wrote "
                 f"`{TIMINGS_FILE}`): they are left off the time axis.")
    return [Section("Anytime: the best so far", text, tables={"anytime": improvements(table, exp.metric)},
                    figures={"The best so far against wall time and against epochs, when each trial ran and "
                             "what it cost.": path})]
