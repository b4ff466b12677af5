"""A freed warm process goes to a trial without one, never in place of a
trial's own process that is starting.

With ``reuse_actors``, Ray Tune 2.60 hands a finished trial's process
(kept in its actor cache) to the next trial it schedules. When that trial
already has a new process of its own starting (its resources acquired, the
process importing TensorFlow), ``TuneController._maybe_reuse_cached_actor``
kills the starting process and takes the warm one. A node whose trial
process is still starting thus loses it whenever another node's trial ends
first; when a new process takes longer to start than a trial takes to run,
the node never runs a trial. That is what a node that joins a running sweep
sees, a fresh node after a lost one or an autoscaled one (the soak of issue
24: after each node kill the replacement node ran nothing until the driver
was restarted, its processes started and killed every 8 s,
benchmarks/README.md#a-soak-with-faults).

:func:`keep_starting_processes` leaves a starting process to its trial and
hands the warm one to the first pending trial with no process of its own
(staged as Ray stages one). Everywhere else Ray's choice stands: with no
such trial the starting trial takes the warm process, and so does a trial
whose process still waits for resources. Leaving the warm process in the
cache instead can wait for ever: a replayed HyperBand sweep under load
(tests/commands/test_claims_commands.py, 2 of 8 runs) kept a trial pending
on a process that never started while a warm one sat in the cache, nothing
running. Under HyperBand (Ray's ``HyperBandScheduler`` and its subclasses)
Ray's choice is kept in every case: its brackets resume paused trials in
their own order.
"""

from __future__ import annotations

from ray.tune.schedulers import HyperBandScheduler

from scenetune.search.ray_compat import _tune_controller, _wrap, missing_in_ray

# TuneController's attributes the wrapper reads, all set in its __init__
STATE = ("_trial_to_actor", "_resetting_trials", "_started_actors", "_actor_manager", "_actor_cache",
         "_pending_trials", "_pending_trials_list", "_staged_trials", "_scheduler_alg")


def _pending_without_process(controller, resources):
    """The first pending trial with no process and nothing staged, asking for ``resources``."""
    for trial in controller._pending_trials_list:  # in the order they were added; the set says who still waits
        if (trial in controller._pending_trials and trial not in controller._trial_to_actor
                and trial not in controller._staged_trials and trial.placement_group_factory == resources):
            return trial
    return None


def keep_starting_processes() -> bool:
    """Install the hand-off once per process; True when it is in place."""
    lost = "a node whose trial process is still starting loses it to another node's warm one, and may run nothing"
    controller = _tune_controller(lost)
    if controller is None:
        return False
    init_names = set(getattr(getattr(controller.__init__, "__code__", None), "co_names", ()))
    missing = [f"TuneController.{name}" for name in STATE if name not in init_names]
    if missing:
        return missing_in_ray(missing, lost)

    def hand_elsewhere(original):
        def _maybe_reuse_cached_actor(self, trial):
            own = self._trial_to_actor.get(trial)
            starting = (own is not None and trial not in self._resetting_trials
                        and self._actor_manager.is_actor_started(own) and own not in self._started_actors)
            if not starting or isinstance(self._scheduler_alg, HyperBandScheduler):
                return original(self, trial)
            resources = trial.placement_group_factory
            other = _pending_without_process(self, resources) if self._actor_cache.has_cached_object(resources) else None
            if other is None:  # no one else can take it: Ray's choice (waiting could leave the warm one idle for ever)
                return original(self, trial)
            self._staged_trials.add(other)  # staged as Ray stages a pending trial; its scheduling takes the warm one
            self._actor_cache.increase_max(resources)
            self._schedule_trial_actor(other)
            return False
        return _maybe_reuse_cached_actor

    return _wrap(controller, "_maybe_reuse_cached_actor", hand_elsewhere, lost, needs=("_schedule_trial_actor",))
