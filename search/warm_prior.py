"""Earlier sweeps' trials as the start of a warm-started sweep, not its whole
history (issue 25: a wrong prior must not sink the sweep).

A warm-started study holds the earlier experiments' trials first
(``search/tuner.study_with_points``, each marked with the user attribute
``warm_start``), and TPE, seeing them finished, skips its random start-up
trials. :class:`PriorForStartup` shows the base sampler the whole study
(earlier trials and the sweep's own) only for the sweep's first ``startup``
own trials, the ones TPE would otherwise draw at random; once that many of
the sweep's own trials have finished, the base sampler sees those alone, as
a cold sweep past its start-up does. The earlier trials choose where the
sweep starts, and its own results decide where it goes.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial

from scenetune.search.bounded_history import FINISHED, StudyView
from scenetune.search.sampler_wrapper import SamplerWrapper

WARM_ATTR = "warm_start"  # user attribute of an earlier experiment's trial: that experiment's URI


def is_warm(trial: FrozenTrial) -> bool:
    return WARM_ATTR in trial.user_attrs


class PriorForStartup(SamplerWrapper):
    """``base`` shown the earlier trials for the sweep's first ``startup``
    own trials only (module doc)."""

    def __init__(self, base: optuna.samplers.BaseSampler, startup: int):
        super().__init__(base)
        self.startup = startup
        self._view: tuple[int, object] | None = None  # (trial number, the view its draws see)

    def seen(self, study: optuna.Study, trial: FrozenTrial | None = None):
        """The study as the base sampler sees it for ``trial``'s draws."""
        if trial is not None and self._view is not None and self._view[0] == trial.number:
            return self._view[1]
        own = [t for t in study.get_trials(deepcopy=False) if not is_warm(t)]  # every state, in order (as
        # a study lists them: the bounded history reads them by position)
        view = study if sum(t.state in FINISHED for t in own) < self.startup else StudyView(study, own)
        if trial is not None:
            self._view = (trial.number, view)
        return view

    def infer_relative_search_space(self, study, trial):
        return self.base.infer_relative_search_space(self.seen(study, trial), trial)

    def sample_relative(self, study, trial, search_space):
        return self.base.sample_relative(self.seen(study, trial), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.base.sample_independent(self.seen(study, trial), trial, param_name, param_distribution)
