"""Hyperparameter importance: an Optuna study rebuilt from the trial logs,
measured by ``optuna.importance``.

Each trial that reported the experiment's metric becomes a finished
``optuna.trial.FrozenTrial`` (``optuna.trial.create_trial``) with its searched
parameters and its last value of the metric. The distributions are the
spec's own space declarations, converted by :mod:`spaces` (the one converter
the sweep used); without a spec space they are inferred from the values.
"""

from __future__ import annotations

import logging
import math

import optuna
import pandas as pd

from scenetune.analysis.experiment import Experiment
from scenetune.analysis.tables import scored_trials
from scenetune.spaces import optuna_distribution, parse_space

MIN_TRIALS = 3  # fANOVA's forest needs a few points to say anything


def _distributions(exp: Experiment, trials: pd.DataFrame) -> dict[str, optuna.distributions.BaseDistribution]:
    space = exp.spec.get("space") or {}
    if space:
        out = {}
        for key, param in parse_space(space).items():
            if param.kind == "grid":  # grid axes have no Optuna kind of their own: categorical
                out[key] = optuna.distributions.CategoricalDistribution(list(param.args))
            else:
                out[key] = optuna_distribution(param)
        return out
    out = {}
    for column in trials.columns:
        if not column.startswith("config/") or trials[column].map(lambda v: isinstance(v, (list, dict))).any():
            continue  # list values (progressive_resize...) are settings, not searched parameters
        if trials[column].nunique(dropna=True) < 2:
            continue
        values = trials[column].dropna()
        key = column.removeprefix("config/")
        if pd.api.types.is_float_dtype(values):
            out[key] = optuna.distributions.FloatDistribution(float(values.min()), float(values.max()))
        elif pd.api.types.is_integer_dtype(values) and not pd.api.types.is_bool_dtype(values):
            out[key] = optuna.distributions.IntDistribution(int(values.min()), int(values.max()))
        else:
            out[key] = optuna.distributions.CategoricalDistribution(sorted(values.unique().tolist(), key=str))
    return out


def rebuild_study(exp: Experiment) -> optuna.Study | None:
    """An in-memory study holding every scored trial; None when fewer than
    ``MIN_TRIALS`` trials or no searched parameter varies."""
    trials = scored_trials(exp)
    trials = trials[trials["score"].map(math.isfinite)]
    distributions = _distributions(exp, trials)
    distributions = {k: d for k, d in distributions.items()
                     if f"config/{k}" in trials and trials[f"config/{k}"].nunique(dropna=True) > 1}
    if len(trials) < MIN_TRIALS or not distributions:
        return None
    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(direction="maximize" if exp.mode == "max" else "minimize")
    for _, row in trials.iterrows():
        params = {}
        for key, distribution in distributions.items():
            value = row[f"config/{key}"]
            if pd.isna(value):
                break
            params[key] = value.item() if hasattr(value, "item") else value
        else:
            try:
                study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions,
                                                          value=float(row["score"])))
            except ValueError:  # a value outside the declared space (edited spec): leave the trial out
                continue
    return study if len(study.trials) >= MIN_TRIALS else None


def param_importances(exp: Experiment, seed: int = 0) -> tuple[pd.Series, str] | None:
    """``(importances by parameter, evaluator name)``, or None when the
    experiment has too few trials to measure it."""
    study = rebuild_study(exp)
    if study is None:
        return None
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    scores = optuna.importance.get_param_importances(study, evaluator=evaluator)
    return pd.Series(scores, dtype=float), "fANOVA"
