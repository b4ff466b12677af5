"""What Ray Tune's driver keeps of a finished trial, bounded (issue 24: the
10,000-trial driver, benchmarks/driver_scale.py).

Ray Tune keeps, for the whole sweep, running statistics of every number a
trial reported: for each key of its results (the trainable's metrics and
Ray's own timings and counters) a dict of max, min, mean, last and two moving
averages, with the moving averages' windows. In a sweep of cheap classifier trials
that is about 40 KB a trial of the driver's memory (tracemalloc, 450
trials), and each experiment-state snapshot writes it again as indented JSON.
scenetune reads none of it: its tables come from the trials' own files.
:class:`CompactFinishedTrials` drops it when a trial ends, but for the
metrics that rank the trials (the sweep's, the scheduler's, the
objectives'), which Ray's own ``ResultGrid`` ranks by.
"""

from __future__ import annotations

from collections.abc import Iterable

from ray.tune import Callback

from scenetune.search.ray_compat import missing_in_ray

KEPT = ("metric_analysis", "metric_n_steps")  # _TrainingRunMetadata's statistics, by metric


class CompactFinishedTrials(Callback):
    """Drop a finished trial's running statistics but the ranked metrics' (module doc)."""

    def __init__(self, ranked: Iterable[str]):
        from ray.tune.trainable.metadata import _TrainingRunMetadata

        self.ranked = frozenset(ranked)
        missing = [f"_TrainingRunMetadata.{name}" for name in KEPT if not hasattr(_TrainingRunMetadata(), name)]
        without = "the driver keeps every metric's statistics of every trial"
        self.active = not missing or missing_in_ray(missing, without)

    def compact(self, trial) -> None:
        # The ranked metrics keep both parts, so a trial run again (a retry) updates them as before.
        if self.active:
            for name in KEPT:
                setattr(trial.run_metadata, name,
                        {k: v for k, v in getattr(trial.run_metadata, name).items() if k in self.ranked})

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.compact(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.compact(trial)


def ranked_metrics(spec) -> set[str]:
    """The metrics a sweep (a ``SweepSpec``) ranks its trials by."""
    return {spec.metric, spec.scheduler.metric, *(o.metric for o in spec.objectives)} - {None}
