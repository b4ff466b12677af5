"""Experiments with known numbers, run once per session on the embedded Ray."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.analysis.known_trials import ASHA_POINTS, TABLE1_POINTS, run_known


@pytest.fixture(scope="session")
def known_experiment(ray_local, tmp_path_factory, synth_root):
    """Seven trials of 2 epochs reporting KNOWN's values; no scheduler."""
    return run_known(str(tmp_path_factory.mktemp("known")), synth_root, "known", TABLE1_POINTS)


@pytest.fixture(scope="session")
def damaged_experiment(ray_local, tmp_path_factory, synth_root):
    """ASHA, one trial at a time: one completes, one is stopped at rung 1, one
    errors at epoch 3; then its result.json loses half of its last line and
    an empty trial folder appears."""
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


@pytest.fixture
def copy_of(tmp_path):
    """``copy_of(uri) -> path``: a private copy of a session experiment."""
    def copy(uri: str) -> str:
        target = tmp_path / os.path.basename(uri)
        shutil.copytree(uri, target)
        return str(target)
    return copy
