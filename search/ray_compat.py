"""Keep a sweep alive when Ray kills a trial's worker from outside.

Ray Tune 2.60's actor manager (``ray.air.execution._internal.actor_manager``)
turns a failed trial task into a trial failure only when the error is a
``RayActorError`` or a ``RayTaskError``. When Ray's memory monitor kills a
trial's worker, the driver gets ``ray.exceptions.OutOfMemoryError`` instead
(a plain ``RayError``; likewise ``NodeDiedError`` for a node that vanished),
and the actor manager raises ``RuntimeError("Caught unexpected exception")``
out of ``Tuner.fit()``: the whole sweep dies for one trial's memory. (Found
by tests/cluster/test_faults.py on a real cluster.)

:func:`tolerate_killed_trial_workers` hands such errors on as what they are
to Tune, the death of the trial's actor (:class:`TrialWorkerKilled`, a
``RayActorError`` carrying Ray's message), so ``FailureConfig`` retries the
trial from its last checkpoint, marks it errored after ``max_failures``, and
the rest of the sweep goes on.

A second gap shows once that works: when a trial fails because its actor
died, Tune's controller (``TuneController._schedule_trial_stop``) returns
before marking the trial for the next experiment-state snapshot, so a trial
whose last attempt died that way is saved as RUNNING, and a resume would run
it again. :func:`tolerate_killed_trial_workers` also marks every failed trial
for the snapshot (what the controller does for other failures).

Every patch here (these two, and the others below) touches private parts
of Ray 2.60. Each checks, when it is applied, that every part it replaces or
calls is there; if one is not (a Ray other than 2.60), the patch is left out
and one warning line names the Ray installed, what it lacks and what is lost
without the patch. tests/search/test_ray_compat.py lists the test that shows
each patch at work.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import os
import time

from ray.exceptions import NodeDiedError, OutOfMemoryError, RayActorError

logger = logging.getLogger(__name__)

KILLED_FROM_OUTSIDE = (OutOfMemoryError, NodeDiedError)


class TrialWorkerKilled(RayActorError):
    """A trial's worker killed by Ray (memory monitor, lost node): its actor is gone."""

    def __init__(self, cause: Exception):
        super().__init__(error_msg=f"{type(cause).__name__}: {cause}")


RAY_PATCHED = "2.60"  # the Ray whose internals these patches are written for


def missing_in_ray(missing: list[str], without: str) -> bool:
    """One warning line: the Ray installed lacks ``missing``, so a patch is
    left out and ``without`` happens. Returns False (the patch is not in place)."""
    import ray

    logger.warning("scenetune: Ray %s has no %s (scenetune patches Ray %s's); without it %s",
                   ray.__version__, ", ".join(missing), RAY_PATCHED, without)
    return False


def _ray_class(module: str, name: str, without: str):
    """``module.name`` of Ray, or None (with the warning line) where this Ray has none."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        missing_in_ray([f"{module}.{name}"], without)
        return None


def _wrap(owner, name: str, make, without: str, needs: tuple[str, ...] = ()) -> bool:
    """Replace ``owner.name`` by ``make(original)`` once per process (the
    wrapper is marked ``_scenetune``); ``needs``: the other methods of
    ``owner`` the wrapper calls. False, with the warning line, when any is missing."""
    if owner is None:  # _ray_class warned
        return False
    missing = [f"{owner.__name__}.{attr}" for attr in (name, *needs) if getattr(owner, attr, None) is None]
    if missing:
        return missing_in_ray(missing, without)
    original = getattr(owner, name)
    if not getattr(original, "_scenetune", False):
        wrapper = make(original)
        wrapper._scenetune = True
        setattr(owner, name, wrapper)
    return True


def _tune_controller(without: str):
    return _ray_class("ray.tune.execution.tune_controller", "TuneController", without)


def upload_running(manager) -> bool:
    """Whether an ``_ExperimentCheckpointManager``'s upload of the experiment state to storage still runs."""
    return bool(getattr(manager._storage.syncer, "_should_continue_existing_sync", lambda: False)())


def tolerate_killed_trial_workers() -> bool:
    """Install both fixes once per process; True when both are in place."""
    ends_sweep = "a trial whose worker Ray kills (out of memory, a lost node) ends the whole sweep"
    saved_running = "a trial whose worker died may be saved as running, and a resume runs it again"

    def hand_over(original):
        def _actor_task_failed(self, tracked_actor_task, exception):
            if isinstance(exception, KILLED_FROM_OUTSIDE):
                exception = TrialWorkerKilled(exception)
            return original(self, tracked_actor_task, exception)
        return _actor_task_failed

    def snapshot_failed(original):
        def _process_trial_failure(self, trial, exception):
            original(self, trial, exception)
            self._mark_trial_to_checkpoint(trial)
        return _process_trial_failure

    manager = _ray_class("ray.air.execution._internal.actor_manager", "RayActorManager", ends_sweep)
    return (_wrap(manager, "_actor_task_failed", hand_over, ends_sweep)
            & _wrap(_tune_controller(saved_running), "_process_trial_failure", snapshot_failed, saved_running,
                    needs=("_mark_trial_to_checkpoint",)))


# Warm processes: resident memory of each (node, pid) after its first trial.
_first_rss_mb: dict[tuple, float] = {}
_recycle_at_growth_mb = [0.0]


def recycle_grown_workers(growth_mb: float) -> bool:
    """Retire a warm trial process (not hand it to the next trial) once its
    resident memory has grown ``growth_mb`` past what it held after its first
    trial; 0 never retires one.

    TensorFlow 2.21 with Keras 3.15 keeps a few MB of every trained model's
    traced functions alive after ``keras.backend.clear_session()`` (two
    ``one_step_on_data`` graphs a model, held from C++), so a process that
    runs trial after trial grows. The trials report ``process_rss_mb``; Ray
    Tune 2.60 decides in the private ``TuneController._maybe_cache_trial_actor``
    whether a finished trial's process is kept for the next, and this wraps it."""
    never = "warm trial processes are never retired, whatever their memory"
    _recycle_at_growth_mb[0] = growth_mb

    def retire_grown(original):
        def _maybe_cache_trial_actor(self, trial):
            result = trial.last_result or {}
            rss, key = result.get("process_rss_mb"), (result.get("node_ip"), result.get("pid"))
            if rss is not None:
                first = _first_rss_mb.setdefault(key, rss)
                if _recycle_at_growth_mb[0] and rss - first > _recycle_at_growth_mb[0]:
                    logger.info("retiring trial process %s: %.0f MB, %.0f MB after its first trial", key, rss, first)
                    return False
            return original(self, trial)
        return _maybe_cache_trial_actor

    return _wrap(_tune_controller(never), "_maybe_cache_trial_actor", retire_grown, never)


def save_every_trial_status() -> bool:
    """Make the experiment state Ray Tune saves hold every trial's status as
    it is now. Ray 2.60 re-serialises only the trials it marked as changed;
    a trial HyperBand paused and later resumed (or stopped) is not marked
    again, so the final state says PAUSED for a trial that finished, and the
    reader would call it pending. Marking every trial costs little: an
    unchanged trial's JSON is cached."""
    stale = "a trial HyperBand paused may be saved as paused after it finished"

    def every_trial(original):
        def _get_trial_checkpoints(self):
            self._trials_to_cache.update(self._trials)
            return original(self)
        return _get_trial_checkpoints

    return _wrap(_tune_controller(stale), "_get_trial_checkpoints", every_trial, stale)


def fresh_process_when_reuse_fails() -> bool:
    """Give a trial a fresh worker process when Ray cannot hand it a reused one.

    A warm process is reused by resetting it (``Trainable.reset``), which for
    a function trainable waits ``TUNE_FUNCTION_THREAD_TIMEOUT_S`` (2 s by
    default) for the previous trial's training thread to end. When it has not
    ended, Ray 2.60's ``TuneController._on_trial_reset`` marks the new trial
    errored ("Trainable runner reuse requires reset_config() ...") without
    telling the scheduler or the searcher, and ignores ``max_failures``: a
    HyperBand bracket then waits for that trial forever, with its other trials
    paused (issue 23). This drops the process that could not be reset and
    starts the trial in a new one, as if no warm process had been free."""
    errored = "a trial whose reused process cannot be reset is marked errored and HyperBand may wait for it"

    def new_process_instead(original):
        def _on_trial_reset(self, trial, success):
            if success:
                return original(self, trial, success)
            logger.info("trial %s: its reused process could not be reset; starting a new one", trial)
            self._resetting_trials.discard(trial)
            stale = self._trial_to_actor.pop(trial, None)
            if stale is not None:
                self._actor_to_trial.pop(stale, None)
                trial.set_ray_actor(None)
                self._remove_actor(tracked_actor=stale)
            if trial.status != "PENDING":
                self._set_trial_status(trial, "PENDING")
            self._schedule_trial_actor(trial)
        return _on_trial_reset

    return _wrap(_tune_controller(errored), "_on_trial_reset", new_process_instead, errored,
                 needs=("_remove_actor", "_set_trial_status", "_schedule_trial_actor"))


SNAPSHOT_PACE = 19  # Ray's own budget for its periodic snapshots: 1 part saving, 19 parts the rest
UPLOAD_HOLD_S = 5.0  # the longest a forced snapshot waits, without the driver, for the previous upload to end


def paced_forced_snapshots() -> bool:
    """Take the snapshots Ray forces at most as often as its own budget allows.

    Ray 2.60's ``_ExperimentCheckpointManager`` forces a snapshot of the
    experiment state (every trial's state and the searcher's) past its
    throttle once a trial has saved ``checkpoint.num_to_keep`` checkpoints
    since the last one; with checkpoints at the rungs most trials do, 0.4
    snapshots a trial, each slower as the sweep grows (the searcher's study
    and the trial list are saved whole): the driver's time per trial grew
    1.9x over 2,000 trials (benchmarks/driver_scale.py). Here a forced
    snapshot asked for sooner than ``SNAPSHOT_PACE`` times the last
    snapshot's saving time after it waits, its flag still set, until that
    time has passed; so saving takes at most a twentieth of the driver's time,
    as Ray budgets its periodic snapshots. (Counting Ray's wait for the previous
    upload too kept the driver from waiting on uploads, but held a small
    sweep's forced snapshots back for seconds: a driver killed meanwhile left
    a state naming a checkpoint already deleted, and its trial failed on
    resume, tests/cluster/test_faults.py.) A small sweep's snapshot takes a few
    milliseconds, so its forced snapshots come as before; at 2,000 trials one
    takes a tenth of a second and the wait is under two seconds.

    Nor does the driver wait for the upload: Ray waits, before a forced
    snapshot, for the previous upload to storage to end (at 1,500 free trials
    half the driver's time, 0.17 s a trial against 0.08, once cheaper
    snapshots let more be forced). One due while an upload runs is taken at
    the driver's first step after it ends (milliseconds, not the seconds that
    broke the killed-driver test), or after ``UPLOAD_HOLD_S`` as Ray does. A
    snapshot asked for with ``force`` (the sweep's end, a stop) is never held."""
    slow = "the driver saves the whole experiment state after most trials' checkpoints, slower as the sweep grows"
    owner = _ray_class("ray.tune.execution.experiment_state", "_ExperimentCheckpointManager", slow)
    if owner is None:  # _ray_class warned
        return False
    missing = [f"_ExperimentCheckpointManager.{attr}" for attr in ("_should_force_sync_up", "_last_save_time")
               if attr not in owner.__init__.__code__.co_names]  # set there, per instance
    if missing:
        return missing_in_ray(missing, slow)

    syncer = _ray_class("ray.train._internal.syncer", "_BackgroundSyncer", slow)
    if syncer is not None and not hasattr(syncer, "_should_continue_existing_sync"):
        missing_in_ray(["_BackgroundSyncer._should_continue_existing_sync"],
                       "a forced snapshot makes the driver wait for the previous upload of the experiment state")

    def paced(original):
        def sync_up_experiment_state(self, save_fn, force=False, wait=False):
            if not force and self._should_force_sync_up:
                now = time.monotonic()
                if now - self._last_save_time < SNAPSHOT_PACE * self.__dict__.get("_scenetune_save_s", 0.0):
                    return None  # the flag stays set: taken once the pace allows
                held = self.__dict__.setdefault("_scenetune_held_since", now)
                if upload_running(self) and now - held < UPLOAD_HOLD_S:
                    return None  # Ray would wait for the upload here: taken at the first step after it
            self.__dict__.pop("_scenetune_held_since", None)

            def timed_save():
                start = time.monotonic()
                save_fn()
                self.__dict__["_scenetune_save_s"] = time.monotonic() - start
            return original(self, timed_save, force=force, wait=wait)
        return sync_up_experiment_state

    return _wrap(owner, "sync_up_experiment_state", paced, slow)


def keep_the_drivers_trial_logs() -> bool:
    """Keep the rows a paused trial logged before it resumes.

    Ray 2.60's loggers (``LoggerCallback._restore_from_remote``) copy a trial's
    ``result.json`` from storage over the driver's copy whenever the trial
    starts with a checkpoint, meant for a sweep restored by a new driver. A
    trial that HyperBand paused, or that ASHA held at a rung, starts again on
    the same driver, whose copy is newer than storage's until the next sync: its
    rows since that sync were lost (tests/search/test_hyperband.py lost epochs 2
    and 3 of a trial). The copy is made only where the driver has none."""
    lost = "a paused trial that resumes may lose its result.json rows logged since the last sync to storage"

    def only_where_missing(original):
        def _restore_from_remote(self, file_name, trial):
            local = os.path.join(trial.local_path, file_name)
            if os.path.exists(local) and os.path.getsize(local) > 0:
                return None
            return original(self, file_name, trial)
        return _restore_from_remote

    return _wrap(_ray_class("ray.tune.logger.logger", "LoggerCallback", lost), "_restore_from_remote",
                 only_where_missing, lost)


def set_restored_callbacks(tuner, callbacks: list, verbose: int | None = None) -> bool:
    """Give a restored ``Tuner`` these callbacks (and this verbosity).
    ``Tuner.restore`` takes none and brings back the pickled ones of the
    first run (with that run's state); Ray 2.60 keeps the run config on the
    tuner's private ``_local_tuner``. Skipped with the warning line (False)
    if a future Ray moves it."""
    run_config = getattr(getattr(tuner, "_local_tuner", None), "_run_config", None)
    if run_config is None or not all(hasattr(run_config, attr) for attr in ("callbacks", "verbose")):
        return missing_in_ray(["Tuner._local_tuner._run_config"],
                     "a resumed run keeps its first run's callbacks and verbosity: its timings and progress line "
                     "are not recorded")
    run_config.callbacks = callbacks
    if verbose is not None:
        run_config.verbose = verbose
    return True


REPORTER_CLASS_ATTRS = {"TuneReporterBase": ("_start_end_verbosity", "experiment_started", "setup"),
                        "TuneTerminalReporter": ("experiment_started",)}
REPORTER_INSTANCE_ATTRS = ("_verbosity", "_last_heartbeat_time")


def _reporter_parts_missing(output) -> list[str]:
    """What :func:`quiet_trial_boxes` replaces or reads in Ray Tune's
    ``ray.tune.experimental.output`` and this Ray lacks (a throwaway reporter
    shows the instance attributes)."""
    missing = [f"output.{name}" for name in ("AirVerbosity", *REPORTER_CLASS_ATTRS) if not hasattr(output, name)]
    if missing:
        return missing
    missing = [f"{cls}.{attr}" for cls, attrs in REPORTER_CLASS_ATTRS.items() for attr in attrs
               if not hasattr(getattr(output, cls), attr)]
    missing += [f"AirVerbosity.{level}" for level in ("SILENT", "VERBOSE") if not hasattr(output.AirVerbosity, level)]
    if missing:
        return missing
    try:
        reporter = output.TuneTerminalReporter(output.AirVerbosity.SILENT)
    except Exception as e:  # noqa: BLE001 - any failure means the reporter is not the one patched
        return [f"TuneTerminalReporter(verbosity) ({type(e).__name__}: {e})"]
    missing = [f"TuneTerminalReporter().{attr}" for attr in REPORTER_INSTANCE_ATTRS if not hasattr(reporter, attr)]
    started = output.TuneReporterBase.experiment_started
    if not getattr(started, "_scenetune", False) and "tensorboard_path" not in inspect.signature(started).parameters:
        missing.append("TuneReporterBase.experiment_started(tensorboard_path=...)")
    return missing


@contextlib.contextmanager
def quiet_trial_boxes():
    """Ray Tune's terminal reporter at its DEFAULT verbosity prints a box for
    every trial that starts (its whole config) and ends (every metric), a
    TensorBoard hint to the driver's staging folder, which the results are
    not in, and the trial table at once (every trial pending) and every 30 s.
    While this is active, those boxes wait for VERBOSE (``-v``), the hint is
    left out, the first trial table comes after 30 s (or at the end), and a
    SILENT run (the progress line's) prints no header box either. Class
    attributes and methods of Ray 2.60's ``ray.tune.experimental.output``;
    left as they are, with the warning line, if a future Ray renames them.
    Yields whether the patch is in place."""
    lost = "every trial's start and end boxes, the TensorBoard hint and a first table of pending trials are printed"
    try:
        output = importlib.import_module("ray.tune.experimental.output")
    except ImportError:
        output = None
    missing = _reporter_parts_missing(output) if output is not None else ["ray.tune.experimental.output"]
    if missing:
        missing_in_ray(missing, lost)
        yield False
        return
    AirVerbosity, TuneReporterBase, TuneTerminalReporter = (
        output.AirVerbosity, output.TuneReporterBase, output.TuneTerminalReporter)
    saved = TuneReporterBase._start_end_verbosity, TuneReporterBase.experiment_started, TuneReporterBase.setup
    _, started, setup = saved
    terminal_started = TuneTerminalReporter.experiment_started

    def experiment_started(self, *args, **kwargs):
        kwargs["tensorboard_path"] = None
        return started(self, *args, **kwargs)

    def terminal_experiment_started(self, *args, **kwargs):
        if self._verbosity <= AirVerbosity.SILENT:  # the progress line stands for it: no header box either
            return None
        return terminal_started(self, *args, **kwargs)

    def setup_without_first_table(self, *args, **kwargs):
        setup(self, *args, **kwargs)
        self._last_heartbeat_time = time.time()

    experiment_started._scenetune = True  # a nested quiet_trial_boxes finds it patched, not renamed
    TuneReporterBase._start_end_verbosity = AirVerbosity.VERBOSE
    TuneReporterBase.experiment_started = experiment_started
    TuneReporterBase.setup = setup_without_first_table
    TuneTerminalReporter.experiment_started = terminal_experiment_started
    try:
        yield True
    finally:
        TuneReporterBase._start_end_verbosity, TuneReporterBase.experiment_started, TuneReporterBase.setup = saved
        TuneTerminalReporter.experiment_started = terminal_started
