"""Running a sweep: Ray started or joined (quietly unless asked), the
Tuner built or restored (:mod:`scenetune.search.tuner`), Ctrl-C turned into
a saved, resumable stop, and ``--resume`` of a finished experiment left
alone."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading

import optuna
import ray
import yaml

from scenetune.core import storage
from scenetune.core.layout import SPEC_FILE, newest_state_file
from scenetune.search.clock import SweepClock
from scenetune.search.ray_compat import (
    fresh_process_when_reuse_fails,
    quiet_trial_boxes,
    recycle_grown_workers,
    save_every_trial_status,
    tolerate_killed_trial_workers,
)
from scenetune.search.schedulers import pending_trials
from scenetune.search.spec import SweepSpec, parse_spec
from scenetune.search.tuner import build_tuner, check_restorable, environ, prepare, restore_tuner, trial_slots
from scenetune.trainables.quiet import VERBOSE_ENV  # set in trial processes by -v

WORKER_SETUP_HOOK = "scenetune.trainables.warmup.import_tensorflow"  # trainables/warmup.py (not imported here)


def connect(address: str | None, verbose: bool = False) -> None:
    """Join a running cluster (``auto``, ``ray://...``) or start an embedded
    Ray. Quiet unless ``verbose``: Ray's libraries log warnings only in the
    trial processes, which start TensorFlow without its start-up lines
    (:mod:`scenetune.trainables.warmup`), and the embedded Ray does not
    announce its own token authentication."""
    if ray.is_initialized():
        return
    env_vars = {"TF_CPP_MIN_LOG_LEVEL": "0" if verbose else "2"}
    if verbose:
        env_vars[VERBOSE_ENV] = "1"
    if address is None and not verbose:
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    # "local" starts a fresh embedded Ray even when a `ray start` cluster runs
    # on this machine (ray.init() with no address would join that one).
    ray.init(address=address or "local", include_dashboard=False if address is None else None,
             configure_logging=True, logging_level="WARNING",
             logging_config=ray.LoggingConfig(log_level="INFO" if verbose else "WARNING"),
             runtime_env={"worker_process_setup_hook": WORKER_SETUP_HOOK, "env_vars": env_vars})


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the sweep; Ray Tune saved its state first. ``experiment``: its URI."""

    def __init__(self, experiment: str):
        super().__init__(f"the sweep was interrupted; its state is saved in {experiment}")
        self.experiment = experiment


def _stop_at_once(signum, frame):
    raise KeyboardInterrupt  # a second Ctrl-C: no last save


def _no_python_resume_hint(record: logging.LogRecord) -> bool:
    """Drop Ray Tune's "Resume experiment with: Tuner.restore(...)": the CLI
    prints the ``scenetune sweep ... --resume`` command instead."""
    return "Tuner.restore(" not in record.getMessage()


@contextlib.contextmanager
def interruptible(experiment: str):
    """Ray Tune's first Ctrl-C ends the run after saving its state, puts back
    the SIGINT handler it found, and returns normally; that handler (a second
    Ctrl-C stops at once) still being in place afterwards is how the sweep
    knows it was interrupted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _stop_at_once)
    tune_logger = logging.getLogger("ray.tune.tune")
    tune_logger.addFilter(_no_python_resume_hint)
    try:
        yield
    finally:
        interrupted = signal.getsignal(signal.SIGINT) is _stop_at_once
        signal.signal(signal.SIGINT, previous)
        tune_logger.removeFilter(_no_python_resume_hint)
    if interrupted:
        raise SweepInterrupted(experiment)


def finished_trials(spec: SweepSpec) -> int | None:
    """How many trials a saved experiment holds when it is finished (every
    trial created and ended), else None: ``--resume`` has nothing to do then."""
    state_uri = newest_state_file(spec.experiment_uri)
    if state_uri is None:
        return None
    try:
        state = json.loads(storage.read_text(state_uri))
        statuses = [json.loads(trial)["status"] for trial, _ in state.get("trial_data", [])]
    except (ValueError, KeyError, TypeError):
        return None
    ended = all(status in ("TERMINATED", "ERROR") for status in statuses)
    return len(statuses) if ended and len(statuses) >= spec.search.num_samples else None


@contextlib.contextmanager
def quiet_tune(verbose: bool):
    """Ray Tune's output at its DEFAULT verbosity, less what a user does not
    need unless ``verbose``: each trial's start and end boxes, the TensorBoard
    hint to a driver staging folder, Optuna's study line and the snapshot
    warning that ``checkpoint.num_to_keep`` triggers."""
    if verbose:
        yield
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with environ({"TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}), quiet_trial_boxes():
        yield


def run_sweep(spec: SweepSpec, address: str | None = None, resume: bool = False, verbose: bool = False) -> str:
    """Run (or resume) the sweep to the end; returns the experiment's URI.
    Where the time went (driver set-up, Ray start, each trial's wall and fit
    time) is written to the experiment's ``sweep_timings.json``. Ctrl-C
    raises :class:`SweepInterrupted` once Ray Tune has saved the state;
    ``--resume`` of a finished experiment returns it untouched."""
    clock = SweepClock()
    if not verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # its "new study created" line
    if resume:
        stored = storage.join(spec.experiment_uri, SPEC_FILE)
        if storage.exists(stored):  # the experiment's own settings win over the file's
            spec = parse_spec(yaml.safe_load(storage.read_text(stored)))
        check_restorable(spec)
        done = finished_trials(spec)
        if done is not None:
            print(f"experiment {spec.name!r} is finished ({done} trials); nothing to resume", file=sys.stderr)
            return spec.experiment_uri
        with clock.phase("ray_start_s"):
            connect(address, verbose)
        tuner = restore_tuner(spec, clock)
    else:
        with clock.phase("prepare_s"):
            prepared = prepare(spec)
        with clock.phase("ray_start_s"):
            connect(address, verbose)
        tuner = build_tuner(prepared, clock)
    tolerate_killed_trial_workers()  # a trial killed for memory fails alone, not the sweep
    recycle_grown_workers(spec.resources.recycle_at_growth_mb)
    save_every_trial_status()
    fresh_process_when_reuse_fails()
    try:
        with clock.phase("trials_s"), environ(pending_trials(spec.scheduler.model_dump(), spec.search.num_samples, trial_slots(spec))), \
                quiet_tune(verbose), interruptible(spec.experiment_uri):
            tuner.fit()
    finally:
        clock.save(spec.experiment_uri)
    print(clock.summary(), file=sys.stderr, flush=True)
    return spec.experiment_uri
