"""Warm trials under real Ray Tune: a trial run as the second (or later)
trial of a reused worker process trains exactly as it does in a fresh
process, nothing of the previous trial (precision policy, XLA, seeds, model
state) leaks into it, the process's memory stays flat over many trials, and
``resources.reuse_processes: false`` gives every trial its own process.

Trials run one at a time (``max_concurrent: 1``), so with reuse on every
trial after the first runs in the first trial's process (checked by pid).
The configurations leave augmentation off: its random warps run in a
parallel tf.data map, whose draw order is not deterministic in any process.
"""

from __future__ import annotations

import json
import os
import zipfile

import pytest

from scenetune.analysis import load_experiment
from scenetune.search.run import run_sweep
from scenetune.search.spec import load_spec
from tests.trainables.gan.test_tune import gan_spec

pytestmark = pytest.mark.slow

COMPARED = {"classifier": ["loss", "accuracy", "val_loss", "val_accuracy"],
            "gan": ["d_loss", "g_loss", "d_acc_real", "d_acc_fake", "fid", "kid", "diversity"]}
FLOAT16_JIT = {"mixed_precision": "float16", "jit_compile": True}
PLAIN = {"mixed_precision": "float32", "jit_compile": False}


def trial_rows(exp) -> list[list[dict]]:
    """Each trial's result rows, trials in the order they started."""
    trials = []
    for trial_dir in exp.trials["trial_dir"]:
        with open(os.path.join(exp.uri, trial_dir, "result.json")) as f:
            trials.append([json.loads(line) for line in f if line.strip()])
    return sorted(trials, key=lambda rows: rows[0]["timestamp"] - rows[0]["time_total_s"])


def assert_same_training(a: list[dict], b: list[dict], metrics: list[str]) -> None:
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b]
    for row_a, row_b in zip(a, b):
        for metric in metrics:
            assert row_b[metric] == pytest.approx(row_a[metric], rel=1e-4, abs=1e-6), (metric, row_a["epoch"])


def saved_policies(exp, rows: list[dict]) -> set[str]:
    """The dtype policies of the layers of a trial's last checkpointed model."""
    trial_dir = os.path.join(exp.uri, next(d for d in exp.trials["trial_dir"] if rows[0]["trial_id"] in d))
    checkpoint = sorted(d for d in os.listdir(trial_dir) if d.startswith("checkpoint_"))[-1]
    with zipfile.ZipFile(os.path.join(trial_dir, checkpoint, "model.keras")) as z:
        config = json.loads(z.read("config.json"))
    found = set()

    def walk(node):
        if isinstance(node, dict):
            policy = node.get("dtype")
            if isinstance(policy, dict) and policy.get("class_name") == "DTypePolicy":
                found.add(policy["config"]["name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(config)
    return found


def classifier_sweep(make_spec, name: str, points: list[dict], reuse: bool):
    """Trials of the given configurations, in that order, one at a time."""
    spec = load_spec(make_spec({
        "name": name, "resources": {"cpu": 1, "reuse_processes": reuse},
        "search": {"algorithm": "random", "num_samples": len(points), "max_concurrent": 1, "points": points},
        "space": {"mixed_precision": {"choice": ["float16", "float32"]}, "jit_compile": {"choice": [True, False]}},
        "fixed": {"epochs": 3}}, filename=f"{name}.yaml"))
    return load_experiment(run_sweep(spec))


@pytest.fixture(scope="module")
def reused(ray_local, make_spec_module):
    """A float16 + XLA trial, then the plain configuration twice, in one process."""
    return classifier_sweep(make_spec_module, "reused", [FLOAT16_JIT, PLAIN, PLAIN], reuse=True)


@pytest.fixture(scope="module")
def fresh(ray_local, make_spec_module):
    """The plain configuration twice, each in a new process."""
    return classifier_sweep(make_spec_module, "fresh", [PLAIN, PLAIN], reuse=False)


@pytest.fixture(scope="module")
def make_spec_module(tmp_path_factory, synth_root):
    import yaml

    from tests.conftest import BASE_SPEC, deep_update
    tmp = tmp_path_factory.mktemp("warm")

    def make(changes: dict, filename: str) -> str:
        spec = deep_update(BASE_SPEC, {"data": {"root": synth_root}, "storage": str(tmp / "results")})
        path = tmp / filename
        path.write_text(yaml.safe_dump(deep_update(spec, changes)))
        return str(path)
    return make


def test_with_reuse_every_trial_runs_in_the_first_trial_s_process(reused):
    trials = trial_rows(reused)
    assert len(trials) == 3 and all(len(rows) == 3 for rows in trials)
    assert len({row["pid"] for rows in trials for row in rows}) == 1


def test_reuse_off_gives_each_trial_its_own_process(fresh):
    trials = trial_rows(fresh)
    assert len(trials) == 2
    pids = [{row["pid"] for row in rows} for rows in trials]
    assert all(len(p) == 1 for p in pids) and pids[0] != pids[1]


def test_a_trial_in_a_reused_process_trains_as_in_a_fresh_one(reused, fresh):
    first_fresh, second_fresh = trial_rows(fresh)
    assert_same_training(first_fresh, second_fresh, COMPARED["classifier"])  # the configuration is deterministic
    _, second, third = trial_rows(reused)
    assert_same_training(first_fresh, second, COMPARED["classifier"])  # after a float16 + XLA trial
    assert_same_training(first_fresh, third, COMPARED["classifier"])  # after a float32 trial


def test_float16_and_xla_do_not_leak_into_the_next_trial(reused):
    first, second, _ = trial_rows(reused)
    assert first[0]["config"]["mixed_precision"] == "float16" and first[0]["config"]["jit_compile"] is True
    assert saved_policies(reused, first) == {"mixed_float16", "float32"}  # the softmax stays float32
    assert saved_policies(reused, second) == {"float32"}


def test_a_reused_gan_trial_trains_as_in_a_fresh_process(ray_local, synth_root, tmp_path):
    """Two identical GAN trials: the first in a new process, the second in the same one."""
    spec = load_spec(gan_spec(tmp_path, synth_root, {"name": "gan-warm", "search": {
        "algorithm": "random", "num_samples": 2, "max_concurrent": 1}}))
    first, second = trial_rows(load_experiment(run_sweep(spec)))
    assert {r["pid"] for r in first} == {r["pid"] for r in second}
    assert_same_training(first, second, COMPARED["gan"])


def test_thirty_trials_keep_each_warm_process_within_its_memory_bound(ray_local, make_spec_module):
    """TensorFlow 2.21 + Keras 3.15 keep each trained model's traced step
    functions alive (measured here: 8-12 MB a trial of this model), so one
    process running 30 trials would grow by 250 MB or more. With
    ``recycle_at_growth_mb: 60`` the driver retires a process once it has
    grown 60 MB past its size after its first trial: no trial runs in a
    process more than 60 MB plus one trial's growth (bounded here by 30 MB)
    above that size, and the 30 trials need only a few processes."""
    spec = load_spec(make_spec_module({
        "name": "thirty", "search": {"algorithm": "random", "num_samples": 30, "max_concurrent": 1},
        "resources": {"recycle_at_growth_mb": 60}, "fixed": {"epochs": 1}}, filename="thirty.yaml"))
    trials = trial_rows(load_experiment(run_sweep(spec)))
    assert len(trials) == 30
    first_rss, runs = {}, {}
    for rows in trials:
        pid, rss = rows[-1]["pid"], rows[-1]["process_rss_mb"]
        first_rss.setdefault(pid, rss)
        runs[pid] = runs.get(pid, 0) + 1
        assert rss - first_rss[pid] < 60 + 30, (pid, round(first_rss[pid]), round(rss))
    assert 2 <= len(runs) <= 10 and max(runs.values()) >= 3, runs  # retired, and reused between
