"""What Ray Tune's driver made anew for every trial is made once
(search/shared_trial_parts.py), under real Ray Tune 2.60 on the embedded Ray:
one placement group factory for the trials of equal resources, and one key in
Ray's ``log_once`` set for its experiment-state encoder's fallbacks."""

from __future__ import annotations

import logging

import pytest
from ray import tune
from ray.tune.experiment.trial import Trial
from ray.tune.utils import serialization
from ray.util import debug

from scenetune.search import ray_compat
from scenetune.search.shared_trial_parts import (
    ENCODER_KEY,
    one_key_for_encoder_fallbacks,
    share_placement_group_factories,
)
from tests.search.test_ray_compat import installed_once, one_warning_line, ray_s_own

TRIALS = 4


@pytest.fixture
def ray_alone(monkeypatch):
    """Ray's own method and ``log_once`` for this test (a sweep earlier in the session patched them)."""
    monkeypatch.setattr(Trial, "create_placement_group_factory", ray_s_own(Trial.create_placement_group_factory))
    monkeypatch.setattr(serialization, "log_once", debug.log_once)


def one_epoch(config):
    tune.report({"score": config["i"]})


class KeepTrials(tune.Callback):
    def on_experiment_end(self, trials, **info):
        self.trials = list(trials)


def encoder_keys() -> set[str]:
    return {key for key in debug._logged if key.startswith(ENCODER_KEY + ":")}


@pytest.mark.slow
@pytest.mark.parametrize("patched", [False, True], ids=["ray-alone", "scenetune"])
def test_trials_share_one_factory_and_add_no_log_keys(ray_local, ray_alone, tmp_path, patched):
    if patched:
        assert share_placement_group_factories() and one_key_for_encoder_fallbacks()
    keys_before, kept = encoder_keys(), KeepTrials()
    results = tune.Tuner(tune.with_resources(one_epoch, {"cpu": 1}),
                         param_space={"i": tune.grid_search(list(range(TRIALS)))},
                         run_config=tune.RunConfig(storage_path=str(tmp_path), name="shared", verbose=0,
                                                   callbacks=[kept])).fit()
    assert not results.errors and len(kept.trials) == TRIALS
    factories = {id(trial.placement_group_factory) for trial in kept.trials}
    added = encoder_keys() - keys_before
    if patched:
        assert len(factories) == 1
        assert not added, sorted(added)[:3]
        assert kept.trials[0].placement_group_factory.required_resources == {"CPU": 1.0}
    else:  # Ray alone: a factory a trial, and keys a trial (each storage context's text)
        assert len(factories) == TRIALS
        assert len(added) >= TRIALS, sorted(added)[:3]


def test_fallbacks_are_logged_once_under_one_key(ray_alone, monkeypatch):
    monkeypatch.setattr(debug, "_logged", set())
    assert one_key_for_encoder_fallbacks()
    assert serialization.log_once(f"{ENCODER_KEY}:<object at 0x1>") is True  # the first one is logged
    assert serialization.log_once(f"{ENCODER_KEY}:<object at 0x2>") is False
    assert serialization.log_once("another key") is True  # other keys as Ray keeps them
    assert debug._logged == {ENCODER_KEY, "another key"}


def test_each_is_installed_once(ray_alone):
    installed_once(share_placement_group_factories, Trial, "create_placement_group_factory")
    installed_once(one_key_for_encoder_fallbacks, serialization, "log_once")


@pytest.mark.parametrize("missing", ["Trial.create_placement_group_factory", "log_once", "TuneFunctionEncoder"])
def test_a_part_this_ray_lacks_leaves_it_out_with_one_warning_line(ray_alone, monkeypatch, caplog, missing):
    if missing.startswith("Trial."):
        monkeypatch.delattr(Trial, "create_placement_group_factory")
        patch, before = share_placement_group_factories, lambda: getattr(Trial, "create_placement_group_factory", None)
    else:
        if missing == "log_once":
            monkeypatch.delattr(serialization, "log_once")
        else:  # an encoder whose fallbacks are keyed otherwise
            monkeypatch.setattr(serialization.TuneFunctionEncoder, "default", lambda self, obj: None)
        patch, before = one_key_for_encoder_fallbacks, lambda: getattr(serialization, "log_once", None)
    was = before()
    with caplog.at_level(logging.WARNING, logger=ray_compat.__name__):
        assert patch() is False
    one_warning_line(caplog, missing)
    assert before() is was
