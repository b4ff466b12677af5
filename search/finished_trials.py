"""What Ray Tune's driver keeps of a finished trial, bounded (issue 24: the
10,000-trial driver, benchmarks/driver_scale.py).

Ray Tune keeps, for the whole sweep, for each finished trial:
- running statistics of every number the trial reported: for each key of its
  results (the trainable's metrics and Ray's own timings and counters) a dict
  of max, min, mean, last and two moving averages, with the moving averages'
  windows: about 40 KB a trial of the driver's memory in a sweep of cheap
  classifier trials (tracemalloc, 450 trials);
- its last result, and the result that came with each checkpoint it keeps,
  each a whole result as the trial process sent it (every metric, Ray's
  counters, a copy of the configuration), and the indented JSON of its last
  result that each experiment-state snapshot writes (together about 15 KB a
  trial after the statistics were cut; tracemalloc, 700 trials).
scenetune reads none of it: its tables come from the trials' own files.
:class:`CompactFinishedTrials` cuts both to the metrics that rank the trials
(the sweep's, the scheduler's, the objectives'), which Ray's own
``ResultGrid`` ranks by, and Ray's own keys (``AUTO_RESULT_KEYS``: the
iteration, times, node and process). The results are cut at the end of the
driver's step in which the trial ended: Ray reads a trial's last result after
the trial-complete callbacks, to decide whether its process is kept for the
next trial (``ray_compat.recycle_grown_workers``).
A trial that ended as TERMINATED (Ray never runs one again) also loses the
windows of the moving averages (a deque a metric and window: about 3 KB a
trial); the averages themselves are kept. Ray's ``OptunaSearch`` keeps the
``optuna.Trial`` handle of every trial it suggested (its own copy of the
trial's frozen state: about 5.7 KB); :class:`CompactOptunaSearch` lets go of
it once the trial is told to the study, which keeps the trial.
"""

from __future__ import annotations

from collections.abc import Iterable

from ray.tune import Callback
from ray.tune.search.optuna import OptunaSearch

from scenetune.search.ray_compat import missing_in_ray

KEPT = ("metric_analysis", "metric_n_steps")  # _TrainingRunMetadata's statistics, by metric
ENDED = ("TERMINATED", "ERROR")  # a trial's status once it has ended (final within a run)


class CompactFinishedTrials(Callback):
    """Cut a finished trial's statistics and results to the ranked metrics (module doc)."""

    def __init__(self, ranked: Iterable[str]):
        from ray.tune.result import AUTO_RESULT_KEYS
        from ray.tune.trainable.metadata import _TrainingRunMetadata

        self.ranked = frozenset(ranked)
        self.result_keys = self.ranked | set(AUTO_RESULT_KEYS)
        metadata = _TrainingRunMetadata()
        missing = [f"_TrainingRunMetadata.{name}" for name in (*KEPT, "last_result", "checkpoint_manager")
                   if not hasattr(metadata, name)]
        without = "the driver keeps every metric's statistics and whole results of every trial"
        self.active = not missing or missing_in_ray(missing, without)
        self.ended: list = []  # trials ended in this step of the driver, cut at its end

    def compact(self, trial) -> None:
        # The ranked metrics keep both parts, so a trial run again (a retry) updates them as before.
        if self.active:
            for name in KEPT:
                setattr(trial.run_metadata, name,
                        {k: v for k, v in getattr(trial.run_metadata, name).items() if k in self.ranked})
            self.ended.append(trial)

    def cut_results(self, trial) -> None:
        metadata = trial.run_metadata
        # setting it renews the cached JSON of the run metadata (the checkpoints below with it);
        # the trial's own state JSON holds neither
        metadata.last_result = self.cut(metadata.last_result, trial.config)
        if trial.status == "TERMINATED":  # never run again: its moving averages are final
            metadata.metric_n_steps = {}
        manager = metadata.checkpoint_manager
        if manager is not None:
            kept = [*getattr(manager, "_checkpoint_results", ()), getattr(manager, "_latest_checkpoint_result", None)]
            for result in {id(r): r for r in kept if r is not None and isinstance(r.metrics, dict)}.values():
                result.metrics = self.cut(result.metrics, trial.config)

    def cut(self, result: dict, config: dict) -> dict:
        out = {k: v for k, v in result.items() if k in self.result_keys}
        if "config" in out:
            out["config"] = config  # the trial's own, not a second copy
        return out

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.compact(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.compact(trial)

    def on_step_end(self, iteration, trials, **info):
        while self.ended:
            trial = self.ended.pop()
            if trial.status in ENDED:  # (one that Ray runs again keeps its whole results)
                self.cut_results(trial)

    def on_experiment_end(self, trials, **info):
        self.on_step_end(0, trials)


class CompactOptunaSearch(OptunaSearch):
    """Ray Tune's ``OptunaSearch`` that drops a trial's ``optuna.Trial``
    handle once the trial is told to the study (module doc), keeping its
    number in the study (``optuna_numbers``: Ray's trial id -> number, saved
    with the searcher's state). Ray reads the handle of no trial in
    ``_completed_trials``: a late result or completion of one is warned about
    and ignored."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        super().on_trial_complete(trial_id, result, error)
        if trial_id in getattr(self, "_completed_trials", ()) and trial_id in self._ot_trials:
            self.__dict__.setdefault("optuna_numbers", {})[trial_id] = self._ot_trials.pop(trial_id).number


def ranked_metrics(spec) -> set[str]:
    """The metrics a sweep (a ``SweepSpec``) ranks its trials by."""
    return {spec.metric, spec.scheduler.metric, *(o.metric for o in spec.objectives)} - {None}
