"""An Optuna sampler that hands every call to another (``base``): the
parent of scenetune's sampler wrappers, which change one thing each
(constrained_search.py: which draws are kept; bounded_history.py: which
trials the base sampler sees)."""

from __future__ import annotations

import optuna


class SamplerWrapper(optuna.samplers.BaseSampler):
    def __init__(self, base: optuna.samplers.BaseSampler):
        self.base = base
        self._view: tuple[int, object] | None = None  # (trial number, the view of the study its draws see)

    def __getstate__(self) -> dict:
        # Ray Tune pickles the searcher with its sampler at each snapshot; the view is rebuilt on demand
        return {**self.__dict__, "_view": None}

    def view_for(self, trial, make):
        """``make()``, the view of the study the base sampler sees, made once
        for all of ``trial``'s draws (independent TPE draws each parameter
        apart); ``trial`` None: made afresh."""
        if trial is not None and self._view is not None and self._view[0] == trial.number:
            return self._view[1]
        view = make()
        if trial is not None:
            self._view = (trial.number, view)
        return view

    def infer_relative_search_space(self, study, trial):
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.base.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial):
        self.base.before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()
