"""A series of sweeps read as one, and what a warm start took from earlier ones.

``scenetune report A B ...`` writes each experiment's own report into a
folder of the series' report, and a first page that ranks every trial of the
series together (each row naming its experiment, and the later experiments
whose warm start used it), with one figure of every trial's result by
experiment. A warm-started experiment's own report gains a section that
names the earlier experiments, the trials it used and why the rest were left
out (its ``warm_start.json``, :mod:`scenetune.analysis.warm_start`).
"""

from __future__ import annotations

import json
import os

import pandas as pd

from scenetune.analysis import style
from scenetune.analysis.account import compute_account
from scenetune.analysis.best import best_in_report
from scenetune.analysis.experiment import Experiment
from scenetune.analysis.section import Section
from scenetune.core import storage
from scenetune.core.errors import UserError
from scenetune.core.layout import WARM_START_FILE


def warm_start_record(exp: Experiment) -> dict | None:
    """The experiment's ``warm_start.json`` (None for a cold sweep, or one unreadable)."""
    uri = storage.join(exp.uri, WARM_START_FILE)
    if not storage.exists(uri):
        return None
    try:
        record = json.loads(storage.read_text(uri))
    except ValueError:
        exp.warnings.append(f"{WARM_START_FILE} is not valid JSON: what the warm start used is not shown")
        return None
    return record if isinstance(record, dict) else None


def warm_start_section(exp: Experiment) -> list[Section]:
    """Where a warm-started sweep's study began: the earlier trials it holds."""
    record = warm_start_record(exp)
    if record is None:
        return []
    used = record.get("used") or {}
    count = sum(len(ids) for ids in used.values())
    lines = [f"This sweep's Optuna study began with **{count} of {record.get('total', '?')} trials** of "
             f"{len(record.get('experiments') or [])} earlier experiment(s), before its first trial of its own "
             "(completed trials with their value, trials stopped early with their values by epoch); "
             "see [spec.md](https://github.com/scenetune/scenetune/blob/main/docs/spec.md#warm-start)."]
    lines += ["", *(f"- `{uri}`: {len(used.get(uri, []))} trials used" for uri in record.get("experiments") or [])]
    prior = record.get("as_prior") or {}
    if prior:
        lines += ["", "Used as a prior (run at another fixed image size; their results as they were):", "",
                  *(f"- {n} {reason}" for reason, n in prior.items())]
    left_out = record.get("left_out") or {}
    if left_out:
        lines += ["", "Left out:", "", *(f"- {n} {reason}" for reason, n in left_out.items())]
    table = pd.DataFrame([{"experiment": uri, "trial": trial} for uri, ids in used.items() for trial in ids],
                         columns=["experiment", "trial"])
    return [Section("Warm start", "\n".join(lines), tables={"warm_start_trials": table})]


def check_series(exps: list[Experiment]) -> None:
    """Experiments ranked together must rank by the same metric and mode."""
    first = exps[0]
    for exp in exps[1:]:
        if (exp.metric, exp.mode) != (first.metric, first.mode):
            raise UserError(f"{exp.uri}: ranked by {exp.metric} ({exp.mode}), {first.uri} by {first.metric} "
                            f"({first.mode}): a series' trials are ranked by one metric")


def folder_names(exps: list[Experiment]) -> list[str]:
    """Each experiment's folder in the series' report: its name, made unique."""
    names: list[str] = []
    for exp in exps:
        name, n = exp.name, 2
        while name in names:
            name, n = f"{exp.name}-{n}", n + 1
        names.append(name)
    return names


def _used_by(exps: list[Experiment], names: list[str]) -> dict[tuple[str, str], list[str]]:
    """(experiment URI, trial id) -> the names of the experiments whose warm start used it."""
    used_by: dict[tuple[str, str], list[str]] = {}
    for exp, name in zip(exps, names):
        for uri, ids in ((warm_start_record(exp) or {}).get("used") or {}).items():
            for trial in ids:
                used_by.setdefault((storage.normalize(uri), str(trial)), []).append(name)
    return used_by


def series_trials(exps: list[Experiment], names: list[str]) -> pd.DataFrame:
    """Every trial of the series ranked together by the first experiment's metric."""
    metric, used_by = f"last_{exps[0].metric}", _used_by(exps, names)
    frames = []
    for exp, name in zip(exps, names):
        columns = [c for c in ("trial_id", "status", "epochs", metric, "train_time_s") if c in exp.trials]
        frame = exp.trials[columns].rename(columns={"trial_id": "trial"})
        frame.insert(0, "experiment", name)
        frame["warm_start_of"] = [", ".join(used_by.get((storage.normalize(exp.uri), str(t)), []))
                                  for t in frame["trial"]]
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    if metric in table:
        table = table.sort_values(metric, ascending=exps[0].mode == "min", na_position="last", kind="stable")
    table.attrs["floatfmt"] = ".4g"
    return table.reset_index(drop=True)


def series_overview(exps: list[Experiment], names: list[str]) -> pd.DataFrame:
    rows = []
    for exp, name in zip(exps, names):
        best = best_in_report(exp)
        record = warm_start_record(exp) or {}
        used = record.get("used") or {}
        rows.append({"experiment": name, "trials": len(exp.trials), f"best_{exp.metric}": best[exp.metric],
                     "best_trial": best["trial_id"], "train_time_s": compute_account(exp)["spent_s"],
                     "warm_started_with": sum(len(ids) for ids in used.values()),
                     "report": f"{name}/report.html"})
    table = pd.DataFrame(rows)
    table.attrs["floatfmt"] = ".4g"
    return table


def series_figure(table: pd.DataFrame, names: list[str], metric: str, path: str) -> str | None:
    """Every trial's last value by experiment; the trials a later warm start used ringed."""
    column = f"last_{metric}"
    if column not in table or table[column].dropna().empty:
        return None
    fig, ax = style.figure(width=max(4.8, 1.4 * len(names) + 2), height=4.0)
    ringed = False
    for i, name in enumerate(names):
        rows = table[(table["experiment"] == name) & table[column].notna()]
        jitter = (pd.Series(range(len(rows)), index=rows.index) % 7 - 3) * 0.04
        ax.scatter(i + jitter, rows[column], s=22, color=style.PALETTE[0], alpha=0.7,
                   label="trial" if i == 0 else None)
        used = rows[rows["warm_start_of"] != ""]
        if not used.empty:
            ax.scatter(i + jitter[used.index], used[column], s=70, facecolors="none", edgecolors=style.PALETTE[1],
                       linewidths=1.4, label=None if ringed else "used by a later warm start")
            ringed = True
    ax.set_xticks(range(len(names)), names, rotation=20 if len(names) > 3 else 0)
    ax.set_ylabel(f"last {metric.replace('_', ' ')}")
    ax.set_title(f"The series: every trial's {metric} by experiment")
    ax.legend()
    return style.save(fig, path)


def series_section(exps: list[Experiment], names: list[str], out_dir: str) -> Section:
    check_series(exps)
    metric, mode = exps[0].metric, exps[0].mode
    trials = series_trials(exps, names)
    top = trials.iloc[0]
    text = (f"{len(exps)} experiments, {len(trials)} trials, ranked together by `{metric}` ({mode}) at each "
            f"trial's last epoch. The best: trial `{top['trial']}` of `{top['experiment']}`, "
            f"{top.get(f'last_{metric}', float('nan')):.4g}. Each experiment's own report is in its folder "
            "(the table's last column); `warm_start_of` names the later experiments whose warm start used a trial.")
    figure = series_figure(trials, names, metric, os.path.join(out_dir, "figures", "series.png"))
    return Section("The series", text, tables={"series": series_overview(exps, names), "series_trials": trials},
                   figures={"Every trial's result by experiment": figure} if figure else {})


__all__ = ["warm_start_section", "series_section", "folder_names", "check_series", "warm_start_record"]
