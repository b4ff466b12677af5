"""The search benchmark's early-stopping floor, on curves small enough to work out by hand."""

import importlib.util
import os

import pytest

from scenetune.commands.replay import Recording

BENCHMARK = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "search_efficiency.py")


def benchmark():
    spec = importlib.util.spec_from_file_location("search_efficiency", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def recording(curves):
    return Recording(params={}, metric="val_accuracy", mode="max", configs=None, curves=curves,
                     scheduler={"grace_period": 1})


def test_floor_charges_the_first_rung_of_every_trial_that_never_reaches_the_target():
    # "good" reaches the target (0.90 - 0.01) at its 2nd epoch, after 1 + 1 s;
    # "bad" never does: 4 s in full, 3 s of them in its first epoch.
    # Good first: both ways cost 2 s. Bad first: 4 + 2 = 6 s without early
    # stopping, 3 + 2 = 5 s with the oracle. Mean 4 against 3.5.
    rec = recording({"good": [(0.5, 1.0), (0.9, 1.0)], "bad": [(0.4, 3.0), (0.5, 1.0)]})
    assert benchmark().early_stopping_floor(rec, 0.01, grace=1) == pytest.approx(3.5 / 4)


def test_floor_is_one_when_the_first_rung_is_the_whole_trial():
    rec = recording({"good": [(0.5, 1.0), (0.9, 1.0)], "bad": [(0.4, 3.0), (0.5, 1.0)]})
    assert benchmark().early_stopping_floor(rec, 0.01, grace=2) == pytest.approx(1.0)
