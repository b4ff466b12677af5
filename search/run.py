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
import yaml

from scenetune.core import storage
from scenetune.core.layout import SPEC_FILE, WARM_START_FILE, newest_state_file
from scenetune.core.state_file import trial_data
from scenetune.search.checkpoint_deletion import delete_checkpoints_after_snapshot
from scenetune.search.clock import SweepClock
from scenetune.search.cluster_connect import connect, is_client
from scenetune.search.finished_trials import ENDED, CompactFinishedTrials, ranked_metrics
from scenetune.search.incremental_upload import upload_changed_files
from scenetune.search.packed_trial_state import pack_ended_trial_state
from scenetune.search.process_handoff import keep_starting_processes
from scenetune.search.progress import LineWriter, ProgressLine
from scenetune.search.ray_compat import (
    fresh_process_when_reuse_fails,
    keep_the_drivers_trial_logs,
    paced_forced_snapshots,
    quiet_trial_boxes,
    recycle_grown_workers,
    save_every_trial_status,
    tolerate_killed_trial_workers,
)
from scenetune.search.schedulers import pending_trials
from scenetune.search.shared_trial_parts import one_key_for_encoder_fallbacks, share_placement_group_factories
from scenetune.search.spec import SweepSpec, parse_spec
from scenetune.search.tuner import (
    build_tuner,
    check_new_experiment,
    check_restorable,
    environ,
    prepare,
    restore_tuner,
    trial_slots,
)
from scenetune.search.unused_results import no_trial_dataframes
from scenetune.search.warm_prior import run_first


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the sweep; Ray Tune saved its state first. ``experiment``: its URI."""

    def __init__(self, experiment: str):
        super().__init__(f"the sweep was interrupted; its state is saved in {experiment}")
        self.experiment = experiment


TERMINATED = threading.Event()  # set when SIGTERM stopped the sweep (exit status 143, not 130)


@contextlib.contextmanager
def stops_on_sigterm():
    """SIGTERM (``timeout``, a batch scheduler, ``ray job stop``) stops the
    sweep as Ctrl-C does: Ray Tune saves its state and the run ends, with no
    pages of Ray's "SIGTERM received" (Ray's own handler, put in place by
    ``ray.init``, is set aside meanwhile)."""
    TERMINATED.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def as_ctrl_c(signum, frame):
        TERMINATED.set()
        signal.raise_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, as_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_at_once(signum, frame):
    raise KeyboardInterrupt  # a second Ctrl-C: no last save


def _scenetune_words_on_stopping(record: logging.LogRecord) -> bool:
    """Ray Tune's lines on a stop, in scenetune's words: its "Stop signal
    received (e.g. via SIGINT/Ctrl+C) ..." (with Ray's job and worker ids
    appended) becomes one line saying what happens now; its "Resume
    experiment with: Tuner.restore(...)" goes, since the CLI prints the
    ``scenetune sweep ... --resume`` command instead."""
    message = record.getMessage()
    if message.startswith("Stop signal received"):
        print("scenetune: stopping; saving the sweep's state (Ctrl-C again stops at once)", file=sys.stderr,
              flush=True)
        return False
    return "Tuner.restore(" not in message


def _no_metrics_of_unstarted_trials(record: logging.LogRecord) -> bool:
    """Ray Tune's "Failed to fetch metrics for N trial(s)" after a stop, for
    trials that had not reported yet: scenetune's reading of the experiment
    expects them."""
    return not record.getMessage().startswith("Failed to fetch metrics")


@contextlib.contextmanager
def interruptible():
    """Ray Tune's first Ctrl-C ends the run after saving its state; a second
    one, once Ray Tune has put back the handler it found, stops at once.
    Whether the sweep was interrupted is read from what Ray Tune saved
    (:func:`finished_trials`), on every road the same."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _stop_at_once)
    tune_logger = logging.getLogger("ray.tune.tune")
    tune_logger.addFilter(_scenetune_words_on_stopping)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        tune_logger.removeFilter(_scenetune_words_on_stopping)


def resumable(spec: SweepSpec) -> tuple[SweepSpec, int | None]:
    """For ``--resume``, where the driver runs: the experiment's own spec (its
    settings win over the file's), refused in one line when the experiment
    holds no Ray Tune state, and how many trials it holds when it is finished
    (said in one line: there is nothing to resume), else None."""
    stored = storage.join(spec.experiment_uri, SPEC_FILE)
    if storage.exists(stored):
        spec = parse_spec(yaml.safe_load(storage.read_text(stored)))
    check_restorable(spec)
    done = finished_trials(spec)
    if done is not None:
        print(f"experiment {spec.name!r} is finished ({done} trials); nothing to resume", file=sys.stderr)
    return spec, done


def finished_trials(spec: SweepSpec) -> int | None:
    """How many trials a saved experiment holds when it is finished (every
    trial created and ended), else None: ``--resume`` has nothing to do then."""
    state_uri = newest_state_file(spec.experiment_uri)
    if state_uri is None:
        return None
    try:  # one trial at a time: the file is 240 MB at 10,000 trials
        statuses = [json.loads(trial)["status"] for trial, _ in trial_data(state_uri)]
    except (ValueError, KeyError, TypeError):
        return None
    ended = all(status in ENDED for status in statuses)
    return len(statuses) if ended and len(statuses) >= spec.search.num_samples else None


@contextlib.contextmanager
def quiet_tune(verbose: bool):
    """Ray Tune's output at its DEFAULT verbosity, less what a user does not
    need unless ``verbose``: each trial's start and end boxes, the TensorBoard
    hint to a driver staging folder, Optuna's study line, the snapshot
    warning that ``checkpoint.num_to_keep`` triggers and, after a stop, the
    warning about trials that had not reported yet."""
    if verbose:
        yield
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    analysis_logger = logging.getLogger("ray.tune.analysis.experiment_analysis")
    analysis_logger.addFilter(_no_metrics_of_unstarted_trials)
    try:
        with environ({"TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}), quiet_trial_boxes():
            yield
    finally:
        analysis_logger.removeFilter(_no_metrics_of_unstarted_trials)


def run_sweep(spec: SweepSpec, address: str | None = None, resume: bool = False, verbose: bool = False,
              warm=None) -> str:
    """Run (or resume) the sweep to the end; returns the experiment's URI.
    Where the time went (driver set-up, Ray start, each trial's wall and fit
    time) is written to the experiment's ``sweep_timings.json``. Ctrl-C
    raises :class:`SweepInterrupted` once Ray Tune has saved the state;
    ``--resume`` of a finished experiment returns it untouched. Nothing is
    written before the cluster answers. Through Ray Client the run itself
    happens on the head node (:mod:`scenetune.search.client_driver`).
    ``warm``: the earlier trials a new sweep's study starts with (a
    :class:`scenetune.analysis.warm_start.WarmStart`: its ``trials`` and its
    ``record``, kept in the experiment); a resumed one has them already."""
    clock = SweepClock()
    if not is_client(address):  # refused at once, before Ray starts (through Ray Client the head reads the storage)
        if resume:
            spec, done = resumable(spec)
            if done is not None:
                return spec.experiment_uri
        else:
            check_new_experiment(spec)
    with clock.phase("ray_start_s"):
        connect(address, verbose)
    with stops_on_sigterm():
        if is_client(address):
            from scenetune.search.client_driver import drive_through_client

            # paths as this machine's user means them, not as the head's working folder would read them
            spec = spec.model_copy(update={"storage": storage.normalize(spec.storage)})
            interrupted = drive_through_client(spec, resume, verbose, clock, warm)
        else:
            interrupted = drive(spec, resume, verbose, clock, checked=True, warm=warm)
    if interrupted:
        raise SweepInterrupted(spec.experiment_uri)
    return spec.experiment_uri


def drive(spec: SweepSpec, resume: bool, verbose: bool, clock: SweepClock, checked: bool = False,
          warm=None) -> bool:
    """Build (after the data check and split) or restore the Tuner and run it
    where Ray Tune's driver runs; True when the sweep ended before its trials.
    ``checked``: the new experiment's name and storage were checked already,
    or the experiment to resume read (:func:`resumable`); through Ray Client
    they are not, and this reads them on the head, where the storage is the
    cluster's; ``warm``: as :func:`run_sweep` takes it."""
    if resume and not checked:
        spec, done = resumable(spec)
        if done is not None:
            return False
    if not verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # its "new study created" line
    callbacks = [clock, CompactFinishedTrials(ranked_metrics(spec))]
    if not verbose:  # one line for Ray Tune's table of trials (which -v shows)
        writer = LineWriter()
        callbacks.append(ProgressLine(spec.metric, spec.mode, spec.search.num_samples, writer.update,
                                      writer.finish))
    if resume:
        tuner = restore_tuner(spec, callbacks, quiet=not verbose)
    else:
        with clock.phase("prepare_s"):
            prepared = prepare(spec, checked)
        if warm is not None:
            prepared.warm_trials = list(warm.trials)
            record = {**warm.record, "run_first": run_first(warm.trials, spec.search, spec.mode)}
            storage.write_text(storage.join(prepared.experiment, WARM_START_FILE), json.dumps(record, indent=1))
        tuner = build_tuner(prepared, callbacks, quiet=not verbose)
    tolerate_killed_trial_workers()  # a trial killed for memory fails alone, not the sweep
    recycle_grown_workers(spec.resources.recycle_at_growth_mb)
    save_every_trial_status()
    fresh_process_when_reuse_fails()
    keep_starting_processes()  # a node's starting trial process is not killed for another node's warm one
    keep_the_drivers_trial_logs()
    paced_forced_snapshots()
    delete_checkpoints_after_snapshot()  # a driver killed at any moment leaves no trial naming a deleted checkpoint
    pack_ended_trial_state()  # an ended trial's saved state JSON, compressed in the driver
    share_placement_group_factories()
    one_key_for_encoder_fallbacks()
    upload_changed_files()  # each snapshot's upload copies what changed, not every trial's logs again
    pending = environ(pending_trials(spec.scheduler.model_dump(), spec.search.num_samples, trial_slots(spec)))
    try:  # the ResultGrid that fit returns is dropped (scenetune reads the trials' files): no trial's results read
        with clock.phase("trials_s"), pending, quiet_tune(verbose), interruptible(), no_trial_dataframes():
            tuner.fit()
    finally:
        clock.save(spec.experiment_uri)
    print(clock.summary(), file=sys.stderr, flush=True)
    return finished_trials(spec) is None
