"""The Ray Client road (``scenetune sweep SPEC --address ray://HOST:PORT``) on
a real multi-node cluster on this machine (a head started with ``ray start
--head`` and its client server, token authentication as Ray 2.60 sets it up,
two worker nodes of 1 CPU): a finished sweep exits 0 as quietly as an
embedded one, its trials on both nodes, ``best`` reads it from outside; a
Ctrl-C stops it with the resume command, and the resume finishes it; an
address that does not answer, or refuses the token, is one line and exit
status 2 within seconds, with nothing written."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import time

import pytest

from scenetune.analysis import load_experiment
from tests.cli.test_cli import NOISE
from tests.cluster.conftest import SCENETUNE, wait_until
from tests.cluster.raycluster import free_port

pytestmark = pytest.mark.slow

TWO_TRIALS = {"search": {"num_samples": 2, "max_concurrent": 2}}


def client_env(cluster, **changes) -> dict:
    """The user's environment: the token in ~/.ray/auth_token (the cluster's),
    and no RAY_AUTH_MODE, which Ray Client alone would need."""
    env = {key: value for key, value in cluster.env.items() if key != "RAY_AUTH_MODE"}
    return {**env, **changes}


def sweep(spec: str, address: str, env: dict, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([SCENETUNE, "sweep", spec, "--address", address, *extra], capture_output=True,
                          text=True, env=env, timeout=timeout)


def nodes_of(experiment: str) -> set[str]:
    ips = set()
    for path in glob.glob(os.path.join(experiment, "*", "result.json")):
        with open(path) as f:
            ips |= {json.loads(line)["node_ip"] for line in f if line.strip()}
    return ips


def test_a_sweep_through_ray_client_finishes_quietly_on_two_nodes(cluster, make_spec, tmp_path):
    cluster.ensure_workers(2)
    spec = make_spec({"name": "client", **TWO_TRIALS})
    run = sweep(spec, cluster.client_address, client_env(cluster))
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "interrupted" not in out
    assert {what for what, text in NOISE.items() if text in out} == set(), out
    assert len(out.splitlines()) <= 40, out
    assert "trials: 2 completed" in out
    experiment = str(tmp_path / "results" / "client")
    assert len(nodes_of(experiment)) == 2, "one trial on each worker node (the head has no CPU)"
    best = subprocess.run([SCENETUNE, "best", experiment], capture_output=True, text=True, timeout=120)
    assert best.returncode == 0 and "completed" in best.stdout, best.stdout + best.stderr
    timings = json.load(open(os.path.join(experiment, "sweep_timings.json")))["runs"][0]
    assert timings["ray_start_s"] > 0 and timings["trials_s"] > 0, "the clock ran on the head, with the client's start"


def test_ctrl_c_through_ray_client_saves_and_the_resume_finishes(cluster, make_spec, tmp_path):
    cluster.ensure_workers(2)
    spec = make_spec({"name": "client-stop", "search": {"num_samples": 4, "max_concurrent": 2},
                      "checkpoint": {"num_to_keep": 2}, "fixed": {"epochs": 6}})
    experiment = str(tmp_path / "results" / "client-stop")
    log = open(tmp_path / "driver.log", "w+")
    driver = subprocess.Popen([SCENETUNE, "sweep", spec, "--address", cluster.client_address], stdout=log,
                              stderr=subprocess.STDOUT, env=client_env(cluster))

    def a_result():
        return any(os.path.getsize(p) for p in glob.glob(os.path.join(experiment, "*", "result.json")))
    wait_until(a_result, 300, "a trial's first epoch")
    driver.send_signal(signal.SIGINT)
    assert driver.wait(120) == 130
    log.seek(0)
    out = log.read()
    assert f"scenetune sweep {spec} --name client-stop --address {cluster.client_address} --resume" in out, out
    assert len(out.splitlines()) <= 40 and "SIGTERM handler" not in out, out
    stopped = load_experiment(experiment)
    assert (stopped.trials["status"] == "completed").sum() < 4, "stopped at the first epochs, not finished"
    resumed = sweep(spec, cluster.client_address, client_env(cluster), "--name", "client-stop", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    exp = load_experiment(experiment)
    assert len(exp.trials) == 4 and set(exp.trials["status"]) <= {"completed"}, exp.trials
    epochs = exp.epochs.groupby("trial_id")["training_iteration"].apply(list)
    assert all(seen == list(range(1, 7)) for seen in epochs), epochs  # none missing (one run after its last checkpoint again, counted once)


def test_nothing_listening_is_one_line_and_exit_2_at_once(cluster, make_spec, tmp_path):
    spec = make_spec({"name": "nowhere"})
    started = time.monotonic()
    run = sweep(spec, f"ray://127.0.0.1:{free_port()}", client_env(cluster), timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.strip().count("\n") == 0 and "nothing answers at 127.0.0.1" in run.stderr, run.stderr
    assert time.monotonic() - started < 10
    assert not os.path.exists(tmp_path / "results" / "nowhere"), "nothing written before the cluster answers"


@pytest.mark.parametrize("token", ["wrong", None], ids=["a wrong token", "no token"])
def test_a_refused_token_is_one_line_and_exit_2_within_10_s(cluster, make_spec, tmp_path, token):
    spec = make_spec({"name": "refused"})
    home = tmp_path / "home"  # a user with no ~/.ray/auth_token
    home.mkdir()
    env = client_env(cluster, HOME=str(home), **({"RAY_AUTH_TOKEN": token} if token else {}))
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    if token is None:
        env.pop("RAY_AUTH_TOKEN", None)
    started = time.monotonic()
    run = sweep(spec, cluster.client_address, env, timeout=60)
    elapsed = time.monotonic() - started
    assert run.returncode == 2, run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("scenetune: error: --address ray://"), run.stderr
    assert "token" in lines[0]
    assert elapsed < 10, f"{elapsed:.1f} s"  # Ray's own: 30 s, then a traceback
    assert not os.path.exists(tmp_path / "results" / "refused"), "nothing written before the cluster answers"
