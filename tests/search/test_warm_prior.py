"""PriorForStartup (search/warm_prior.py): a warm-started sweep's earlier
trials shown to TPE for the sweep's start-up trials only. Real Optuna studies."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from scenetune.core.layout import OTHER_SIZE_ATTR, WARM_START_ATTR
from scenetune.search.warm_prior import PriorForStartup

SPACE = {"x": FloatDistribution(0.0, 10.0)}


def warm_study(sampler, best_at: float) -> optuna.Study:
    """A study that starts with 25 earlier trials spread over the range
    (marked as warm start reads them), valued by their distance to
    ``best_at``, as ``study_with_points`` builds it."""
    study = optuna.create_study(sampler=sampler, direction="minimize")
    for i in range(25):
        x = 0.2 + 0.4 * i
        study.add_trial(create_trial(params={"x": x}, distributions=SPACE, value=abs(x - best_at),
                                     user_attrs={WARM_START_ATTR: "s3://b/earlier"}))
    return study


def test_the_start_up_trials_see_the_earlier_ones_and_the_rest_the_sweep_s_own():
    sampler = PriorForStartup(optuna.samplers.TPESampler(seed=0, n_startup_trials=4), startup=4)
    study = warm_study(sampler, best_at=2.5)
    firsts = []
    for number in range(10):
        trial = study.ask(fixed_distributions=SPACE)
        seen = sampler.seen(study, trial._cached_frozen_trial).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        warm_seen = sum(WARM_START_ATTR in t.user_attrs for t in seen)
        own_seen = len(seen) - warm_seen
        if number < 4:  # the start-up: earlier trials and the sweep's own so far
            assert (warm_seen, own_seen) == (25, number)
            firsts.append(trial.params["x"])
        else:  # past it: the sweep's own trials alone, as a cold sweep past its start-up
            assert (warm_seen, own_seen) == (0, number)
        study.tell(trial, abs(trial.params["x"] - 8.0))  # this task's best is at 8, not at 2.5
    assert all(abs(x - 2.5) < 3.0 for x in firsts), "the start-up trials follow the earlier trials"


def test_a_sweep_with_a_wrong_prior_finds_its_own_best_after_the_start_up():
    """The earlier trials put the best at 2.5; this task's is at 8. Past the
    start-up TPE follows the sweep's own results; TPE shown the earlier
    trials throughout stays pulled to 2.5 for longer."""
    def late_mean(sampler) -> float:
        study = warm_study(sampler, best_at=2.5)
        values = []
        for _ in range(30):
            trial = study.ask(fixed_distributions=SPACE)
            values.append(abs(trial.params["x"] - 8.0))
            study.tell(trial, values[-1])
        return sum(values[10:]) / 20

    hedged = [late_mean(PriorForStartup(optuna.samplers.TPESampler(seed=s, n_startup_trials=4), startup=4))
              for s in range(3)]
    whole = [late_mean(optuna.samplers.TPESampler(seed=s, n_startup_trials=4)) for s in range(3)]
    assert sum(hedged) < sum(whole)


def test_a_cold_study_is_left_whole():
    sampler = PriorForStartup(optuna.samplers.TPESampler(seed=0), startup=2)
    study = optuna.create_study(sampler=sampler)
    for _ in range(5):
        trial = study.ask(fixed_distributions=SPACE)
        study.tell(trial, trial.params["x"])
    assert [t.number for t in sampler.seen(study).get_trials(deepcopy=False)] == list(range(5))


def test_a_sweep_takes_it_by_default_unless_its_earlier_trials_ran_at_another_image_size():
    from scenetune.search.bounded_history import BoundedHistorySampler
    from scenetune.search.spec import parse_spec
    from scenetune.search.tuner import searcher_and_space

    def sampler_of(prior: str | None, warm: list):
        search = {"num_samples": 12, **({"warm_start_prior": prior} if prior else {})}
        spec = parse_spec({"name": "x", "trainable": "classifier", "data": {"root": "/tmp"}, "search": search,
                           "space": {"dropout": {"uniform": [0.0, 0.5]}}})
        return searcher_and_space(spec, warm=warm)[0]._sampler

    earlier = [create_trial(params={"dropout": 0.1}, distributions={"dropout": FloatDistribution(0.0, 0.5)},
                            value=0.8, user_attrs={WARM_START_ATTR: "/tmp/earlier"})]
    at_32 = [create_trial(params={"dropout": 0.1}, distributions={"dropout": FloatDistribution(0.0, 0.5)},
                          value=0.8, user_attrs={WARM_START_ATTR: "/tmp/earlier", OTHER_SIZE_ATTR: 32})]
    for prior, trials in (("startup", earlier), (None, earlier), ("auto", earlier), ("startup", at_32)):
        chosen = sampler_of(prior, trials)
        assert isinstance(chosen, PriorForStartup) and chosen.startup == 3, (prior, trials)
        assert isinstance(chosen.base, BoundedHistorySampler)
    # the whole sweep: when asked, or by default when the earlier trials ran at another image size
    for prior, trials in (("whole", earlier), (None, at_32), ("auto", at_32)):
        assert isinstance(sampler_of(prior, trials), BoundedHistorySampler), (prior, trials)
    assert isinstance(sampler_of("startup", []), BoundedHistorySampler)  # a cold sweep


def test_past_the_start_up_the_bounded_history_reads_the_sweep_s_own_trials_as_they_end():
    """Under scenetune's TPE (the bounded history, which reads a study's
    trials by position as they end), trials that end out of order past the
    start-up give the window of the sweep's own trials read all at once."""
    import random

    from scenetune.search.bounded_history import BoundedHistorySampler
    from tests.search.test_bounded_history import reference_window

    draw = random.Random(1)
    bounded = BoundedHistorySampler(optuna.samplers.TPESampler(seed=0, n_startup_trials=4), window=30, keep_best=5)
    sampler = PriorForStartup(bounded, startup=4)
    study = warm_study(sampler, best_at=2.5)
    running = []
    for step in range(120):
        while len(running) < 4:
            running.append(study.ask(fixed_distributions=SPACE))
        trial = running.pop(draw.randrange(len(running)))
        study.tell(trial, abs(trial.params["x"] - 8.0))
        if step >= 4:
            seen = bounded.bounded(sampler.seen(study)).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            own_only = optuna.create_study(direction="minimize")  # the same own trials, without the earlier ones
            own_only.add_trials([t for t in study.get_trials() if WARM_START_ATTR not in t.user_attrs])
            offset = 25  # the earlier trials come first
            assert [t.number - offset for t in seen] == reference_window(own_only, 30, 5), step


def test_a_sampler_past_its_start_up_pickles_and_draws_on_as_before():
    """Ray Tune pickles the searcher, sampler included, at each snapshot and
    unpickles it on --resume: a wrapper holding a view of the study comes
    back and draws what the unpickled study would."""
    import pickle

    sampler = PriorForStartup(optuna.samplers.TPESampler(seed=0, n_startup_trials=4), startup=4)
    study = warm_study(sampler, best_at=2.5)
    for _ in range(8):
        trial = study.ask(fixed_distributions=SPACE)
        study.tell(trial, abs(trial.params["x"] - 8.0))
    assert sampler._view is not None
    copy = pickle.loads(pickle.dumps(study))
    again = [study.ask(fixed_distributions=SPACE).params["x"], copy.ask(fixed_distributions=SPACE).params["x"]]
    assert copy.sampler._view[0] == 33 and again[0] == again[1]


def test_the_best_configurations_at_another_image_size_run_first():
    """``search.warm_start_rerun_best``: the k best earlier trials that ran at
    another image size (by their last value, a stopped trial's too), best
    first, enqueued after the spec's points; same-size trials and trials
    without a value are not run again."""
    from scenetune.search.spec import parse_spec
    from scenetune.search.tuner import searcher_and_space
    from scenetune.search.warm_prior import reruns

    dropout = {"dropout": FloatDistribution(0.0, 0.5)}

    def earlier(x: float, value: float | None, size: int | None, state=TrialState.COMPLETE):
        attrs = {WARM_START_ATTR: "/tmp/earlier", **({OTHER_SIZE_ATTR: size} if size else {})}
        return create_trial(params={"dropout": x}, distributions=dropout, state=state, value=value,
                            intermediate_values={1: value if value is not None else 0.99}, user_attrs=attrs)

    warm = [earlier(0.1, 0.70, 32), earlier(0.2, 0.90, 32), earlier(0.3, 0.99, None), earlier(0.4, 0.80, 32),
            earlier(0.45, None, 32, TrialState.PRUNED), earlier(0.05, 0.60, 32)]
    assert reruns(warm, 3, "max") == [{"dropout": 0.2}, {"dropout": 0.4}, {"dropout": 0.1}]
    assert reruns(warm, 2, "min") == [{"dropout": 0.05}, {"dropout": 0.1}]
    stopped = earlier(0.15, 0.85, 32, TrialState.PRUNED)  # stopped at a rung, with its last value
    assert reruns([*warm, stopped], 3, "max") == [{"dropout": 0.2}, {"dropout": 0.15}, {"dropout": 0.4}]
    assert reruns(warm, 0, "max") == [] and reruns(warm[2:3], 3, "max") == []

    def first_trials(rerun_best: int | None, num_samples: int = 8) -> list[dict]:
        search = {"num_samples": num_samples, "points": [{"dropout": 0.25}],
                  **({"warm_start_rerun_best": rerun_best} if rerun_best is not None else {})}
        spec = parse_spec({"name": "x", "trainable": "classifier", "data": {"root": "/tmp"}, "search": search,
                           "space": {"dropout": {"uniform": [0.0, 0.5]}}})
        searcher = searcher_and_space(spec, warm=warm)[0]
        study = optuna.load_study(study_name=searcher._study_name, storage=searcher._storage)
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        return [t.system_attrs["fixed_params"] for t in waiting]

    assert first_trials(None) == [{"dropout": 0.25}, {"dropout": 0.2}, {"dropout": 0.4}, {"dropout": 0.1}]
    assert first_trials(1) == [{"dropout": 0.25}, {"dropout": 0.2}]
    assert first_trials(0) == [{"dropout": 0.25}]
    assert first_trials(None, num_samples=3) == [{"dropout": 0.25}, {"dropout": 0.2}, {"dropout": 0.4}]  # 3 trials
    assert first_trials(None, num_samples=1) == [{"dropout": 0.25}]
