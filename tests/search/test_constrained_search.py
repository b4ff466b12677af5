"""FeasibleFirstSampler (search/constrained_search.py): a model-based draw
that the finished trials say probably breaks a bound is drawn again. Real
Optuna studies and samplers; the constraint is set on each trial as
ConstrainedOptunaSearch does (``Trial.set_constraint``)."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from scenetune.search.constrained_search import REDRAWS, FeasibleFirstSampler, feasible_odds

SPACE = {"filters": CategoricalDistribution([8, 16, 32, 64]), "lr": FloatDistribution(1e-4, 1e-1, log=True)}
STARTUP = 5


def told(params: dict, over: float) -> optuna.trial.FrozenTrial:
    study = optuna.create_study()
    trial = study.ask(SPACE)
    for name, value in params.items():
        trial.storage.set_trial_param(trial._trial_id, name, SPACE[name].to_internal_repr(value), SPACE[name])
    trial.set_constraint("model_mb", over)
    study.tell(trial, 0.5)
    return study.trials[0]


def test_the_odds_follow_the_trials_that_are_alike():
    broke = [told({"filters": 64, "lr": 0.01}, 1.0), told({"filters": 64, "lr": 0.001}, 2.0)]
    kept = [told({"filters": 8, "lr": 0.01}, 0.0)]
    assert feasible_odds({"filters": 64, "lr": 0.003}, [], SPACE) == 0.5  # nothing known: even odds
    like_broke = feasible_odds({"filters": 64, "lr": 0.003}, broke + kept, SPACE)
    like_kept = feasible_odds({"filters": 8, "lr": 0.003}, broke + kept, SPACE)
    unseen = feasible_odds({"filters": 16, "lr": 0.003}, broke + kept, SPACE)
    assert like_broke < 0.25 < unseen < 0.5 < like_kept, (like_broke, unseen, like_kept)
    # a number counts by its distance: the same filters far off in learning rate weigh less
    near = feasible_odds({"filters": 64, "lr": 0.01}, broke[:1] + kept, SPACE)
    far = feasible_odds({"filters": 64, "lr": 0.1}, broke[:1] + kept, SPACE)
    assert near < far


def sweep(sampler: optuna.samplers.BaseSampler, trials: int = 40) -> list[bool]:
    """Trials where 64 filters score best and break the bound (32 keeps it
    and scores next): whether each trial after the start-up kept the bound."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    kept = []
    for _ in range(trials):
        trial = study.ask(SPACE)
        filters, lr = trial.params["filters"], trial.params["lr"]
        over = max(0.0, filters - 32) / 32
        trial.set_constraint("model_mb", over)
        study.tell(trial, filters / 64 - abs(lr - 0.01))
        kept.append(over == 0)
    return kept[STARTUP:]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_redraws_keep_more_trials_within_the_bound_than_the_sampler_alone(seed):
    alone = sweep(optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP))
    wrapped = FeasibleFirstSampler(optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP))
    first = sweep(wrapped)
    assert wrapped.redrawn > 0
    assert sum(first) > sum(alone), (sum(first), sum(alone))
    assert sum(first) >= 0.85 * len(first), sum(first)  # TPE alone: 80-86% on seeds 0-5


def test_start_up_draws_and_unconstrained_studies_are_left_alone():
    wrapped = FeasibleFirstSampler(optuna.samplers.TPESampler(seed=0, n_startup_trials=STARTUP))
    study = optuna.create_study(direction="maximize", sampler=wrapped)
    study.optimize(lambda t: t.suggest_categorical("filters", [8, 16, 32, 64]) / 64, n_trials=20)
    assert wrapped.redrawn == 0  # no trial told constraints: nothing to redraw on
    plain = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=STARTUP))
    plain.optimize(lambda t: t.suggest_categorical("filters", [8, 16, 32, 64]) / 64, n_trials=20)
    assert [t.params for t in study.trials] == [t.params for t in plain.trials]


def test_when_every_draw_looks_infeasible_the_most_hopeful_is_kept():
    # every trial so far broke the bound: all draws score below even odds, so REDRAWS are made
    # and the draw kept is the one least like them (its odds the highest of those drawn)
    wrapped = FeasibleFirstSampler(optuna.samplers.TPESampler(seed=0, n_startup_trials=STARTUP), redraws=REDRAWS)
    study = optuna.create_study(direction="maximize", sampler=wrapped)
    for filters in (64, 64, 64, 64, 64):
        study.enqueue_trial({"filters": filters, "lr": 0.01})
        trial = study.ask(SPACE)
        trial.set_constraint("model_mb", 1.0)
        study.tell(trial, 1.0)
    trial = study.ask(SPACE)
    assert wrapped.redrawn == REDRAWS - 1
    assert trial.params["filters"] != 64
