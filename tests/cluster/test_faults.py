"""Fault tolerance on a real multi-node Ray cluster on this machine (a head
and worker nodes of 1 CPU each, started with ``ray start``; see
raycluster.py), storage on a directory standing for shared storage. Every
assertion reads the experiment's files (result.json, error.txt, Ray Tune's
state, the searcher's state), never the log text."""

from __future__ import annotations

import datetime
import glob
import json
import os
import shutil
import signal
import subprocess
import warnings

import pytest

from scenetune.analysis import load_experiment
from tests.cluster.conftest import SCENETUNE, Driver, wait_until

pytestmark = pytest.mark.slow

# Each worker node has this much memory of its own (a memory cgroup); Ray's
# memory monitor acts at 75% of it (conftest.CLUSTER_ENV).
WORKER_MEMORY_MB = 4096


def rows_of(trial_dir: str) -> list[dict]:
    """The epochs a trial reported, from its result.json (a partly written
    last line is skipped: the driver may be writing it)."""
    path = os.path.join(trial_dir, "result.json")
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


def trial_dirs(experiment: str) -> list[str]:
    return sorted(d for d in glob.glob(os.path.join(experiment, "*", "")) if os.path.exists(d + "params.json"))


def test_a_lost_worker_node_s_trials_continue_from_their_checkpoint_on_another_node(cluster, make_spec, tmp_path):
    victim, _ = cluster.ensure_workers(2, memory_cap_mb=WORKER_MEMORY_MB)
    spec = make_spec({"name": "lost-node", "storage": str(tmp_path / "shared"),
                      "search": {"num_samples": 2, "max_concurrent": 2},
                      "scheduler": {"name": "asha", "max_t": 16, "grace_period": 12, "reduction_factor": 2},
                      "failure": {"max_failures": 2}, "checkpoint": {"num_to_keep": 2, "frequency": 2},
                      "space": {"learning_rate": {"loguniform": [1.0e-4, 3.0e-3]}},
                      "fixed": {"epochs": 16, "image_size": 64}})  # epochs of a few tenths of a second
    experiment = str(tmp_path / "shared" / "lost-node")
    driver = Driver(cluster, spec, str(tmp_path / "driver.log"))

    def running_on_victim():
        # The kill must land past the checkpoint of epoch 4 and well before ASHA's rung at 12,
        # where a trial held or stopped by ASHA would fail no trial. result.json is written by
        # the driver and reaches storage only at its snapshots (a loaded full suite saw it lag
        # until the trial was at the rung): progress is read from the checkpoints, which the
        # trial's own process writes to storage as it reports them (every 2 epochs: index 1 is
        # epoch 4's, index 2 epoch 6's). result.json's first row says where the trial runs.
        for trial in trial_dirs(experiment):
            rows = rows_of(trial)
            saved = [int(os.path.basename(c.rstrip("/")).split("_")[1])
                     for c in glob.glob(os.path.join(trial, "checkpoint_*", ""))]
            if rows and rows[0]["node_ip"] == victim.ip and saved and max(saved) in (1, 2):
                return trial
    trial = wait_until(running_on_victim, 300, "a trial on the victim node past epoch 4's checkpoint, before epoch 8's", driver, every=0.05)
    # The whole node at once: after its raylet alone, the trial's worker (which reports to the
    # driver directly) once finished its epochs to ASHA's rung before it noticed (CI, loaded).
    cluster.lose_node(victim)
    assert driver.wait() == 0, driver.tail()

    exp = load_experiment(experiment)
    assert len(exp.trials) == 2
    assert set(exp.trials["status"]) <= {"completed", "stopped"}, exp.trials[["trial_id", "status", "error"]]
    rows = rows_of(trial)
    trial_id = rows[0]["trial_id"]
    assert exp.trials.set_index("trial_id").loc[trial_id, "failures"] >= 1, (
        "the lost node failed the trial", [(r["epoch"], r["node_ip"], r["done"]) for r in rows], victim.ip)
    # Checkpoints every 2 epochs: the trial resumes after an even epoch it reached on the victim.
    # Ray Tune logs an epoch's result, then registers the checkpoint that came with it
    # (a second call to the trial's actor): an epoch whose checkpoint was in flight when
    # the node died is logged but not registered, so the trial resumes from the one before.
    # result.json may lack the victim's last lines (the driver was writing them): they are
    # in progress.csv, which the experiment reads; so the victim may have gone further.
    moved = next(i for i, r in enumerate(rows) if r["node_ip"] != victim.ip)
    on_victim, on_new = [r["epoch"] for r in rows[:moved]], [r["epoch"] for r in rows[moved:]]
    assert on_victim == list(range(1, moved + 1)) and moved >= 3, (on_victim, on_new)
    assert on_new == list(range(on_new[0], on_new[0] + len(on_new))), f"contiguous after the move: {on_new}"
    checkpointed = on_new[0] - 1
    assert checkpointed % 2 == 0 and checkpointed >= max(moved - moved % 2 - 2, 2), (
        f"resumed from the last checkpoint, not started over: {on_victim} {on_new}")
    assert all(r["node_ip"] != victim.ip for r in rows[moved:])
    assert rows[moved]["iterations_since_restore"] == 1, "the first epoch on the new node is its first since restore"
    seen = exp.epochs[exp.epochs["trial_id"] == trial_id].set_index("epoch")
    assert rows[moved]["train_time_s"] > seen.loc[checkpointed, "train_time_s"], "training time carried over"
    assert rows[-1]["epoch"] in (12, 16)  # stopped at ASHA's rung or completed
    history = exp.epochs.sort_values("training_iteration").groupby("trial_id")["epoch"].apply(list)
    assert len(history) == 2, history
    for each, epochs in history.items():  # no trial started over, and each epoch counts once
        assert epochs == list(range(1, len(epochs) + 1)), f"{each}: {epochs}"
    assert history[trial_id] == list(range(1, rows[-1]["epoch"] + 1))


def completed_and_started(experiment: str):
    """(completed trial ids per Ray Tune's saved state, started trial dirs)."""
    if not glob.glob(os.path.join(experiment, "experiment_state-*.json")):
        return set(), []
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trials = load_experiment(experiment).trials
    done = set(trials.loc[trials["status"] == "completed", "trial_id"]) if not trials.empty else set()
    return done, trial_dirs(experiment)


def test_a_killed_driver_is_resumed_without_losing_or_rerunning_trials_and_optuna_keeps_its_study(
        cluster, make_spec, tmp_path):
    from ray.tune.search.optuna import OptunaSearch

    cluster.ensure_workers(2, memory_cap_mb=WORKER_MEMORY_MB)
    # Six trials, two at a time: Ray saves its state every few seconds, so by the time a
    # completed trial shows there, the next two may have started; some are still unsuggested.
    trials = 6
    spec = make_spec({"name": "driver-kill", "storage": str(tmp_path / "shared"),
                      "search": {"algorithm": "optuna", "sampler": "tpe", "num_samples": trials,
                                 "max_concurrent": 2},
                      "failure": {"max_failures": 1}, "checkpoint": {"num_to_keep": 1, "frequency": 2},
                      "space": {"learning_rate": {"loguniform": [1.0e-4, 3.0e-3]}},
                      "fixed": {"epochs": 4}})
    experiment = str(tmp_path / "shared" / "driver-kill")
    driver = Driver(cluster, spec, str(tmp_path / "driver.log"))

    def some_completed_some_running():
        done, started = completed_and_started(experiment)
        return (done, started) if done and len(started) > len(done) else None
    done, started = wait_until(some_completed_some_running, 400, "a completed trial and a running one", driver,
                               every=0.5)
    driver.process.send_signal(signal.SIGKILL)
    kill_time = datetime.datetime.now()
    driver.process.wait(30)
    assert len(started) < trials, "some trials were not yet suggested when the driver died"
    by_id = {rows_of(t)[0]["trial_id"]: t for t in started if rows_of(t)}
    before = {trial_id: open(os.path.join(by_id[trial_id], "result.json")).read() for trial_id in done}

    # The same name without --resume is refused; with it, the sweep finishes.
    refused = subprocess.run([SCENETUNE, "sweep", spec], capture_output=True, text=True, env=cluster.env)
    assert refused.returncode == 2 and "already exists" in refused.stderr and "--resume" in refused.stderr
    resumed = Driver(cluster, spec, str(tmp_path / "resume.log"), "--resume")
    assert resumed.wait() == 0, resumed.tail()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exp = load_experiment(experiment)
    assert len(exp.trials) == trials, "total trials == num_samples"
    # A trial started after Ray Tune's last state save before the kill is not resumed (Ray
    # does not know it); its folder stays, and the experiment leaves it out, saying so.
    unsaved = [os.path.normpath(t) for t in trial_dirs(experiment)
               if os.path.basename(os.path.normpath(t)) not in set(exp.trials["trial_dir"])]
    assert len(unsaved) <= 2 and all(any(t in str(w.message) and "saved state" in str(w.message)
                                         for w in caught) for t in unsaved), (unsaved, caught)
    assert all(os.path.basename(t) not in before for t in unsaved), "a completed trial is never left out"
    assert set(exp.trials["status"]) == {"completed"}, exp.trials[["trial_id", "status", "error"]]
    for trial_id, text in before.items():
        after = open(os.path.join(by_id[trial_id], "result.json")).read()
        assert after == text, f"completed trial {trial_id} was run again"
    # Ray Tune restarts a trial that was running at the kill from the checkpoint in the state it
    # last saved, so an epoch it reported after that save runs again and is logged twice (its log
    # in storage can be newer than that state: Ray logs an epoch's result before it registers the
    # checkpoint that came with it, and uploads the logs with the next state); a trial completed
    # before the kill is untouched (above), and the experiment counts each epoch once.
    completed_dirs = {by_id[trial_id] for trial_id in done}
    for trial in trial_dirs(experiment):
        if os.path.normpath(trial) in unsaved:
            continue
        epochs = [r["epoch"] for r in rows_of(trial)]
        assert sorted(set(epochs)) == [1, 2, 3, 4] and epochs[-1] == 4, f"{trial}: {epochs}"
        restarts = [e for before, e in zip(epochs, epochs[1:]) if e <= before]
        assert all(e - 1 in (0, 2) for e in restarts) and len(restarts) <= 1, f"{trial}: {epochs}"  # from a checkpoint
        assert all(b == a + 1 for a, b in zip(epochs, epochs[1:]) if b > a), f"{trial}: {epochs}"  # no epoch skipped
        assert epochs == [1, 2, 3, 4] or trial not in completed_dirs, f"{trial}: {epochs}"
    history = exp.epochs.sort_values("training_iteration").groupby("trial_id")["epoch"].apply(list)
    assert len(history) == trials and all(epochs == [1, 2, 3, 4] for epochs in history), history

    # Optuna's study after the resume still holds what it learned before the kill.
    # One state file per driver session, named by its start time: the resumed one is the newest.
    state = sorted(glob.glob(os.path.join(experiment, "searcher-state-*.pkl")))[-1]
    searcher = OptunaSearch(metric="val_accuracy", mode="max")
    searcher.restore(state)
    study = searcher._ot_study
    assert len(study.trials) == trials and all(t.state.name == "COMPLETE" for t in study.trials)
    for trial_id in done:
        last = json.loads(before[trial_id].splitlines()[-1])
        observed = study.trials[searcher.optuna_numbers[trial_id]]  # (search/finished_trials.CompactOptunaSearch)
        assert observed.value == pytest.approx(last["val_accuracy"])
        assert observed.params["learning_rate"] == pytest.approx(last["config"]["learning_rate"])
        assert observed.datetime_complete < kill_time, "observed before the driver was killed"


def test_raising_and_oom_trials_are_errored_after_their_retries_and_the_sweep_goes_on(
        cluster, make_spec, tmp_path, capsys):
    from scenetune.cli import main

    cluster.ensure_workers(2, memory_cap_mb=WORKER_MEMORY_MB)
    spec = make_spec({"name": "faults", "storage": str(tmp_path / "shared"),
                      # three trials: one raises at epoch 2, one fills its node's memory at
                      # epoch 2, one is healthy (its fault epoch never comes)
                      "search": {"algorithm": "random", "num_samples": 3, "max_concurrent": 2, "points": [
                          {"debug_fault.mode": "always", "debug_fault.epoch": 2},
                          {"debug_fault.mode": "oom", "debug_fault.epoch": 2},
                          {"debug_fault.mode": "always", "debug_fault.epoch": 99}]},
                      "failure": {"max_failures": 1},
                      "space": {"debug_fault.mode": {"choice": ["always", "oom"]},
                                "debug_fault.epoch": {"choice": [2, 99]}},
                      "fixed": {"epochs": 3}})
    experiment = str(tmp_path / "shared" / "faults")
    driver = Driver(cluster, spec, str(tmp_path / "driver.log"))
    assert driver.wait() == 0, driver.tail()

    exp = load_experiment(experiment)
    assert len(exp.trials) == 3
    trials = exp.trials.set_index(["config/debug_fault.mode", "config/debug_fault.epoch"])
    for mode in ("always", "oom"):
        faulty = trials.loc[(mode, 2)]
        assert faulty["status"] == "errored", mode
        assert faulty["failures"] == 2, f"{mode}: the first attempt and its one retry"
        assert faulty["epochs"] == 1, f"{mode}: epoch 1 reported, epoch 2 never"
    healthy = trials.loc[("always", 99)]
    assert healthy["status"] == "completed" and healthy["epochs"] == 3 and healthy["failures"] == 0
    error = open(os.path.join(experiment, trials.loc[("always", 2), "trial_dir"], "error.txt")).read()
    assert "debug_fault: failing at epoch 2 (mode always)" in error
    error = open(os.path.join(experiment, trials.loc[("oom", 2), "trial_dir"], "error.txt")).read()
    assert "OutOfMemoryError" in error or "memory monitor" in error.lower() or "low on memory" in error, error
    assert "no memory monitor stopped this trial" not in error

    assert main(["best", experiment, "--top", "3", "--format", "json"]) == 0
    listed = {e["trial_id"]: e["status"] for e in json.loads(capsys.readouterr().out)["best"]}
    assert sorted(listed.values()) == ["completed", "errored", "errored"]


def test_a_node_without_the_dataset_fails_its_trial_naming_the_node_and_the_path(
        cluster, make_spec, tmp_path, synth_root):
    data = tmp_path / "node-data"
    shutil.copytree(synth_root, data / "indoor")
    (node,) = cluster.ensure_workers(1, hidden=(str(data),))  # this "machine" never got the data
    spec = make_spec({"name": "no-data", "storage": str(tmp_path / "shared"), "data": {"root": str(data / "indoor")},
                      "failure": {"max_failures": 0}})
    driver = Driver(cluster, spec, str(tmp_path / "driver.log"))
    assert driver.wait() == 0, driver.tail()

    exp = load_experiment(str(tmp_path / "shared" / "no-data"))
    (trial,) = exp.trials.itertuples()
    assert trial.status == "errored" and trial.epochs == 0
    error = open(os.path.join(exp.uri, trial.trial_dir, "error.txt")).read()
    assert f"dataset root {data / 'indoor'} is missing on node {node.hostname}" in error
