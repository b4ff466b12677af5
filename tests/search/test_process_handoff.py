"""A freed warm process goes to a trial without one, never in place of a
trial's own process that is starting (search/process_handoff.py), under real
Ray Tune 2.60 on the embedded Ray of 2 CPUs.

Two slots, two trials pending at most (``TUNE_MAX_PENDING_TRIALS_PG=2``, what
scenetune sets for 2 slots); a trial process takes 2 s to start (as one that
imports TensorFlow does) and a trial 1 s to run. The third trial's reuse of
a warm process fails once (``reset_config`` False), so it gets a process of
its own mid-sweep (``ray_compat.fresh_process_when_reuse_fails``), as a
trial does on a node that joins the sweep. Ray alone kills that process
once a warm one frees up, and every later new process too; with the
hand-off the warm one goes to the next trial and every process started runs
a trial."""

from __future__ import annotations

import logging
import os
import time

import pytest
from ray import tune
from ray.tune.execution.tune_controller import TuneController

from scenetune.search import process_handoff, ray_compat
from scenetune.search.process_handoff import keep_starting_processes
from scenetune.search.ray_compat import fresh_process_when_reuse_fails
from tests.search.test_ray_compat import installed_once, one_warning_line, ray_s_own

START_S, TRIAL_S, TRIALS = 2.0, 1.0, 8


class SlowStart(tune.Trainable):
    """A trial process that takes ``START_S`` to start; a reused one is reset at once."""

    def setup(self, config):
        with open(os.path.join(config["folder"], f"started-{os.getpid()}"), "w"):
            pass
        time.sleep(START_S)

    def step(self):
        time.sleep(TRIAL_S)
        return {"pid": os.getpid(), "done": True}

    def reset_config(self, new_config):
        refused = os.path.join(new_config["folder"], "refused")
        if new_config["i"] == 2 and not os.path.exists(refused):
            open(refused, "w").close()
            return False
        return True

    def save_checkpoint(self, checkpoint_dir):
        return None

    def load_checkpoint(self, checkpoint):
        pass


@pytest.fixture
def ray_alone(monkeypatch):
    """Ray's own ``_maybe_reuse_cached_actor`` for this test (a sweep earlier in the session patched it)."""
    monkeypatch.setattr(TuneController, "_maybe_reuse_cached_actor", ray_s_own(TuneController._maybe_reuse_cached_actor))


@pytest.mark.slow
@pytest.mark.parametrize("patched", [False, True], ids=["ray-alone", "scenetune"])
def test_a_starting_process_is_not_killed_for_a_warm_one(ray_local, ray_alone, monkeypatch, tmp_path, patched):
    assert fresh_process_when_reuse_fails()
    if patched:
        assert keep_starting_processes()
    monkeypatch.setenv("TUNE_MAX_PENDING_TRIALS_PG", "2")
    folder = tmp_path / "processes"
    folder.mkdir()
    results = tune.Tuner(
        tune.with_resources(SlowStart, {"cpu": 1}),
        param_space={"folder": str(folder), "i": tune.grid_search(list(range(TRIALS)))},
        tune_config=tune.TuneConfig(max_concurrent_trials=2, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="handoff", verbose=0)).fit()
    assert not results.errors
    ran = {r.metrics["pid"] for r in results}
    started = {int(name.split("-")[1]) for name in os.listdir(folder) if name.startswith("started-")}
    assert os.path.exists(folder / "refused")
    if patched:
        assert len(ran) >= 3, ran  # the two first processes and the third trial's own
        assert started == ran, f"processes started and never given a trial: {started - ran}"
    else:
        assert started - ran, (started, ran)  # Ray alone: a process killed while it started


def test_it_is_installed_once_on_tune_s_controller(ray_alone):
    installed_once(keep_starting_processes, TuneController, "_maybe_reuse_cached_actor")


@pytest.mark.parametrize("missing", ["_maybe_reuse_cached_actor", "_schedule_trial_actor", "_started_actors"])
def test_a_part_this_ray_lacks_leaves_it_out_with_one_warning_line(ray_alone, monkeypatch, caplog, missing):
    if missing.startswith("_started"):  # an attribute the controller's __init__ sets
        monkeypatch.setattr(process_handoff, "STATE", (*process_handoff.STATE, "_started_actors_renamed"))
        missing = "_started_actors_renamed"
    else:
        monkeypatch.delattr(TuneController, missing)
    before = getattr(TuneController, "_maybe_reuse_cached_actor", None)
    with caplog.at_level(logging.WARNING, logger=ray_compat.__name__):
        assert keep_starting_processes() is False
    one_warning_line(caplog, f"TuneController.{missing}")
    assert getattr(TuneController, "_maybe_reuse_cached_actor", None) is before
