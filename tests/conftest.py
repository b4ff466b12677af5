"""Shared fixtures: one embedded Ray for the whole session (starting Ray
costs seconds), small synthetic datasets, and spec files written on demand."""

from __future__ import annotations

import copy
import json
import os

import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session", autouse=True)
def decode_cache_dir(tmp_path_factory):
    """Trials' decode caches (scenetune.trainables.data.cache) go to a session folder, not
    ~/.cache; set before Ray starts so its workers inherit it."""
    folder = str(tmp_path_factory.mktemp("decode_cache"))
    os.environ["SCENETUNE_CACHE"] = folder
    return folder


@pytest.fixture(scope="session")
def ray_local():
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """3 classes x 16 tiny synthetic scenes in the mit67 layout."""
    from scenetune.trainables.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("synth")
    write_synthetic(str(root), classes=3, per_class=16, size=40, seed=0)
    return str(root)


BASE_SPEC = {
    "name": "t",
    "trainable": "classifier",
    "data": {"dataset": "mit67", "root": None, "split": {"train": 0.5, "val": 0.25, "test": 0.25, "seed": 1}},
    "metric": "val_accuracy",
    "mode": "max",
    "search": {"algorithm": "optuna", "num_samples": 1, "max_concurrent": 2, "seed": 0},
    "scheduler": {"name": "none"},
    "resources": {"cpu": 1},
    "failure": {"max_failures": 0},
    "checkpoint": {"num_to_keep": 1},
    "space": {},
    "fixed": {"backbone": "basic_cnn", "weights": "none", "image_size": 32, "epochs": 2, "batch_size": 8,
              "dense_units": 16, "cnn_blocks": 2, "cnn_filters": 8},
}


def deep_update(base: dict, changes: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


def sweep_of(tmp, synth_root: str, sweep: dict) -> str:
    """Run `scenetune sweep` on BASE_SPEC updated by ``sweep`` (data: the
    synthetic root, storage: ``tmp``); returns the spec file's path."""
    from scenetune.cli import main

    spec = deep_update(deep_update(BASE_SPEC, {"data": {"root": synth_root}, "storage": str(tmp)}), sweep)
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(path)]) == 0
    return str(path)


@pytest.fixture
def make_spec(tmp_path, synth_root):
    """``make_spec(**changes) -> path`` of a spec YAML: BASE_SPEC on the
    synthetic data, stored under this test's tmp_path, with ``changes``
    merged in (a value of None removes the key)."""
    def make(changes: dict | None = None, filename: str = "spec.yaml") -> str:
        spec = deep_update(BASE_SPEC, {"data": {"root": synth_root}, "storage": str(tmp_path / "results")})
        spec = deep_update(spec, changes or {})
        path = tmp_path / filename
        path.write_text(yaml.safe_dump(spec))
        return str(path)
    return make


@pytest.fixture(scope="session")
def s3():
    """A real S3 API on loopback: moto's server, with a bucket. Yields
    ``(bucket_uri, env)``: ``env`` points boto3, pyarrow (``AWS_ENDPOINT_URL``)
    and Ray Tune's storage at it; this process gets it too, and so do
    processes (drivers, Ray nodes) started with it. One server per session:
    every S3 test talks to the same endpoint."""
    import logging
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    boto3.client("s3").create_bucket(Bucket="scenetune-test")
    yield "s3://scenetune-test", env
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def moto_s3(s3):
    """``upload(local_dir, "bucket/prefix") -> "s3://bucket/prefix"`` into the
    session's S3 server (the bucket is made on first use)."""
    import boto3
    import pyarrow.fs as pafs

    buckets = set()

    def upload(local_dir: str, target: str) -> str:
        bucket = target.split("/")[0]
        if bucket not in buckets:
            boto3.client("s3").create_bucket(Bucket=bucket)
            buckets.add(bucket)
        fs, _ = pafs.FileSystem.from_uri(f"s3://{target}")
        pafs.copy_files(local_dir, target, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
        return f"s3://{target}"

    return upload


# Experiments with known numbers (tests/analysis/known_trials.py), run once per
# session on the embedded Ray, for the analysis, CLI and fuzz tests.
@pytest.fixture(scope="session")
def known_experiment(ray_local, tmp_path_factory, synth_root):
    """Seven trials of 2 epochs reporting KNOWN's values; no scheduler."""
    from tests.analysis.known_trials import TABLE1_POINTS, run_known

    return run_known(str(tmp_path_factory.mktemp("known")), synth_root, "known", TABLE1_POINTS)


@pytest.fixture(scope="session")
def damaged_experiment(ray_local, tmp_path_factory, synth_root):
    """ASHA, one trial at a time: one completes, one is stopped at rung 1, one
    errors at epoch 3; then its result.json loses half of its last line and
    an empty trial folder appears."""
    from tests.analysis.known_trials import ASHA_POINTS, run_known

    uri = run_known(str(tmp_path_factory.mktemp("damaged")), synth_root, "damaged", ASHA_POINTS, {
        "search": {"max_concurrent": 1},
        "scheduler": {"name": "asha", "max_t": 4, "grace_period": 1, "reduction_factor": 2, "brackets": 1,
                      "metric": "val_accuracy", "mode": "max"},
        "fixed": {"epochs": 4}})
    errored = next(name for name in os.listdir(uri) if os.path.isfile(os.path.join(uri, name, "params.json"))
                   and json.load(open(os.path.join(uri, name, "params.json")))["seed"] == 12)
    result = os.path.join(uri, errored, "result.json")
    text = open(result).read()
    cut = text.rstrip("\n").rfind("\n") + 1 + 40  # keep 40 characters of the last line
    with open(result, "w") as f:
        f.write(text[:cut])
    os.mkdir(os.path.join(uri, "train_known_empty_00000"))
    return uri
