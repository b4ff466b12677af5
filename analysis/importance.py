"""Hyperparameter importance: an Optuna study rebuilt from the trial logs,
measured by ``optuna.importance``.

Each trial that reported the experiment's metric becomes a finished
``optuna.trial.FrozenTrial`` (``optuna.trial.create_trial``) with its searched
parameters and its last value of the metric. The distributions and each
trial's parameters come from :mod:`scenetune.analysis.study` (shared with
``scenetune export --optuna``): the spec's own space declarations, converted
by :mod:`spaces` (the one converter the sweep used), or without a spec space
inferred from the values. A trial missing a parameter, or with a value
outside its distribution, is left out.
"""

from __future__ import annotations

import logging
import math

import optuna
import pandas as pd

from scenetune.analysis.experiment import Experiment
from scenetune.analysis.study import space_distributions, trial_params
from scenetune.analysis.tables import group_keys, scored_trials

MIN_TRIALS = 3  # fANOVA's forest needs a few points to say anything


def rebuild_study(exp: Experiment) -> optuna.Study | None:
    """An in-memory study holding every scored trial; None when fewer than
    ``MIN_TRIALS`` trials or no searched parameter varies."""
    trials = scored_trials(exp)
    trials = trials[trials["score"].map(math.isfinite)]
    distributions = space_distributions(exp, trials)
    distributions = {k: d for k, d in distributions.items()
                     if f"config/{k}" in trials and group_keys(trials[f"config/{k}"]).nunique(dropna=True) > 1}
    if len(trials) < MIN_TRIALS or not distributions:
        return None
    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(direction="maximize" if exp.mode == "max" else "minimize")
    for _, row in trials.iterrows():
        params, _ = trial_params(row, distributions)
        if len(params) == len(distributions):  # one missing or outside the declared space (edited spec): left out
            study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions,
                                                      value=float(row["score"])))
    return study if len(study.trials) >= MIN_TRIALS else None


def param_importances(exp: Experiment, seed: int = 0) -> tuple[pd.Series, str] | None:
    """``(importances by parameter, evaluator name)``, or None when the
    experiment has too few trials to measure it, or all scored the same
    (fANOVA's forest then has no variance to share out)."""
    study = rebuild_study(exp)
    if study is None or len({t.value for t in study.trials}) < 2:  # every trial scored alike: nothing to split
        return None
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    scores = optuna.importance.get_param_importances(study, evaluator=evaluator)
    return pd.Series(scores, dtype=float), "fANOVA"
