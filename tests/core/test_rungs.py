"""The schedulers' rungs (scenetune.core.rungs) against Ray Tune's own
scheduler objects, and the users of the one schedule: progressive resizing
and the checkpoint epochs."""

import math
from types import SimpleNamespace

import pytest
from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler
from ray.tune.schedulers.async_hyperband import _Bracket

from scenetune.core.rungs import asha_rungs, hyperband_brackets, hyperband_milestones, scheduler_rungs
from scenetune.search.spec import parse_spec
from tests.conftest import BASE_SPEC, deep_update


@pytest.mark.parametrize("max_t, grace, factor", [(6, 1, 2), (4, 1, 2), (20, 2, 3), (50, 1, 3), (100, 5, 4),
                                                 (10, 1, 1.5), (9, 1, 3)])
def test_rungs_are_the_epochs_ray_asha_judges_at(max_t, grace, factor):
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=max_t, grace_period=grace,
                              reduction_factor=factor)
    # A trial is judged at the first epoch that reaches a milestone (1.5 -> 2, 2.25 -> 3).
    ray_milestones = sorted({math.ceil(milestone) for milestone, _ in scheduler._brackets[0]._rungs})
    assert asha_rungs({"name": "asha", "max_t": max_t, "grace_period": grace,
                       "reduction_factor": float(factor)}) == ray_milestones
    assert asha_rungs({"name": "none"}) == []


@pytest.mark.parametrize("max_t, grace, factor, brackets", [(8, 1, 3, 2), (9, 1, 3, 3), (20, 2, 3, 2), (10, 1, 1.5, 3)])
def test_rungs_of_several_asha_brackets_are_every_bracket_s(max_t, grace, factor, brackets):
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=max_t, grace_period=grace,
                              reduction_factor=factor, brackets=brackets)
    ray_milestones = sorted({math.ceil(milestone) for bracket in scheduler._brackets for milestone, _ in bracket._rungs})
    spec = {"name": "asha", "max_t": max_t, "grace_period": grace, "reduction_factor": float(factor),
            "brackets": brackets}
    assert asha_rungs(spec) == scheduler_rungs(spec) == ray_milestones
    assert asha_rungs(spec, bracket=0) == asha_rungs(dict(spec, brackets=1))


@pytest.mark.parametrize("max_t, factor", [(8, 3), (9, 3), (27, 3), (20, 2), (10, 1.5), (81, 3), (2, 3)])
def test_hyperband_milestones_are_where_ray_halves_its_brackets(max_t, factor):
    scheduler = HyperBandScheduler(time_attr="training_iteration", max_t=max_t, reduction_factor=factor)
    ray_milestones, ray_brackets = set(), []
    for s in range(scheduler._s_max_1):
        if scheduler._get_r0(s) == 0:
            continue  # Ray skips a bracket that would start at epoch 0
        bracket = scheduler._create_bracket(s)
        ray_brackets.append((bracket._n0, bracket._r0))
        ray_milestones.add(bracket._cumul_r)
        for _ in range(s):  # Ray's own halving steps (no live trials to sort)
            bracket.successive_halving("m", 1.0)
            ray_milestones.add(bracket._cumul_r)
    spec = {"name": "hyperband", "max_t": max_t, "reduction_factor": float(factor)}
    assert hyperband_milestones(spec) == scheduler_rungs(spec) == sorted(ray_milestones)
    assert hyperband_brackets(spec) == ray_brackets
    assert hyperband_milestones({"name": "asha", "max_t": max_t}) == []


def judged_epochs(max_t: int, grace: int, factor: float, s: int = 0) -> list[int]:
    """The epochs at which Ray's own ASHA bracket records a trial's result
    (judges it), found by reporting every epoch to a real ``_Bracket``."""
    bracket = _Bracket(grace, max_t, factor, s)
    trial, judged = SimpleNamespace(trial_id="t"), []
    for epoch in range(1, max_t + 1):
        before = sum(len(recorded) for _, recorded in bracket._rungs)
        bracket.on_result(trial, epoch, 0.5)
        if sum(len(recorded) for _, recorded in bracket._rungs) > before:
            judged.append(epoch)
    return judged


@pytest.mark.parametrize("max_t, grace, factor", [(10, 1, 1.5), (9, 1, 3), (20, 2, 3), (30, 1, 1.3)])
def test_asha_rungs_are_the_epochs_a_real_bracket_judges(max_t, grace, factor):
    spec = {"name": "asha", "max_t": max_t, "grace_period": grace, "reduction_factor": factor}
    assert asha_rungs(spec, bracket=0) == judged_epochs(max_t, grace, factor)
    assert asha_rungs(dict(spec, brackets=2), bracket=1) == judged_epochs(max_t, grace, factor, s=1)


def test_progressive_resize_phases_and_checkpoints_start_at_the_rungs_ray_uses(tmp_path):
    """Reduction factor 1.5 and max_t 10: Ray judges at epochs 1, 2, 3, 4, 6
    and 8 (milestones 1, 1.5, 2.25, 3.375, 5.06, 7.59 rounded up), not at
    their truncations 1, 1, 2, 3, 5, 7."""
    spec = parse_spec(deep_update(BASE_SPEC, {
        "data": {"root": str(tmp_path)},
        "scheduler": {"name": "asha", "max_t": 10, "grace_period": 1, "reduction_factor": 1.5, "brackets": 1},
        "fixed": {"progressive_resize": [16, 24, 32, 40], "image_size": None, "epochs": 10}}))
    ray_epochs = judged_epochs(10, 1, 1.5)
    assert ray_epochs == [1, 2, 3, 4, 6, 8]
    assert spec.fixed["resize_epochs"] == [0] + ray_epochs[:3]
    assert set(ray_epochs) <= set(spec.checkpoint_epochs())
