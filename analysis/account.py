"""The report's first section: an account of the experiment (what was
searched, how many trials ran, were stopped early or errored, the compute
spent and saved), the best configuration, the final evaluation if any, and
the warnings met while reading the logs. Any trainable's report starts here.
"""

from __future__ import annotations

import pandas as pd
import yaml

from scenetune.analysis.best import best_in_report, infeasible_trials
from scenetune.analysis.experiment import Experiment
from scenetune.analysis.final import read_final
from scenetune.analysis.section import Section
from scenetune.analysis.tables import scored_trials
from scenetune.core.constraints import describe


def compute_account(exp: Experiment) -> dict:
    """Seconds of training spent, and saved by stopping trials early.

    Saved: each stopped trial's epochs not run (``planned_epochs - epochs``)
    at that trial's own mean epoch time."""
    trials = scored_trials(exp)
    if trials.empty:
        return {"spent_s": 0.0, "wall_s": 0.0, "saved_s": 0.0, "full_s": 0.0}
    per_epoch = trials["time_s"] / trials["epochs"].clip(lower=1)
    left = (trials["planned_epochs"].fillna(trials["epochs"]) - trials["epochs"]).clip(lower=0)
    saved = float((per_epoch * left)[trials["status"] == "stopped"].sum())
    spent = float(trials["time_s"].sum())
    wall = float(trials["wall_time_s"].fillna(trials.get("time_total_s", 0)).sum()) \
        if "wall_time_s" in trials else 0.0
    return {"spent_s": spent, "wall_s": wall, "saved_s": saved, "full_s": spent + saved}


def _scheduler_line(exp: Experiment) -> str:
    s = exp.spec.get("scheduler") or {}
    rungs = ", ".join(str(r) for r in exp.rungs)
    if s.get("name") == "asha":
        brackets = s.get("brackets") or 1
        return (f"ASHA (max_t {s.get('max_t')}, grace period {s.get('grace_period')}, reduction factor "
                f"{s.get('reduction_factor'):g}" + (f", {brackets} brackets" if brackets > 1 else "")
                + (f", ranking by {s['metric']}" if s.get("metric") else "") + f"; rungs at epochs {rungs})")
    if s.get("name") == "hyperband":
        return (f"HyperBand (max_t {s.get('max_t')}, reduction factor {s.get('reduction_factor'):g}"
                + (f", ranking by {s['metric']}" if s.get("metric") else "") + f"; its brackets halve at epochs {rungs})")
    return "none (every trial runs all its epochs)" if s else "unknown (no scenetune_spec.yaml)"


def trials_table(exp: Experiment, infeasible: list[str] | None = None) -> pd.DataFrame:
    """One row per trial, best first; with ``infeasible`` (a constrained
    sweep's trials past its bounds), a ``feasible`` column."""
    columns = ["trial_id", "status", "epochs", "stopped_at_rung", f"last_{exp.metric}", "train_time_s",
               "wall_time_s", "failures"]
    table = exp.trials[[c for c in columns if c in exp.trials]].rename(columns={"trial_id": "trial"})
    if infeasible is not None:
        table["feasible"] = ~table["trial"].astype(str).isin(infeasible)
    ascending = exp.mode == "min"
    key = f"last_{exp.metric}"
    table = table.sort_values(key, ascending=ascending, na_position="last") if key in table else table
    table.attrs["floatfmt"] = ".4g"
    return table.reset_index(drop=True)


def overview_section(exp: Experiment) -> Section:
    counts = exp.trials["status"].value_counts().to_dict()
    search = exp.spec.get("search") or {}
    stopped = exp.trials[exp.trials["status"] == "stopped"]
    at_rungs = stopped["stopped_at_rung"].dropna().astype(int).value_counts().sort_index() \
        if "stopped_at_rung" in stopped else pd.Series(dtype=int)
    rung_text = (" (" + ", ".join(f"{n} at rung {r}" for r, n in at_rungs.items()) + ")") if len(at_rungs) else ""
    others = {s: n for s, n in counts.items() if s not in ("completed", "stopped", "errored")}
    money = compute_account(exp)
    best = best_in_report(exp)
    final = read_final(exp.uri)
    lines = [
        f"Experiment `{exp.name}` at `{exp.uri}`: trainable `{exp.spec.get('trainable', 'classifier')}`, "
        f"ranked by `{exp.metric}` ({exp.mode}); search: {search.get('algorithm', '?')}"
        + (f" ({search['sampler']})" if search.get("algorithm") == "optuna" and search.get("sampler") else "")
        + f"; scheduler: {_scheduler_line(exp)}.",
        "",
        f"- **{len(exp.trials)} trials**: {counts.get('completed', 0)} completed, {len(stopped)} stopped early by "
        f"the scheduler{rung_text}, {counts.get('errored', 0)} errored"
        + "".join(f", {n} {s}" for s, n in others.items()) + ".",
        f"- **Compute**: {money['spent_s']:.1f} s of training (fit time summed over every trial's epochs); "
        f"{money['wall_s']:.1f} s of trial wall time (including data preparation and model building).",
    ]
    if money["saved_s"] > 0:
        lines.append(f"- **Saved by stopping early**: about {money['saved_s']:.1f} s of training, the epochs the "
                     f"stopped trials did not run at each one's mean epoch time: "
                     f"{100 * money['saved_s'] / money['full_s']:.0f}% of the {money['full_s']:.1f} s that running "
                     "every trial to its end would have cost.")
    constraints = exp.spec.get("constraints") or []
    infeasible = infeasible_trials(exp)
    if constraints:
        bounds = ", ".join(f"`{describe(c)}`" for c in constraints)
        reported = exp.epochs["trial_id"].nunique()
        lines.append(f"- **Constraints** ({bounds}): {len(infeasible)} of the {reported} trials that reported "
                     "results break them (the trials table's `feasible`); "
                     + ("the best trial is the best of the others." if len(infeasible) < reported else
                        "every one does, so the best trial below breaks them too."))
    lines.append(f"- **Best trial**: `{best['trial_id']}` ({best['status']}), `{exp.metric}` "
                 f"{best[exp.metric]:.4g} at epoch {best['epoch']}.")
    if final is not None:
        m = final.metrics
        how = f"retrained on train + validation for {m.get('epochs')} epochs" if m.get("retrain") \
            else f"its checkpoint of epoch {m.get('epochs')}"
        lines.append(f"- **Final evaluation** (once, on the test split): trial `{final.trial_id}` ({how}): "
                     f"accuracy **{m['accuracy']:.4g}**, loss {m['loss']:.4g} on {m['test_images']} test images.")
    else:
        lines.append(f"- **No final evaluation yet**: `scenetune evaluate {exp.uri}` evaluates the best trial on "
                     "the test split, once; until then the tables show validation figures.")
    lines += ["", "The best configuration (paste under a spec's `fixed:` to train it again):", "",
              "```yaml", yaml.safe_dump(best["config"], sort_keys=True).rstrip(), "```"]
    if exp.warnings:
        lines += ["", "Read with warnings:", ""] + [f"- {w}" for w in exp.warnings]
    tables = {"trials": trials_table(exp, infeasible if constraints else None)}
    if not exp.errored.empty:
        errored = exp.errored.rename(columns={"trial_id": "trial"}).reset_index(drop=True)
        tables["errored_trials"] = errored
    return Section("The experiment", "\n".join(lines), tables=tables)
