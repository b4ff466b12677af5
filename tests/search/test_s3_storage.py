"""Durable storage on S3: sweeps write there, ``best`` and
``load_experiment`` read from there, a second start of the same name is
refused, and ``--resume`` finishes a sweep whose driver died, from another
working directory with nothing local. Against moto's S3 server on loopback
(the ``s3`` fixture); drivers are ``scenetune`` processes given the
endpoint in their environment, as a user's shell would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import boto3
import pytest
import yaml

from scenetune.analysis import load_experiment
from scenetune.cli import main
from scenetune.core import storage

pytestmark = pytest.mark.slow

SCENETUNE = os.path.join(os.path.dirname(sys.executable), "scenetune")


def objects(prefix: str) -> dict[str, str]:
    """key -> ETag of everything under ``prefix`` in the test bucket."""
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket="scenetune-test", Prefix=prefix)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def sweep(spec: str, env: dict, *extra: str, cwd: str | None = None, **kwargs):
    return subprocess.Popen([SCENETUNE, "sweep", spec, *extra], env={**os.environ, **env}, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_a_sweep_on_s3_is_read_back_from_s3_and_its_name_is_not_reused(s3, make_spec, tmp_path, capsys):
    bucket, env = s3
    spec = make_spec({"name": "on-s3", "storage": f"{bucket}/runs", "search": {"num_samples": 2},
                      "space": {"learning_rate": {"loguniform": [1.0e-4, 3.0e-3]}}})
    run = sweep(spec, env, cwd=str(tmp_path))
    out, _ = run.communicate(timeout=600)
    assert run.returncode == 0, out[-3000:]
    assert "experiment: s3://scenetune-test/runs/on-s3" in out

    keys = objects("runs/on-s3/")
    names = {key.split("/", 2)[2] for key in keys}
    assert {"split.csv", "scenetune_spec.yaml", "tuner.pkl"} <= names
    assert any(n.startswith("experiment_state-") for n in names)
    assert any(n.startswith("searcher-state-") for n in names), "Optuna's state is stored for --resume"
    for suffix in ("/result.json", "/params.json", "/val_predictions.csv", "/checkpoint_000001/model.keras"):
        assert sum(n.endswith(suffix) for n in names) == 2, suffix
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists(), "nothing written locally"

    uri = f"{bucket}/runs/on-s3"
    exp = load_experiment(uri)
    assert len(exp.trials) == 2 and set(exp.trials["status"]) == {"completed"}
    assert sorted(exp.epochs["epoch"]) == [1, 1, 2, 2]
    assert main(["best", uri, "--format", "json"]) == 0
    best = json.loads(capsys.readouterr().out)["best"][0]
    assert best["status"] == "completed" and best["val_accuracy"] == exp.trials["last_val_accuracy"].max()

    again = sweep(spec, env, cwd=str(tmp_path))
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 2
    assert out.strip().splitlines()[-1] == (f"scenetune: error: name: experiment 'on-s3' already exists at {uri}; "
                                            "pass --resume to continue it, or choose another name")
    assert objects("runs/on-s3/") == keys, "nothing overwritten"


def test_resume_from_s3_finishes_a_sweep_whose_driver_was_killed(s3, make_spec, tmp_path):
    bucket, env = s3
    uri = f"{bucket}/runs/resumed"
    # Every checkpoint kept: Ray deletes the oldest one when a newer registers but
    # uploads its experiment state only every few seconds, so a driver killed in
    # between leaves a state naming a deleted checkpoint (README, "Resuming").
    spec = make_spec({"name": "resumed", "storage": f"{bucket}/runs", "checkpoint": {"num_to_keep": 4},
                      "search": {"num_samples": 2, "max_concurrent": 1}, "failure": {"max_failures": 1},
                      "space": {"learning_rate": {"loguniform": [1.0e-4, 3.0e-3]}}, "fixed": {"epochs": 4}})
    first = sweep(spec, env, cwd=str(tmp_path))

    def reported_epochs():
        keys = [k for k in objects("runs/resumed/") if k.endswith("/result.json")]
        return max((len(storage.read_text(f"{bucket}/{k}").splitlines()) for k in keys), default=0)

    deadline = time.monotonic() + 400
    while reported_epochs() < 1:  # the driver has stored a first epoch on S3
        assert first.poll() is None, first.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "no epoch reported to S3"
        time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    before = load_experiment(uri)
    assert set(before.trials["status"]) != {"completed"} or len(before.trials) < 2, "killed mid-sweep"

    # Another "machine": another working directory, and a spec file that only
    # names the experiment; the stored spec supplies everything else.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    minimal = yaml.safe_load(open(spec))
    minimal["search"]["num_samples"] = 9  # ignored: the experiment's own settings win
    (elsewhere / "spec.yaml").write_text(yaml.safe_dump(minimal))
    resumed = sweep(str(elsewhere / "spec.yaml"), env, "--resume", cwd=str(elsewhere))
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-3000:]

    exp = load_experiment(uri)
    assert len(exp.trials) == 2 and set(exp.trials["status"]) == {"completed"}, exp.trials[["status", "epochs", "failures", "error"]].to_string()
    for trial_id, epochs in exp.epochs.groupby("trial_id")["epoch"]:
        assert list(epochs) == [1, 2, 3, 4], f"{trial_id}: epochs continue across the resume: {list(epochs)}"
    assert os.listdir(elsewhere) == ["spec.yaml"], "nothing written locally"


def test_resume_of_an_experiment_missing_on_s3_is_bad_input(s3, make_spec, capsys):
    bucket, _ = s3
    spec = make_spec({"name": "never-ran", "storage": f"{bucket}/runs"})
    assert main(["sweep", spec, "--resume"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"scenetune: error: --resume: experiment 'never-ran' at {bucket}/runs/never-ran does not exist")
