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
(staged as Ray stages one); with no such trial the warm process stays in
Ray's cache. A trial whose process is still waiting for resources takes the
warm one, as in Ray: nothing is starting there, and the warm process holds
the resources it waits for.

Under HyperBand (Ray's ``HyperBandScheduler`` and its subclasses) Ray's own
choice is kept: with the hand-off, a replayed HyperBand sweep under load once
left a trial paused at its last milestone with every other trial ended, and
the sweep waited for it (tests/commands/test_claims_commands.py, in 2 of 7
runs under load); why was not found. HyperBand's brackets resume paused trials in
their own order, which Ray's choice follows.
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
            if self._actor_cache.has_cached_object(resources):
                other = _pending_without_process(self, resources)
                if other is not None:  # staged as Ray stages a pending trial; its scheduling takes the warm one
                    self._staged_trials.add(other)
                    self._actor_cache.increase_max(resources)
                    self._schedule_trial_actor(other)
            return False
        return _maybe_reuse_cached_actor

    return _wrap(controller, "_maybe_reuse_cached_actor", hand_elsewhere, lost, needs=("_schedule_trial_actor",))
