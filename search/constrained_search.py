"""Optuna's search under a spec's ``constraints:``.

Each finished trial's excess over every bound (core/constraints.py) is set on
its Optuna trial (``Trial.set_constraint``) before Ray Tune tells the study
its value, so TPE and NSGA-II learn where the feasible trials lie: TPE models
an infeasible trial as a bad one, ranked by how far it lay past its bounds;
NSGA-II lets a feasible trial dominate every infeasible one.

That alone leaves a quarter of TPE's draws infeasible on a tight bound
(benchmarks/constrained_search.py): an infeasible trial only weighs against
its neighbourhood in TPE's "bad" density, so TPE goes back to a model it
has already seen break the bound when its other parameters look good.
:class:`FeasibleFirstSampler` therefore draws a configuration again, up to
``REDRAWS`` times, while the finished trials give it less than
``REFUSE_BELOW`` chance of keeping the bounds, and keeps the draw most likely
to keep them. The estimate is a kernel average of the finished trials' feasibility (a categorical value
equal or not, a number by its distance on the parameter's own scale) with
one pseudo-trial of even odds: a configuration like the trials that broke a
bound scores near 0, one unlike every trial so far near the share of
feasible trials, so it wins over the first kind. The random start-up draws
are not redrawn.
"""

from __future__ import annotations

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from scenetune.core.constraints import excesses
from scenetune.search.finished_trials import CompactOptunaSearch
from scenetune.search.sampler_wrapper import SamplerWrapper
from scenetune.search.trial_kernel import similarity

REDRAWS = 16  # draws of one configuration at most, the first included
# the estimated chance of keeping the bounds under which a draw is drawn again; on the constrained
# benchmark, trials feasible after start-up: 83% at 0.5, 92% at 0.6, 92% at 0.7 (which lost accuracy)
REFUSE_BELOW = 0.6


def feasible_odds(params: dict, trials: list, space: dict[str, BaseDistribution]) -> float:
    """Estimated chance that ``params`` keeps the bounds, from ``trials``
    (finished, with constraint values): their feasibility averaged with the
    weights of search/trial_kernel.py, and one pseudo-trial of even odds."""
    weights = np.concatenate([[1.0], similarity([params], [t.params for t in trials], space)[0]])
    kept = [0.5] + [float(all(v <= 0 for v in t.constraints.values())) for t in trials]
    return float(np.average(kept, weights=weights))


class FeasibleFirstSampler(SamplerWrapper):
    """``base`` (TPE, NSGA-II...), with its model-based draws that the
    finished trials say are probably infeasible drawn again (module doc)."""

    def __init__(self, base: optuna.samplers.BaseSampler, redraws: int = REDRAWS):
        super().__init__(base)
        self.redraws = redraws
        self.redrawn = 0  # draws refused so far (for the benchmark and the tests)

    def sample_relative(self, study, trial, search_space):
        params = self.base.sample_relative(study, trial, search_space)
        if not params:  # start-up (random) draws, or a sampler without model-based draws
            return params
        told = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
                if t.constraints]
        if not told:
            return params
        best, odds = params, feasible_odds(params, told, search_space)
        for _ in range(self.redraws - 1):
            if odds >= REFUSE_BELOW:
                break
            self.redrawn += 1
            params = self.base.sample_relative(study, trial, search_space)
            if (chance := feasible_odds(params, told, search_space)) > odds:
                best, odds = params, chance
        return best


class ConstrainedOptunaSearch(CompactOptunaSearch):
    """scenetune's ``OptunaSearch`` that also tells each trial's constraint
    values, its sampler wrapped in :class:`FeasibleFirstSampler`."""

    def __init__(self, *args, constraints: list[dict], sampler=None, **kwargs):
        if sampler is not None and not isinstance(sampler, FeasibleFirstSampler):
            sampler = FeasibleFirstSampler(sampler)
        super().__init__(*args, sampler=sampler, **kwargs)
        self.constraints = constraints

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        trial = self._ot_trials.get(trial_id)
        if trial is not None and result and trial_id not in self._completed_trials:
            for metric, value in excesses(self.constraints, result).items():
                trial.set_constraint(metric, value)
        super().on_trial_complete(trial_id, result, error)
