"""Earlier experiments as the first trials of a new sweep's Optuna study
(``search.warm_start``, ``scenetune sweep --warm-start URI``).

Each earlier trial that finished enters the study: one that completed as a
COMPLETE trial with its value, one the scheduler stopped as a PRUNED trial
with its values by epoch (TPE ranks pruned trials by how far they got), each
with its real start and end (the reading ``scenetune export --optuna`` uses,
:func:`scenetune.analysis.study.experiment_trials`). TPE counts them towards
its random start-up trials, so a warm start with enough of them skips it.

A trial is used when its configuration lies in the new sweep's space: every
value the new sweep fixes is the one it had (a trial without the key is taken
to have run with it), and every searched value is one the new declaration can
take (a value its config lacks is read from its resolved config, every default
filled in: a parameter fixed, or not yet declared, before). The others are
left out, counted by reason, in one line at the start of the sweep. Trials of
another trainable, metric or mode are refused: their values mean something
else.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from scenetune.analysis.experiment import Experiment, load_experiment
from scenetune.analysis.study import experiment_trials
from scenetune.core.constraints import excesses
from scenetune.core.errors import UserError
from scenetune.core.layout import OTHER_SIZE_ATTR, WARM_START_ATTR
from scenetune.core.trees import flatten
from scenetune.spaces import parse_space, to_optuna
from scenetune.spaces.params import brief

FINISHED = ("completed", "stopped")  # what a warm start can learn from


class WarmStartError(UserError):
    """An earlier experiment whose trials cannot inform this sweep."""


@dataclass
class WarmStart:
    """What a sweep's study starts from: ``trials`` (Optuna's FrozenTrial),
    ``used`` (experiment URI -> the trial ids used), ``left_out`` (reason ->
    how many trials), ``total`` (every earlier trial), ``prior`` (reason ->
    how many of the used trials ran at another fixed image size)."""
    experiments: list[str]
    trials: list = field(default_factory=list)
    used: dict[str, list[str]] = field(default_factory=dict)
    left_out: Counter = field(default_factory=Counter)
    total: int = 0
    prior: Counter = field(default_factory=Counter)  # used, though run at another fixed image size

    def line(self) -> str:
        priors = "".join(f" ({n} {reason}: as a prior)" for reason, n in self.prior.most_common())
        reasons = "".join(f"; {n} {reason}" for reason, n in self.left_out.most_common())
        return f"warm start: {len(self.trials)} of {self.total} earlier trials used{priors}{reasons}"

    @property
    def record(self) -> dict:
        """What the experiment keeps of it (``warm_start.json``)."""
        return {"experiments": self.experiments, "used": self.used, "left_out": dict(self.left_out),
                "total": self.total, "as_prior": dict(self.prior)}


SIZE = "image_size"  # the fidelity an earlier sweep at another scale differs in (docs/spec.md#warm-start)


def read_warm_start(uris: list[str], trainable: str, objectives: list[tuple[str, str]], space: dict,
                    fixed: dict, constraints: list[dict] | None = None, other_sizes: str = "prior") -> WarmStart:
    """The trials of the experiments at ``uris`` that lie in the new sweep's
    ``space`` with its ``fixed`` values, as Optuna trials of that space.
    ``objectives``: the new sweep's (metric, mode) pairs, in order;
    ``constraints``: the new sweep's, set on each trial from its last epoch
    (core/constraints.py), as the sweep sets them on its own trials.
    ``other_sizes``: ``"prior"`` keeps a trial that ran at another fixed
    ``image_size`` (its results as they were, the size aside), counted in
    ``prior``; ``"leave_out"`` leaves it out. Trials enter in the order they
    started, as the earlier study saw them (TPE weighs its oldest trials less)."""
    params = parse_space(space)
    distributions = to_optuna(params.values())  # named as OptunaSearch names them
    fixed_values = {k: v for k, v in flatten(fixed).items() if not k.startswith("data.")}
    warm = WarmStart(list(uris))
    for uri in uris:
        exp = load_experiment(uri)
        _check_same_task(exp, uri, trainable, objectives)
        warm.total += len(exp.trials)
        rows, sizes = [], []  # sizes: the image size a trial used as a prior ran at (None: used as it is)
        trials = exp.trials.sort_values("started_at", kind="stable") if "started_at" in exp.trials else exp.trials
        for _, row in trials.iterrows():
            values = _values(exp, str(row["trial_id"]))
            reason = _left_out_because(row["status"], values, params, fixed_values)
            if reason and other_sizes == "prior" and reason.startswith(f"with {SIZE} ") and \
                    not _left_out_because(row["status"], values, params, {**fixed_values, SIZE: values.get(SIZE)}):
                warm.prior[reason] += 1  # only its image size differs: used as a prior
            elif reason:
                warm.left_out[reason] += 1
                continue
            row = row.copy()
            for key, param in params.items():  # under the names OptunaSearch gives them
                row[f"config/{'/'.join(param.path)}"] = values[key]
            rows.append(row)
            sizes.append(values.get(SIZE) if reason else None)
        if rows:
            trials = experiment_trials(exp, distributions, pd.DataFrame(rows))
            last = exp.epochs.sort_values("training_iteration").groupby("trial_id").tail(1).set_index("trial_id")
            for trial, row, size in zip(trials, rows, sizes):
                trial.set_user_attr(WARM_START_ATTR, exp.uri)
                if size is not None:
                    trial.set_user_attr(OTHER_SIZE_ATTR, size)
                metrics = last.loc[row["trial_id"]].to_dict() if row["trial_id"] in last.index else {}
                for metric, value in excesses(constraints or [], metrics).items():
                    trial.set_constraint(metric, value)
            warm.trials += trials
            warm.used[exp.uri] = [str(row["trial_id"]) for row in rows]
    return warm


def _check_same_task(exp: Experiment, uri: str, trainable: str, objectives: list[tuple[str, str]]) -> None:
    theirs = exp.spec.get("trainable", "classifier")
    if theirs != trainable:
        raise WarmStartError(f"--warm-start {uri}: its trials are {theirs} trials; this sweep's are {trainable}")
    earlier = [(o["metric"], o["mode"]) for o in exp.spec.get("objectives") or []] or [(exp.metric, exp.mode)]
    if earlier != list(objectives):
        said = ", ".join(f"{m} ({mode})" for m, mode in earlier)
        ours = ", ".join(f"{m} ({mode})" for m, mode in objectives)
        raise WarmStartError(f"--warm-start {uri}: its trials are ranked by {said}; this sweep's by {ours}")


MISSING = object()


def _values(exp: Experiment, trial_id: str) -> dict:
    """A trial's config values by dotted key: what it was given, then its defaults."""
    return {**flatten(exp.resolved.get(trial_id, {})), **flatten(exp.configs.get(trial_id, {}))}


def _left_out_because(status: str, values: dict, params: dict, fixed: dict) -> str | None:
    if status not in FINISHED:
        return "unfinished (errored, running or pending)"
    for key, value in fixed.items():
        theirs = values.get(key, MISSING)
        if theirs is not MISSING and theirs != value:
            return f"with {key} {brief(theirs)}, fixed at {brief(value)} here"
    for key, param in params.items():
        theirs = values.get(key, MISSING)
        if theirs is MISSING:
            return f"without {key} (searched here)"
        if not param.contains(theirs):
            return f"with {key} outside {brief(param.to_dict()[param.kind])} here"
    return None
