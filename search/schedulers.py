"""Ray Tune's trial schedulers as a sweep builds them, for a spec's
``scheduler`` block: ASHA (with its first trials held, below), HyperBand,
the median stopping rule (replay only) or none.

Ray's ``ASHAScheduler`` judges a trial the moment it reaches a rung, against
the results the rung has recorded so far. The first trial to reach a rung has
nothing to be compared with and passes; so does a second that beats it.
Early in a sweep that is a free pass to ``max_t`` for whatever the first
trials are (issue 23 measured four of the first trials running all 9 epochs
at 0.17-0.46 accuracy). :class:`ASHA` with ``quorum`` q holds such a trial
instead: it is paused (its checkpoint kept) until the rung has q results,
then resumed if it ranks in the rung's top ``1 / reduction_factor`` and
stopped if not, as Ray judges every later trial. A sweep never waits on a
held trial: when nothing runs and nothing waits to start, the held trials
are judged on the results there are.
"""

from __future__ import annotations

import contextlib
import itertools

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule, TrialScheduler
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

from scenetune.core.rungs import hyperband_brackets
from scenetune.search.sorted_rungs import sort_rungs


class ASHA(ASHAScheduler):
    """Ray's ASHA, drawing each trial's bracket from its own generator seeded
    by the sweep (Ray draws from numpy's global one), so a sweep with several
    brackets puts the same trials in the same brackets for the same seed;
    with ``quorum`` > 1 it holds the trials that reach a rung before the rung
    holds ``quorum`` results (the module's docstring)."""

    def __init__(self, seed: int = 0, quorum: int = 1, **settings):
        super().__init__(**settings)
        sort_rungs(self)  # each cut-off reads only the results recorded since the last
        self._bracket_draws = np.random.default_rng(seed)
        self.quorum = quorum
        self.held: dict[str, float] = {}  # trial id -> the rung (milestone) it waits at
        self.promoted: set[str] = set()  # held trials judged good, to resume
        self._ended_prefix = 0  # how many of the trials' list's first trials have ended

    def on_trial_add(self, tune_controller, trial):
        saved = np.random.get_state()
        np.random.seed(int(self._bracket_draws.integers(2 ** 32)))
        try:
            super().on_trial_add(tune_controller, trial)
        finally:
            np.random.set_state(saved)

    def _rung_reached(self, trial, result) -> tuple[float, dict] | None:
        """The rung this result is judged at (Ray's ``_Bracket.on_result``
        walks the same way), before it is recorded there."""
        if self._time_attr not in result or self._metric not in result or result[self._time_attr] >= self._max_t:
            return None
        for milestone, recorded in self._trial_info[trial.trial_id]._rungs:
            if result[self._time_attr] >= milestone:
                return None if trial.trial_id in recorded else (milestone, recorded)
        return None

    def on_trial_result(self, tune_controller, trial, result):
        rung = self._rung_reached(trial, result) if self.quorum > 1 else None
        action = super().on_trial_result(tune_controller, trial, result)
        if rung is None:
            return action
        milestone, recorded = rung
        if len(recorded) < self.quorum:
            if action == TrialScheduler.STOP:  # judged on fewer results than the quorum: held instead
                self._num_stopped -= 1
            self.held[trial.trial_id] = milestone
            return TrialScheduler.PAUSE
        self._judge_held(tune_controller, self._trial_info[trial.trial_id], milestone)
        return action

    def _judge_held(self, tune_controller, bracket, milestone: float, force: bool = False) -> None:
        """Resume or stop the trials held at ``milestone`` of ``bracket``,
        each against the others' results there, once the rung holds a quorum
        of results (``force``: on the results there are)."""
        waiting = [tid for tid, m in self.held.items() if m == milestone and self._trial_info.get(tid) is bracket]
        recorded = next(r for m, r in bracket._rungs if m == milestone)
        if not waiting or (len(recorded) < self.quorum and not force):
            return
        recorded = dict(recorded)  # as it is now: stopping a trial below may record at the rungs
        trials = {t.trial_id: t for t in tune_controller.get_live_trials()}  # a held trial is paused: live
        for trial_id in waiting:
            del self.held[trial_id]
            others = {k: v for k, v in recorded.items() if k != trial_id}
            cutoff = bracket.cutoff(others)
            if cutoff is None or recorded[trial_id] >= cutoff:
                self.promoted.add(trial_id)
            elif trial_id in trials:
                self._num_stopped += 1
                tune_controller.stop_trial(trials[trial_id])

    def choose_trial_to_run(self, tune_controller):
        """Ray's choice (a promoted held trial first, then the first pending
        one), called on every event: it walks the live trials, and skips the
        list's leading ended ones (a walk of every trial cost 30 ms a trial
        at 10,000 trials, benchmarks/driver_scale.py)."""
        trials = tune_controller.get_trials()
        if not self.held and not self.promoted:
            return self._first_pending(trials)
        live = tune_controller.get_live_trials()
        # A promoted trial is resumed once it is pending or running again (not
        # running while Ray still saves it for its pause).
        self.promoted -= {t.trial_id for t in live
                          if t.status == Trial.PENDING or (t.status == Trial.RUNNING and not t.is_saving)}
        if self.held and not any(t.status in (Trial.PENDING, Trial.RUNNING) for t in live):
            # Nothing runs and nothing waits to start: the held trials' rungs
            # will get no more results. Judge them on what there is, highest rung first.
            for milestone in sorted(set(self.held.values()), reverse=True):
                for bracket in {id(b): b for tid, b in self._trial_info.items() if self.held.get(tid) == milestone}.values():
                    self._judge_held(tune_controller, bracket, milestone, force=True)
        resumable = [t for t in live if t.status == Trial.PAUSED and t.trial_id in self.promoted]
        return min(resumable, key=trials.index) if resumable else self._first_pending(trials)

    def _first_pending(self, trials: list):
        """The first pending trial of ``trials`` (Ray's order), from the first
        that has not ended: an ended trial never runs again in this run, and
        Ray moves only a live trial in the list (to its end, to retry it)."""
        start = getattr(self, "_ended_prefix", 0)  # not in a scheduler pickled by an earlier scenetune
        if start > len(trials) or (start and trials[start - 1].status != Trial.TERMINATED):
            start = 0  # another run's list (a restored sweep)
        while start < len(trials) and trials[start].status == Trial.TERMINATED:
            start += 1
        self._ended_prefix = start
        return next((t for t in itertools.islice(trials, start, None) if t.status == Trial.PENDING), None)

    def on_trial_remove(self, tune_controller, trial):
        self.held.pop(trial.trial_id, None)
        self.promoted.discard(trial.trial_id)
        super().on_trial_remove(tune_controller, trial)

    def held_trials(self) -> set[str]:
        """Trials paused at a rung (held or promoted and not yet resumed): they hold no slot."""
        return set(self.held) | self.promoted


class RunningLimit(ConcurrencyLimiter):
    """Ray's ``ConcurrencyLimiter``, counting the trials ASHA holds (paused
    at a rung, holding no resources) out of the limit: ``max_concurrent`` is
    how many trials run at once, and a sweep whose first trials are all held
    must go on to new ones, or it would wait for itself."""

    def __init__(self, searcher, max_concurrent: int, scheduler: ASHA):
        super().__init__(searcher, max_concurrent)
        self.scheduler = scheduler

    def suggest(self, trial_id: str):
        with _not_counted(self.live_trials, self.scheduler):
            return super().suggest(trial_id)


class RunningVariants(BasicVariantGenerator):
    """Ray's random and grid search, its ``max_concurrent`` counting the
    trials ASHA holds out, as :class:`RunningLimit` does for Optuna."""

    def __init__(self, scheduler: ASHA, **settings):
        super().__init__(**settings)
        self.scheduler = scheduler

    def next_trial(self):
        with _not_counted(self._live_trials, self.scheduler):
            return super().next_trial()


@contextlib.contextmanager
def _not_counted(live: set, scheduler: ASHA):
    """``live`` (a limiter's running trials) without the held ones, meanwhile."""
    held = scheduler.held_trials() & live
    live -= held
    try:
        yield
    finally:
        live |= held


def holds_trials(chosen) -> bool:
    return isinstance(chosen, ASHA) and chosen.quorum > 1


def make_scheduler(settings: dict, seed: int = 0):
    """The trial scheduler for a spec's ``scheduler`` block (with ``max_t``
    resolved): a sweep's and a replay's alike. ``metric``/``mode`` set: it
    ranks by its own metric (val_loss breaks the ties that val_accuracy has at
    chance in the first epochs); the searcher keeps the sweep's."""
    name = settings.get("name", "asha")
    ranking = {"metric": settings.get("metric"), "mode": settings.get("mode")}
    factor = float(settings.get("reduction_factor") or 3)
    if name == "asha":
        return ASHA(seed=seed, quorum=int(settings.get("quorum") or 1), time_attr="training_iteration",
                    max_t=settings["max_t"], grace_period=int(settings.get("grace_period") or 1),
                    reduction_factor=factor, brackets=int(settings.get("brackets") or 1), **ranking)
    if name == "hyperband":
        return HyperBandScheduler(time_attr="training_iteration", max_t=settings["max_t"], reduction_factor=factor,
                                  **ranking)
    if name == "median":  # replay only
        return MedianStoppingRule(time_attr="training_iteration", grace_period=int(settings.get("grace_period") or 1),
                                  min_samples_required=3, **ranking)
    return FIFOScheduler()


def limit_concurrency(searcher, max_concurrent: int | None, chosen):
    """``(search_alg, max_concurrent_trials)`` for ``TuneConfig``: a searcher
    under a scheduler that holds trials gets :class:`RunningLimit`; any other
    gets Ray's own limiter through ``max_concurrent_trials``."""
    if max_concurrent and holds_trials(chosen):
        return RunningLimit(searcher, max_concurrent, chosen), None
    return searcher, max_concurrent


def tune_ranking(chosen, metric, mode) -> tuple:
    """TuneConfig's ``(metric, mode)`` beside the scheduler ``chosen``: none when
    it ranks by its own metric (Ray refuses both; the searchers carry theirs)."""
    return (None, None) if chosen.metric else (metric, mode)


def pending_trials(settings: dict, num_samples: int, slots: int = 1) -> dict[str, str]:
    """Environment for a sweep under ``settings`` (a scheduler block) that
    runs ``slots`` trials at once: how many trials Ray Tune keeps waiting for
    resources (``TUNE_MAX_PENDING_TRIALS_PG``).

    Ray keeps one for a searcher that learns (Optuna), so a sweep's second
    slot waits for a new worker process while the first trial runs, and a
    short trial can end before that process is up: its reused process takes
    the next trial and the new one is thrown away, again and again. As many
    pending as slots starts every slot's process at once.

    Ray's HyperBand fills each bracket with the trials added before any of
    them ends, so with one trial pending every trial would land in the first
    bracket, where none is stopped. A band's worth of trials pending at once
    fills its brackets (the searcher samples them before their band's
    results, as HyperBand does); the next band learns from them."""
    band = sum(trials for trials, _ in hyperband_brackets(settings))
    return {"TUNE_MAX_PENDING_TRIALS_PG": str(max(1, min(max(band, slots), num_samples)))}
