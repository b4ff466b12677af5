"""Optuna's search under a spec's ``constraints:``: each finished trial's
excess over every bound (core/constraints.py) is set on its Optuna trial
(``Trial.set_constraint``) before Ray Tune tells the study its value, so TPE
and NSGA-II learn where the feasible trials lie: TPE models an infeasible
trial as a bad one, ranked by how far it lay past its bounds; NSGA-II lets a
feasible trial dominate every infeasible one."""

from __future__ import annotations

from ray.tune.search.optuna import OptunaSearch

from scenetune.core.constraints import excesses


class ConstrainedOptunaSearch(OptunaSearch):
    """Ray Tune's ``OptunaSearch`` that also tells each trial's constraint values."""

    def __init__(self, *args, constraints: list[dict], **kwargs):
        super().__init__(*args, **kwargs)
        self.constraints = constraints

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        trial = self._ot_trials.get(trial_id)
        if trial is not None and result and trial_id not in self._completed_trials:
            for metric, value in excesses(self.constraints, result).items():
                trial.set_constraint(metric, value)
        super().on_trial_complete(trial_id, result, error)
