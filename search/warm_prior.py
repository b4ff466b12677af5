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

from scenetune.core.layout import OTHER_SIZE_ATTR, WARM_START_ATTR
from scenetune.search.bounded_history import FINISHED, StudyView
from scenetune.search.sampler_wrapper import SamplerWrapper


def is_warm(trial: FrozenTrial) -> bool:
    return WARM_START_ATTR in trial.user_attrs


def reruns(warm: list[FrozenTrial], k: int, mode: str) -> list[dict]:
    """The params of the ``k`` best ``warm`` trials that ran at another image
    size, best first, by their last value as ``scenetune best`` ranks them
    (a stopped trial's is its last epoch's; one objective): what a sweep at
    this size runs first (``search.warm_start_rerun_best``).
    benchmarks/warm_start.py measured, from a sweep at 32 px of the same 48
    configurations recorded at 64: the prior alone 0.79x a cold sweep's
    compute, the 3 best run first 0.60x, both 0.70x (the default: the prior
    still guides the sweep where the best at 32 px are not the best at 64)."""
    done = [t for t in warm if OTHER_SIZE_ATTR in t.user_attrs and t.values is not None and len(t.values) == 1]
    return [dict(t.params) for t in sorted(done, key=lambda t: t.values[0], reverse=mode == "max")[:k]]


def run_first(warm: list[FrozenTrial], search, mode: str) -> list[dict]:
    """:func:`reruns` under a sweep's ``search`` settings: no more than the
    trials its ``num_samples`` leaves after its ``points``."""
    return reruns(warm, max(0, min(search.warm_start_rerun_best, search.num_samples - len(search.points))), mode)


def prior_for_startup(policy: str, warm: list[FrozenTrial]) -> bool:
    """Whether a sweep's ``warm`` trials guide its start-up only, under
    ``search.warm_start_prior``. ``auto``: the start-up, unless some ran at
    another image size: benchmarks/warm_start.py measured the start-up policy
    at 0.15x a cold sweep's compute from a sweep of the same task (as the
    whole sweep's), 0.79x from trials of no relation (1.33x), but 0.90x from
    a sweep at another image size, where the whole sweep's prior gave 0.77x."""
    if policy == "auto":
        return not any(OTHER_SIZE_ATTR in t.user_attrs for t in warm)
    return policy == "startup"


class PriorForStartup(SamplerWrapper):
    """``base`` shown the earlier trials for the sweep's first ``startup``
    own trials only (module doc)."""

    def __init__(self, base: optuna.samplers.BaseSampler, startup: int):
        super().__init__(base)
        self.startup = startup

    def seen(self, study: optuna.Study, trial: FrozenTrial | None = None):
        """The study as the base sampler sees it for ``trial``'s draws."""
        return self.view_for(trial, lambda: self._own_past_startup(study))

    def _own_past_startup(self, study: optuna.Study):
        own = [t for t in study.get_trials(deepcopy=False) if not is_warm(t)]  # every state, in order (as
        # a study lists them: the bounded history reads them by position)
        return study if sum(t.state in FINISHED for t in own) < self.startup else StudyView(study, own)

    def infer_relative_search_space(self, study, trial):
        return self.base.infer_relative_search_space(self.seen(study, trial), trial)

    def sample_relative(self, study, trial, search_space):
        return self.base.sample_relative(self.seen(study, trial), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.base.sample_independent(self.seen(study, trial), trial, param_name, param_distribution)
