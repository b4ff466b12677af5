"""BoundedHistorySampler (search/bounded_history.py): TPE shown at most a
window of finished trials, the best of all and the most recent, so that a
suggestion's cost stops growing with the study. Real Optuna studies."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.samplers._tpe.sampler import _split_trials
from optuna.trial import TrialState, create_trial

from scenetune.search.bounded_history import BoundedHistorySampler, StudyView
from scenetune.search.tuner import make_sampler

SPACE = {"x": FloatDistribution(-5.0, 5.0), "kind": CategoricalDistribution(["a", "b", "c"])}


def objective(params: dict) -> float:
    return (params["x"] - 1.0) ** 2 + (0.0 if params["kind"] == "b" else 2.0)


def run(sampler, n: int, direction: str = "minimize") -> optuna.Study:
    study = optuna.create_study(sampler=sampler, direction=direction)
    for _ in range(n):
        trial = study.ask(fixed_distributions=SPACE)
        study.tell(trial, objective(trial.params))
    return study


def mixed_study(n: int, seed: int = 0) -> optuna.Study:
    """``n`` finished trials, about half of them pruned at epochs 1 to 3 with
    their values by epoch (a sweep under ASHA), values random."""
    import random

    draw = random.Random(seed)
    study = optuna.create_study(direction="maximize")
    for number in range(n):
        params = {"x": draw.uniform(-5, 5), "kind": draw.choice("abc")}
        if draw.random() < 0.5:
            last = draw.randint(1, 3)
            study.add_trial(create_trial(params=params, distributions=SPACE, state=TrialState.PRUNED,
                                         intermediate_values={e: draw.random() for e in range(1, last + 1)}))
        else:
            study.add_trial(create_trial(params=params, distributions=SPACE, value=draw.random(),
                                         intermediate_values={e: draw.random() for e in range(1, 10)}))
    return study


def test_up_to_the_window_it_draws_exactly_what_tpe_alone_draws():
    alone = run(optuna.samplers.TPESampler(seed=3, n_startup_trials=5), 40)
    bounded = run(BoundedHistorySampler(optuna.samplers.TPESampler(seed=3, n_startup_trials=5), window=40,
                                        keep_best=10), 40)
    assert [t.params for t in bounded.trials] == [t.params for t in alone.trials]


def test_past_the_window_tpe_sees_the_best_of_all_and_the_most_recent():
    study = mixed_study(600)
    sampler = BoundedHistorySampler(optuna.samplers.TPESampler(seed=0), window=200, keep_best=30)
    view = sampler.bounded(study)
    assert isinstance(view, StudyView)
    seen = view.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(seen) == 200
    assert [t.number for t in seen] == sorted(t.number for t in seen)
    finished = study.get_trials(deepcopy=False)
    # TPE's good set (25 trials at most) is the one it would take from the whole study
    n_below = 25
    everything, _ = _split_trials(study, finished, n_below)
    windowed, _ = _split_trials(study, seen, n_below)
    assert [t.number for t in windowed] == [t.number for t in everything]
    # and the rest of the window is the most recent trials
    numbers = {t.number for t in seen}
    assert set(range(600 - 150, 600)) <= numbers
    assert len(numbers - set(range(600 - 200, 600))) >= 10  # best trials from before the recent ones


def test_the_best_are_kept_as_the_study_grows():
    """The best trials are ranked as the trials come (each ranked once): an
    early best stays in the window after hundreds of later trials."""
    study = optuna.create_study(direction="minimize")
    sampler = BoundedHistorySampler(optuna.samplers.TPESampler(seed=0), window=50, keep_best=5)
    for number in range(300):
        value = -100.0 if number == 7 else float(number % 17)
        study.add_trial(create_trial(params={"x": 0.0, "kind": "a"}, distributions=SPACE, value=value))
        if number % 25 == 0:
            sampler.bounded(study)
    seen = sampler.bounded(study).get_trials(deepcopy=False)
    assert 7 in {t.number for t in seen}
    assert len(seen) == 50


def test_a_sweep_past_the_window_still_learns():
    """Over 300 trials with a window of 60, the last 100 trials lie nearer the
    optimum than random search's, and its best is within TPE-alone's reach."""
    bounded = run(BoundedHistorySampler(optuna.samplers.TPESampler(seed=1, n_startup_trials=10), window=60,
                                        keep_best=10), 300)
    random = run(optuna.samplers.RandomSampler(seed=1), 300)
    late = lambda study: sum(t.value for t in study.trials[-100:]) / 100
    assert late(bounded) < 0.5 * late(random)
    assert bounded.best_value < 0.05


def test_multi_objective_studies_are_left_whole():
    study = optuna.create_study(directions=["minimize", "maximize"])
    for number in range(30):
        study.add_trial(create_trial(params={"x": number / 10, "kind": "a"}, distributions=SPACE,
                                     values=[float(number), -float(number)]))
    assert BoundedHistorySampler(optuna.samplers.TPESampler(), window=10, keep_best=2).bounded(study) is study


def test_a_pruned_trial_without_values_ranks_last_among_pruned_and_nan_after_numbers():
    from scenetune.search.bounded_history import tpe_rank

    pruned = lambda values: create_trial(params={"x": 0.0, "kind": "a"}, distributions=SPACE,
                                         state=TrialState.PRUNED, intermediate_values=values)
    far, near, nan, none = pruned({1: 0.1, 3: 0.2}), pruned({1: 0.9}), pruned({3: math.nan}), pruned({})
    ranks = sorted([(tpe_rank(t, -1.0), name) for t, name in ((far, "far"), (near, "near"), (nan, "nan"),
                                                               (none, "none"))])
    assert [name for _, name in ranks] == ["far", "nan", "near", "none"]


def test_tpe_sweeps_use_it_and_bad_settings_are_refused():
    sampler = make_sampler("tpe", 0, 40)
    assert isinstance(sampler, BoundedHistorySampler) and isinstance(sampler.base, optuna.samplers.TPESampler)
    with pytest.raises(ValueError, match="keep_best"):
        BoundedHistorySampler(optuna.samplers.TPESampler(), window=10, keep_best=10)


def reference_window(study: optuna.Study, window: int, keep_best: int) -> list[int]:
    """The numbers of the trials the window should hold, from the whole study at once."""
    from scenetune.search.bounded_history import FINISHED, tpe_rank

    finished = [t for t in study.get_trials(deepcopy=False) if t.state in FINISHED]
    if len(finished) <= window:
        return [t.number for t in finished]
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    best = {t.number for t in sorted(finished, key=lambda t: (tpe_rank(t, sign), t.number))[:keep_best]}
    recent = [t.number for t in finished if t.number not in best][-(window - keep_best):]
    return sorted(best | set(recent))


def test_trials_that_end_out_of_order_fail_or_wait_are_read_as_a_whole_study_reads():
    """The window is kept as trials end, reading only what changed since the
    last suggestion: trials that end in another order than they began, that
    fail (never in the window), that wait in the queue, give at every step the
    window read from the whole study at once."""
    import random

    draw = random.Random(5)
    study = optuna.create_study(direction="maximize")
    sampler = BoundedHistorySampler(optuna.samplers.TPESampler(seed=0), window=40, keep_best=6)
    running = []
    for step in range(400):
        if draw.random() < 0.1:
            study.enqueue_trial({"x": draw.uniform(-5, 5), "kind": "a"})
        while len(running) < 8:
            running.append(study.ask(fixed_distributions=SPACE))
        trial = running.pop(draw.randrange(len(running)))
        outcome = draw.random()
        if outcome < 0.1:
            study.tell(trial, state=TrialState.FAIL)
        elif outcome < 0.55:
            for epoch in range(1, draw.randint(1, 3) + 1):
                trial.report(draw.random(), epoch)
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, draw.random())
        if step % 3 == 0:
            seen = sampler.bounded(study).get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            assert [t.number for t in seen] == reference_window(study, 40, 6), step
    assert len(seen) == 40 and any(t.state == TrialState.FAIL for t in study.trials)
