"""The earlier trials of benchmarks/warm_start.py's scenarios: paired again
with the curves that answered them, made unrelated (values reversed, params
shuffled), and what Ray Tune's own warm start
(``points_to_evaluate`` + ``evaluated_rewards``) can take of them."""

from __future__ import annotations

import warnings

import numpy as np


def as_answered(rec, trials: list, folder: str) -> list:
    """The same earlier trials with the params of the recorded trial that
    answered each. A replay answers a sampled configuration with the curve of
    the nearest recorded trial not yet used, which can lie far off; in a real
    experiment a trial's config and its curve belong together, and this pairs
    them again. (The replay's experiment records the sampled configs.)"""
    import optuna

    from scenetune.analysis import load_experiment

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epochs = load_experiment(folder).epochs
    answered = epochs.groupby("trial_id")["recorded_trial"].first()
    out = []
    for t in trials:
        row = rec.configs.loc[answered[t.user_attrs["trial_id"]]]
        params = {}
        for key, dist in t.distributions.items():
            value = row[key]
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                value = next(c for c in dist.choices if c == value)  # the declared choice (an int, not 16.0)
            else:
                value = dist.to_external_repr(dist.to_internal_repr(float(value)))
            params[key] = value
        out.append(optuna.trial.create_trial(state=t.state, value=t.value, params=params,
                                             distributions=dict(t.distributions), user_attrs=dict(t.user_attrs),
                                             intermediate_values=dict(t.intermediate_values)))
    return out


def reversed_values(trials: list) -> list:
    """Adversarial: each value v -> lo + hi - v (lo, hi: the lowest and highest
    of the trials' values and intermediate values), so the best look worst."""
    import optuna

    values = [t.value for t in trials if t.value is not None]
    values += [v for t in trials for v in t.intermediate_values.values()]
    lo, hi = min(values), max(values)
    return [optuna.trial.create_trial(state=t.state, value=None if t.value is None else lo + hi - t.value,
                                      params=dict(t.params), distributions=dict(t.distributions),
                                      user_attrs=dict(t.user_attrs),
                                      intermediate_values={s: lo + hi - v for s, v in t.intermediate_values.items()})
            for t in trials]


def shuffled_params(trials: list, seed: int) -> list:
    """No relation: each trial's params taken from another trial (a seeded
    permutation); its state, value and values by epoch kept."""
    import optuna

    order = np.random.default_rng(seed).permutation(len(trials))
    return [optuna.trial.create_trial(state=t.state, value=t.value, params=dict(trials[j].params),
                                      distributions=dict(trials[j].distributions), user_attrs=dict(t.user_attrs),
                                      intermediate_values=dict(t.intermediate_values))
            for t, j in zip(trials, order)]


def ray_peer(trials: list) -> tuple[list[dict], list[float]]:
    """What Ray's OptunaSearch can take of the same trials: configs and last values (no curves)."""
    kept = [t for t in trials if t.value is not None]
    return [dict(t.params) for t in kept], [float(t.value) for t in kept]
