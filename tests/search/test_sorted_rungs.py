"""ASHA's rung cut-offs from sorted rungs (search/sorted_rungs.py): the same
number as Ray's ``_Bracket.cutoff`` (numpy's percentile of every recorded
result) after every result recorded, with Ray's own bracket."""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pytest
from ray.tune.schedulers.async_hyperband import _Bracket

from scenetune.search.schedulers import make_scheduler
from scenetune.search.sorted_rungs import SortedRung, numpy_linear_percentile


def same(a, b) -> bool:
    return (a is None and b is None) or (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("rf", [2.0, 3.0, 4.0])
def test_every_cut_off_is_ray_s_number_as_results_are_recorded(rf):
    rng = random.Random(int(rf))
    bracket = _Bracket(min_t=1, max_t=27, reduction_factor=rf, s=0)
    sorted_rung = SortedRung(bracket)
    for milestone, recorded in bracket._rungs:
        for i in range(400):
            kind = rng.random()
            value = (math.nan if kind < 0.05 else rng.choice([0.25, 0.5]) if kind < 0.2 else rng.randint(0, 3)
                     if kind < 0.3 else -math.inf if kind < 0.32 else rng.random())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # numpy's "All-NaN slice"
                ray_s = _Bracket.cutoff(bracket, recorded)
            assert same(sorted_rung(recorded), ray_s), (milestone, i)
            recorded[f"t{milestone}-{i}"] = value
    others = dict(list(bracket._rungs[-1][1].items())[1:])  # a held trial's others: not a rung
    assert sorted_rung(others) == _Bracket.cutoff(bracket, others)


def test_the_percentile_is_numpy_s_on_sorted_values():
    rng = np.random.default_rng(0)
    for n in range(1, 60):
        values = sorted(rng.normal(size=n).round(rng.integers(0, 4)).tolist())
        for percent in (50, (1 - 1 / 3.0) * 100, 75, (1 - 1 / 4.0) * 100, 100, 0):  # as Ray passes them
            assert numpy_linear_percentile(values, percent / 100) == np.percentile(values, percent)


def test_asha_s_brackets_use_sorted_rungs_also_once_pickled():
    import pickle

    scheduler = make_scheduler({"name": "asha", "max_t": 9, "brackets": 2, "metric": "val_loss", "mode": "min"})
    assert all(isinstance(bracket.cutoff, SortedRung) for bracket in scheduler._brackets)
    bracket = scheduler._brackets[0]
    for i, value in enumerate([0.3, 0.1, 0.7, 0.2]):
        bracket._rungs[-1][1][f"t{i}"] = value
    restored = pickle.loads(pickle.dumps(scheduler))._brackets[0]
    for b in (bracket, restored):
        assert b.cutoff(b._rungs[-1][1]) == _Bracket.cutoff(b, b._rungs[-1][1])
        assert b.cutoff({"a": 0.5, "b": 0.9}) == _Bracket.cutoff(b, {"a": 0.5, "b": 0.9})
