"""Fault tolerance on a real multi-node Ray cluster on this machine (a head
and worker nodes of 1 CPU each, started with ``ray start``; see
raycluster.py), storage on a directory standing for shared storage. Every
assertion reads the experiment's files (result.json, error.txt, Ray Tune's
state, the searcher's state), never the log text."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess

import pytest

from analysis import load_experiment
from tests.cluster.conftest import SCENETUNE, Driver, wait_until

pytestmark = pytest.mark.slow


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
    victim, _ = cluster.reset_workers(2)
    spec = make_spec({"name": "lost-node", "storage": str(tmp_path / "shared"),
                      "search": {"num_samples": 2, "max_concurrent": 2},
                      "scheduler": {"name": "asha", "max_t": 8, "grace_period": 6, "reduction_factor": 2},
                      "failure": {"max_failures": 2},
                      "space": {"learning_rate": {"loguniform": [1.0e-4, 3.0e-3]}},
                      "fixed": {"epochs": 8}})
    experiment = str(tmp_path / "shared" / "lost-node")
    driver = Driver(cluster, spec, str(tmp_path / "driver.log"))

    def running_on_victim():
        for trial in trial_dirs(experiment):
            rows = rows_of(trial)
            if rows and rows[-1]["node_ip"] == victim.ip and rows[-1]["epoch"] >= 2 and not rows[-1]["done"]:
                return trial
    trial = wait_until(running_on_victim, 300, "trial with 2 epochs on the victim node", driver)
    cluster.kill_raylet(victim)
    assert driver.wait() == 0, driver.tail()

    exp = load_experiment(experiment)
    assert len(exp.trials) == 2
    assert set(exp.trials["status"]) <= {"completed", "stopped"}, exp.trials[["trial_id", "status", "error"]]
    rows = rows_of(trial)
    trial_id = rows[0]["trial_id"]
    assert exp.trials.set_index("trial_id").loc[trial_id, "failures"] >= 1, "the lost node failed the trial"
    epochs = [r["epoch"] for r in rows]
    assert epochs == list(range(1, len(rows) + 1)), f"epochs continue, not start over: {epochs}"
    moved = next(i for i, r in enumerate(rows) if r["node_ip"] != victim.ip)
    assert moved >= 2 and all(r["node_ip"] == victim.ip for r in rows[:moved])
    assert rows[moved]["iterations_since_restore"] == 1, "the first epoch on the new node is its first since restore"
    assert rows[moved]["epoch"] == rows[moved - 1]["epoch"] + 1, "resumed from the last checkpoint"
    assert rows[moved]["train_time_s"] > rows[moved - 1]["train_time_s"], "training time carried over"
    assert rows[-1]["epoch"] in (6, 8)  # stopped at ASHA's rung or completed
