"""scenetune's patches of Ray Tune 2.60's internals (search/ray_compat.py):
each one shown at work, so that a test fails when one stops taking effect,
and each one's check of what it patches (a Ray without it: one warning line
naming the Ray installed, the patch left out, nothing broken).

Which test shows each patch at work (``ray-alone``: the same run with Ray's
own methods, showing what the patch changes):

- ``tolerate_killed_trial_workers``, ``RayActorManager._actor_task_failed``
  (a worker killed for memory, or its node lost, fails its trial alone):
  tests/cluster/test_faults.py::test_raising_and_oom_trials_are_errored_after_their_retries_and_the_sweep_goes_on
  and ::test_a_lost_worker_node_s_trials_continue_from_their_checkpoint_on_another_node
  (a real cluster, Ray's memory monitor); here
  test_a_worker_killed_from_outside_is_handed_on_as_its_actor_s_death (the
  wrapper on the class, Ray's method stubbed);
- ``tolerate_killed_trial_workers``, ``TuneController._process_trial_failure``
  (a trial whose worker died is saved as errored, not running):
  test_a_trial_whose_worker_died_is_saved_as_errored (real Ray Tune);
- ``recycle_grown_workers`` (``TuneController._maybe_cache_trial_actor``):
  test_a_warm_process_that_grew_is_retired (real Ray Tune), and
  tests/trainables/test_warm_trials.py::test_thirty_trials_keep_each_warm_process_within_its_memory_bound;
- ``save_every_trial_status`` (``TuneController._get_trial_checkpoints``):
  test_a_trial_stopped_while_paused_is_saved_as_terminated (real Ray Tune);
- ``fresh_process_when_reuse_fails`` (``TuneController._on_trial_reset``):
  tests/search/test_hyperband.py::test_a_process_that_cannot_be_reset_is_replaced_not_left_to_hang_the_band;
- ``keep_the_drivers_trial_logs`` (``LoggerCallback._restore_from_remote``):
  tests/search/test_driver_patches.py, and test_hyperband.py's band above;
- ``paced_forced_snapshots``
  (``_ExperimentCheckpointManager.sync_up_experiment_state``):
  tests/search/test_driver_patches.py, with Ray's own checkpoint manager;
- ``set_restored_callbacks`` (``Tuner._local_tuner._run_config``):
  test_a_restored_tuner_runs_the_new_callbacks_not_the_pickled_ones;
- ``quiet_trial_boxes`` (``ray.tune.experimental.output``):
  test_quiet_trial_boxes_wait_for_verbose_and_leave_out_the_hint, and
  tests/cli/test_cli.py::test_a_sweep_is_quiet_unless_verbose (the CLI).

Each wrapper is installed once on its owner, marked ``_scenetune``; the last
three tests take a part away from Ray's classes, one at a time.
"""

from __future__ import annotations

import contextlib
import glob
import inspect
import json
import logging
import os
import tempfile
import types

import pytest
import ray
from ray import tune
from ray.air.execution._internal.actor_manager import RayActorManager
from ray.exceptions import NodeDiedError, OutOfMemoryError, RayActorError
from ray.tune.execution.experiment_state import _ExperimentCheckpointManager
from ray.tune.execution.tune_controller import TuneController
from ray.tune.experimental import output
from ray.tune.logger.logger import LoggerCallback
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from scenetune.search import ray_compat
from scenetune.search.ray_compat import (
    TrialWorkerKilled,
    fresh_process_when_reuse_fails,
    keep_the_drivers_trial_logs,
    paced_forced_snapshots,
    quiet_trial_boxes,
    recycle_grown_workers,
    save_every_trial_status,
    set_restored_callbacks,
    tolerate_killed_trial_workers,
)
from tests.known_curves import checkpointed_lines

# (patch, owner, method): every method a _wrap patch replaces
WRAPPED = [(tolerate_killed_trial_workers, RayActorManager, "_actor_task_failed"),
           (tolerate_killed_trial_workers, TuneController, "_process_trial_failure"),
           (recycle_grown_workers, TuneController, "_maybe_cache_trial_actor"),
           (save_every_trial_status, TuneController, "_get_trial_checkpoints"),
           (fresh_process_when_reuse_fails, TuneController, "_on_trial_reset"),
           (keep_the_drivers_trial_logs, LoggerCallback, "_restore_from_remote"),
           (paced_forced_snapshots, _ExperimentCheckpointManager, "sync_up_experiment_state")]


def apply(patch) -> bool:
    return patch(0) if patch is recycle_grown_workers else patch()


def installed_once(patch, owner, name: str) -> None:
    """``patch()`` puts a scenetune wrapper at ``owner.name``; applied again, it changes nothing."""
    original = getattr(owner, name)
    assert patch() is True
    wrapper = getattr(owner, name)
    assert wrapper is not original and wrapper._scenetune
    assert patch() is True and getattr(owner, name) is wrapper


def ray_s_own(method):
    """The Ray method under scenetune's wrapper (the method itself when not wrapped)."""
    while getattr(method, "_scenetune", False):
        method = inspect.getclosurevars(method).nonlocals["original"]
    return method


@pytest.fixture
def ray_alone(monkeypatch):
    """Ray's own methods for this test, as if nothing had patched them in this
    process (a sweep earlier in the session did); pytest puts back what was
    there, and the memory the recycling patch keeps."""
    for _, owner, name in WRAPPED:
        monkeypatch.setattr(owner, name, ray_s_own(getattr(owner, name)))
    monkeypatch.setattr(ray_compat, "_first_rss_mb", {})
    monkeypatch.setattr(ray_compat, "_recycle_at_growth_mb", [0.0])


def saved_statuses(experiment: str) -> list[str]:
    """Each trial's status in the experiment state Ray Tune saved last."""
    (state,) = glob.glob(os.path.join(experiment, "experiment_state-*.json"))
    with open(state) as f:
        return sorted(json.loads(trial)["status"] for trial, _ in json.load(f)["trial_data"])


def run(trainable, tmp_path, name: str, param_space: dict, verbose: int = 0, callbacks=None, **tune_config):
    return tune.Tuner(trainable, param_space=param_space, tune_config=tune.TuneConfig(**tune_config),
                      run_config=tune.RunConfig(storage_path=str(tmp_path), name=name, verbose=verbose,
                                                callbacks=callbacks)).fit()


# --- each wrapper is installed on its owner


def test_every_wrapper_is_installed_once_on_its_owner(ray_alone):
    assert not any(getattr(getattr(owner, name), "_scenetune", False) for _, owner, name in WRAPPED)
    for patch, owner, name in WRAPPED:
        assert apply(patch) is True
        wrapper = getattr(owner, name)
        assert wrapper._scenetune and ray_s_own(wrapper) is not wrapper, name
        assert apply(patch) is True and getattr(owner, name) is wrapper, f"{name} wrapped twice"


def test_a_worker_killed_from_outside_is_handed_on_as_its_actor_s_death(ray_alone, monkeypatch):
    """Ray's ``_actor_task_failed`` (stubbed) gets the death of the trial's
    actor, which Tune retries, instead of an error it would raise out of the
    sweep; other errors go on as they are."""
    handed = []
    monkeypatch.setattr(RayActorManager, "_actor_task_failed", lambda self, task, exception: handed.append(exception))
    assert tolerate_killed_trial_workers()
    for error in (OutOfMemoryError("Task was killed due to the node running low on memory."),
                  NodeDiedError("node 10.0.0.2 died")):
        RayActorManager._actor_task_failed(None, "task", error)
        assert isinstance(handed[-1], TrialWorkerKilled) and isinstance(handed[-1], RayActorError)
        assert type(error).__name__ in str(handed[-1]) and str(error) in str(handed[-1])
    other = ValueError("trial code")
    RayActorManager._actor_task_failed(None, "task", other)
    assert handed[-1] is other


# --- real Ray Tune runs: each patch against Ray alone


def dies(config):
    """One result, then the trial's worker process ends (as if killed from outside)."""
    tune.report({"x": 1})
    os._exit(1)


@pytest.mark.slow
@pytest.mark.parametrize("patched", [False, True], ids=["ray-alone", "scenetune"])
def test_a_trial_whose_worker_died_is_saved_as_errored(ray_local, ray_alone, monkeypatch, tmp_path, patched):
    """Ray alone saves a trial whose actor died as RUNNING (its controller
    returns before marking it for the snapshot), so a resume would run it
    again. Experiment state saved at every step: the one before the failure
    says RUNNING, and only a marked trial is written again."""
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "0")
    if patched:
        assert tolerate_killed_trial_workers()
    run(dies, tmp_path, "dies", {})
    assert saved_statuses(str(tmp_path / "dies")) == (["ERROR"] if patched else ["RUNNING"])


class PauseThenStop(FIFOScheduler):
    """Pauses the first trial to report, then stops it while it is paused (as
    HyperBand stops a bracket's worse paused trials, or ASHA a held one), once
    the other trial has reported twice since: at least one experiment state
    saved meanwhile says PAUSED."""

    def __init__(self):
        super().__init__()
        self.paused, self.seen_paused = None, 0

    def on_trial_result(self, tune_controller, trial, result):
        if self.paused is None:
            self.paused = trial
            return TrialScheduler.PAUSE
        if trial is not self.paused and self.paused.status == "PAUSED":
            self.seen_paused += 1
            if self.seen_paused == 2:
                tune_controller.stop_trial(self.paused)
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller, trial, result):
        if trial is not self.paused and self.paused.status == "PAUSED":  # never left paused for ever
            tune_controller.stop_trial(self.paused)

    def choose_trial_to_run(self, tune_controller):
        return next((t for t in tune_controller.get_trials() if t.status == "PENDING"), None)


@pytest.mark.slow
@pytest.mark.parametrize("patched", [False, True], ids=["ray-alone", "scenetune"])
def test_a_trial_stopped_while_paused_is_saved_as_terminated(ray_local, ray_alone, monkeypatch, tmp_path, patched):
    """Ray alone re-saves only trials it marked as changed, and stopping a
    paused trial does not mark it: the final state says PAUSED for a trial
    that ended (the reader would call it pending)."""
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "0")
    if patched:
        assert save_every_trial_status()
    scheduler = PauseThenStop()
    run(checkpointed_lines, tmp_path, "paused", {"curve": tune.grid_search(["A", "B"])}, scheduler=scheduler)
    assert scheduler.seen_paused >= 2, "the paused trial was stopped while paused"
    assert saved_statuses(str(tmp_path / "paused")) == (["TERMINATED"] * 2 if patched else ["PAUSED", "TERMINATED"])


RSS_MB = [100.0, 150.0, 300.0, 300.0]  # what each trial reports as its process's memory


def reports_rss(config):
    tune.report({"process_rss_mb": RSS_MB[config["i"]]})


@pytest.mark.slow
@pytest.mark.parametrize("patched", [False, True, "compacted"], ids=["ray-alone", "scenetune", "with-compaction"])
def test_a_warm_process_that_grew_is_retired(ray_local, ray_alone, tmp_path, patched):
    """Four trials, one at a time, in warm processes. Ray alone runs them all
    in one process; with ``recycle_at_growth_mb`` 100 the process is retired
    after the third trial (200 MB past its size after its first: the second's
    50 MB keeps it), and the fourth runs in a new one; so too when finished
    trials' results are cut to the ranked metrics (``process_rss_mb`` is not
    one), as ``scenetune sweep`` does (search/finished_trials.py)."""
    from scenetune.search.finished_trials import CompactFinishedTrials

    if patched:
        assert recycle_grown_workers(100)
    callbacks = [CompactFinishedTrials({"i"})] if patched == "compacted" else None
    results = run(tune.with_resources(reports_rss, {"cpu": 2}), tmp_path, "warm",
                  {"i": tune.grid_search(list(range(len(RSS_MB))))}, callbacks=callbacks, reuse_actors=True)
    assert not results.errors
    pids = [r.metrics["pid"] for r in sorted(results, key=lambda r: r.config["i"])]
    assert pids[0] == pids[1] == pids[2], pids
    assert (pids[3] != pids[2]) if patched else (pids[3] == pids[2]), pids


# --- a restored Tuner's callbacks


CALLS: list[tuple[str, int]] = []  # (callback's name, the result's step): Recorder.on_trial_result


class Recorder(tune.Callback):
    """Records each result it is told of (pickled with the Tuner, found again by name)."""

    def __init__(self, name: str):
        self.name = name

    def on_trial_result(self, iteration, trials, trial, result, **info):
        CALLS.append((self.name, result["step"]))


def gated(config):
    """Steps 1 to 3, checkpointed; fails before step 2 until ``config["gate"]``
    exists, and resumes from its checkpoint."""
    done = 0
    if (checkpoint := tune.get_checkpoint()) is not None:
        with checkpoint.as_directory() as folder, open(os.path.join(folder, "step")) as f:
            done = int(f.read())
    for step in range(done + 1, 4):
        if step == 2 and not os.path.exists(config["gate"]):
            raise RuntimeError("the gate is closed")
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "step"), "w") as f:
                f.write(str(step))
            tune.report({"step": step}, checkpoint=tune.Checkpoint.from_directory(folder))


@pytest.mark.slow
@pytest.mark.parametrize("patched", [False, True], ids=["ray-alone", "scenetune"])
def test_a_restored_tuner_runs_the_new_callbacks_not_the_pickled_ones(ray_local, tmp_path, capfd, patched):
    """``Tuner.restore`` brings back the first run's callbacks and verbosity
    (pickled in tuner.pkl); after ``set_restored_callbacks`` the resumed run
    tells the new callbacks, and only them, and runs at the new verbosity."""
    gate = tmp_path / "gate"
    CALLS.clear()
    first = tune.Tuner(gated, param_space={"gate": str(gate)}, run_config=tune.RunConfig(
        storage_path=str(tmp_path), name="restored", callbacks=[Recorder("first")], verbose=1)).fit()
    assert first.errors and CALLS == [("first", 1)]
    gate.touch()
    CALLS.clear()
    capfd.readouterr()
    tuner = tune.Tuner.restore(str(tmp_path / "restored"), trainable=gated, resume_errored=True)
    if patched:
        assert set_restored_callbacks(tuner, [Recorder("second")], verbose=0) is True
    results = tuner.fit()
    printed = "".join(capfd.readouterr())
    assert not results.errors and results[0].metrics["step"] == 3
    assert CALLS == [("second" if patched else "first", step) for step in (2, 3)]
    assert ("Trial status:" in printed) is not patched, "verbose 0: no table of trials"


# --- Ray Tune's trial boxes


def tiny(config):
    for step in range(2):
        tune.report({"score": config["x"] * step})


BOXES = ("started with configuration", "completed after")


@pytest.mark.slow
@pytest.mark.parametrize("patched, verbose", [(False, 1), (True, 1), (True, 2), (False, 0), (True, 0)],
                         ids=["ray-alone-default", "default", "verbose", "ray-alone-silent", "silent"])
def test_quiet_trial_boxes_wait_for_verbose_and_leave_out_the_hint(ray_local, tmp_path, capfd, patched, verbose):
    """A real sweep of two trials at each verbosity: at DEFAULT, Ray alone
    prints each trial's start and end boxes, the TensorBoard hint and a first
    table of pending trials; with the patch only VERBOSE (``-v``) prints the
    boxes, none the hint, the first table waits (30 s, or the end: every
    trial done), and SILENT prints no header box (Ray alone does)."""
    classes = {"TuneReporterBase": output.TuneReporterBase, "TuneTerminalReporter": output.TuneTerminalReporter}
    saved = {(cls, attr): getattr(classes[cls], attr) for cls, attrs in ray_compat.REPORTER_CLASS_ATTRS.items()
             for attr in attrs}
    capfd.readouterr()
    with quiet_trial_boxes() if patched else contextlib.nullcontext(True) as in_place:
        assert in_place is True
        run(tiny, tmp_path, "boxes", {"x": tune.grid_search([1, 2])}, verbose=verbose)
    printed = "".join(capfd.readouterr())
    tables = [line for line in printed.splitlines() if line.startswith("Trial status:")]
    boxes = verbose >= 2 or (verbose == 1 and not patched)
    assert all((text in printed) is boxes for text in BOXES), printed
    assert ("tensorboard --logdir" in printed) is not patched, printed  # Ray alone: at SILENT too
    assert ("Configuration for experiment" in printed) is (verbose >= 1 or not patched), printed
    if verbose == 0:
        assert tables == []
    elif patched:
        assert tables == ["Trial status: 2 TERMINATED"], tables
    else:
        assert len(tables) >= 2 and "TERMINATED" not in tables[0], tables
    assert {(cls, attr): getattr(classes[cls], attr) for cls, attr in saved} == saved, "put back"


# --- a Ray that lacks what a patch patches


def one_warning_line(caplog, *names: str) -> str:
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, lines
    (line,) = lines
    assert "\n" not in line and f"Ray {ray.__version__} has no" in line and "without it" in line, line
    assert all(name in line for name in names), (names, line)
    return line


# a method a wrapper calls -> the method it wraps, left out when the other is missing
NEEDED_BY = {"_mark_trial_to_checkpoint": "_process_trial_failure", "_schedule_trial_actor": "_on_trial_reset"}


@pytest.mark.parametrize("patch, owner, missing", [
    *WRAPPED,
    (tolerate_killed_trial_workers, TuneController, "_mark_trial_to_checkpoint"),
    (fresh_process_when_reuse_fails, TuneController, "_schedule_trial_actor"),
], ids=lambda value: getattr(value, "__name__", value))
def test_a_method_this_ray_lacks_leaves_its_patch_out_with_one_warning_line(ray_alone, monkeypatch, caplog, patch,
                                                                           owner, missing):
    monkeypatch.delattr(owner, missing)
    left_out = (owner, NEEDED_BY.get(missing, missing))
    applied = {(o, name) for p, o, name in WRAPPED if p is patch} - {left_out}  # tolerate's other half
    before = {(o, name): getattr(o, name, None) for _, o, name in WRAPPED}
    with caplog.at_level(logging.WARNING, logger=ray_compat.__name__):
        assert apply(patch) is False
    one_warning_line(caplog, f"{owner.__name__}.{missing}")
    for (o, name), method in before.items():
        if (o, name) in applied:
            assert getattr(o, name)._scenetune, name
        else:
            assert getattr(o, name, None) is method, f"{name} patched although {missing} is missing"


def test_a_tuner_without_its_run_config_keeps_its_callbacks_with_one_warning_line(caplog):
    tuner = types.SimpleNamespace(_local_tuner=types.SimpleNamespace())
    with caplog.at_level(logging.WARNING, logger=ray_compat.__name__):
        assert set_restored_callbacks(tuner, [Recorder("new")], verbose=0) is False
    one_warning_line(caplog, "Tuner._local_tuner._run_config")
    assert vars(tuner._local_tuner) == {}
