"""TPE over a bounded history: a suggestion costs the same at a sweep's
10,000th trial as at its 1,000th (issue 24, benchmarks/driver_scale.py).

Optuna's TPE fits its two densities to every finished trial of the study
for each suggestion: splitting the trials into good and bad and building
their parameter arrays are Python loops over the whole study, 8.5 ms a
suggestion at 1,000 trials and 75 ms at 10,000 (Optuna 5.0). Past ``WINDOW`` finished
trials, :class:`BoundedHistorySampler` shows its base sampler a view of the
study that holds the ``KEEP_BEST`` best finished trials of all, ranked as
TPE ranks them (completed trials by value, then pruned ones by the last
step they reached and their value there), and the most recent others up to
``WINDOW``. TPE's good set is at most 25 trials (``default_gamma``), so it
is the one it would fit over the whole study; its bad density is fitted to
the recent trials, which TPE already weighs most (``default_weights``
ramps the older trials' weights down). A study of at most ``WINDOW``
finished trials, a multi-objective one, and every sweep of fewer trials,
is sampled exactly as by the base sampler alone. The window is kept as
trials end: each suggestion reads only the trials that began or ended since
the last one, not the whole study (8 ms of a suggestion's 38 at 3,500
trials in the driver, under cProfile).
"""

from __future__ import annotations

import bisect
import copy
import heapq
import math

import optuna
from optuna.trial import FrozenTrial, TrialState

from scenetune.search.sampler_wrapper import SamplerWrapper

WINDOW = 500  # finished trials the base sampler sees at most
KEEP_BEST = 50  # of them, the best of the whole study (TPE's good set is at most 25)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def tpe_rank(trial: FrozenTrial, sign: float) -> tuple:
    """How TPE orders trials for its good set, lowest first (``sign``: 1 to
    minimize, -1 to maximize): feasible completed trials by value, then
    feasible pruned ones by the last step reached and the value there, then
    the infeasible by how far they broke their bounds."""
    excess = sum(v for v in trial.constraints.values() if v > 0)
    if excess > 0:
        return (2, excess)
    if trial.state == TrialState.COMPLETE:
        return (0, sign * trial.value)
    if not trial.intermediate_values:
        return (1, 1, 0.0)
    step, value = max(trial.intermediate_values.items())
    return (1, -step, math.inf if math.isnan(value) else sign * value)


class StudyView:
    """A study that lists ``trials`` (in the study's order) as all it holds; every
    other attribute is the study's own."""

    def __init__(self, study: optuna.Study, trials: list[FrozenTrial]):
        self._study, self._trials = study, trials

    def __getattr__(self, name):
        if name.startswith("__") or name == "_study":  # unpickling asks before _study is set
            raise AttributeError(name)
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False) -> list[FrozenTrial]:
        trials = self._trials if states is None else [t for t in self._trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def get_trials(self, deepcopy: bool = True, states=None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy, states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self._get_trials()


class BoundedHistorySampler(SamplerWrapper):
    """``base`` (TPE) shown at most ``window`` finished trials: the best
    ``keep_best`` of all and the most recent (module doc)."""

    def __init__(self, base: optuna.samplers.BaseSampler, window: int = WINDOW, keep_best: int = KEEP_BEST):
        if not 0 < keep_best < window:
            raise ValueError(f"keep_best must be above 0 and below window ({window}), not {keep_best}")
        super().__init__(base)
        self.window, self.keep_best = window, keep_best
        self._read = 0  # the study's trials read so far (a study lists its trials in order and never drops one)
        self._open: list[int] = []  # of those, the positions of the ones not ended when last read
        self._finished: list[int] = []  # the positions of the finished ones (FINISHED), in order
        self._best: list[tuple] = []  # (rank, number, trial): the keep_best best finished trials

    def _take_new(self, trials: list[FrozenTrial], sign: float) -> None:
        """Read the trials that finished since the last call: those past the
        ones read, and those that were still open. A suggestion costs the
        same whatever the study's length."""
        if len(trials) < self._read:  # another study: start over
            self._read, self._open, self._finished, self._best = 0, [], [], []
        positions = [*self._open, *range(self._read, len(trials))]
        self._read, self._open, new = len(trials), [], []
        for position in positions:
            state = trials[position].state
            if state in FINISHED:
                new.append(position)
            elif not state.is_finished():  # running or waiting; a failed trial is never read again
                self._open.append(position)
        for position in new:
            bisect.insort(self._finished, position)
        self._best = heapq.nsmallest(self.keep_best, self._best + [(tpe_rank(trials[p], sign), trials[p].number,
                                                                    trials[p]) for p in new],
                                     key=lambda entry: entry[:2])

    def bounded(self, study: optuna.Study, trial: FrozenTrial | None = None):
        """The study as the base sampler sees it for ``trial``'s draws: the
        study itself up to ``window`` finished trials, else a :class:`StudyView`."""
        return self.view_for(trial, lambda: self._window_of(study))

    def _window_of(self, study: optuna.Study):
        view = study
        if not study._is_multi_objective():
            trials = study.get_trials(deepcopy=False)
            self._take_new(trials, 1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1.0)
            if len(self._finished) > self.window:
                best = {number: t for _, number, t in self._best}
                recent = [trials[p] for p in self._finished[-self.window:]]
                recent = [t for t in recent if t.number not in best][len(best) - self.window:]
                view = StudyView(study, sorted([*best.values(), *recent], key=lambda t: t.number))
        return view

    def sample_relative(self, study, trial, search_space):
        return self.base.sample_relative(self.bounded(study, trial), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.base.sample_independent(self.bounded(study, trial), trial, param_name, param_distribution)
