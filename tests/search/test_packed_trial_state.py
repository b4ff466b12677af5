"""An ended trial's saved state is kept compressed in the driver, and the
experiment-state snapshot writes what Ray Tune writes (search/packed_trial_state.py),
under real Ray Tune 2.60 on the embedded Ray."""

from __future__ import annotations

import copy
import glob
import io
import json
import logging
import pickle

import pytest
from ray import tune
from ray.tune.experiment.trial import Trial
from ray.tune.trainable import metadata as ray_metadata
from ray.tune.trainable.metadata import _TrainingRunMetadata

from scenetune.search import ray_compat
from scenetune.search.packed_trial_state import PackedJson, pack_ended_trial_state
from tests.search.test_ray_compat import installed_once, one_warning_line, ray_s_own

TRIALS, FAILING = 4, 3


@pytest.fixture
def ray_alone(monkeypatch):
    """Ray's own ``Trial.get_json_state`` for this test (a sweep earlier in the session patched it)."""
    monkeypatch.setattr(Trial, "get_json_state", ray_s_own(Trial.get_json_state))


def two_epochs(config):
    for epoch in range(2):
        tune.report({"score": config["i"] * 10 + epoch})
    if config["i"] == FAILING:
        raise ValueError("this trial fails after its results")


class KeepTrials(tune.Callback):
    def on_experiment_end(self, trials, **info):
        self.trials = list(trials)


def packed_size(packed: PackedJson) -> int:
    return sum(len(item) for item in tuple.__iter__(packed))


@pytest.fixture
def swept(ray_local, ray_alone, tmp_path):
    """A sweep of 4 trials, one of them errored, with the packing in place: its
    trials as the driver holds them at the end, and its experiment-state file."""
    assert pack_ended_trial_state()
    kept = KeepTrials()
    tune.Tuner(two_epochs, param_space={"i": tune.grid_search(list(range(TRIALS)))},
               run_config=tune.RunConfig(storage_path=str(tmp_path), name="packed", verbose=0,
                                         callbacks=[kept])).fit()
    (state_file,) = glob.glob(str(tmp_path / "packed" / "experiment_state-*.json"))
    with open(state_file) as f:
        return {t.trial_id: t for t in kept.trials}, json.load(f)


@pytest.mark.slow
def test_ended_trials_are_held_packed_and_unpack_to_ray_s_own_json(swept):
    trials, _ = swept
    assert sorted(t.status for t in trials.values()) == ["ERROR"] + ["TERMINATED"] * (TRIALS - 1)
    for trial in trials.values():
        packed = trial.__dict__["_state_json"]
        assert isinstance(packed, PackedJson), trial.status  # the final snapshot packed it
        assert trial.run_metadata.__dict__["_cached_json"] is packed
        assert trial.get_json_state() is packed  # no second serialisation while nothing changes
        trial.invalidate_json_state()
        trial.run_metadata.invalidate_cache()
        own = ray_s_own(Trial.get_json_state)(trial)
        assert tuple(packed) == own
        assert packed_size(packed) < 0.6 * sum(map(len, own)), (packed_size(packed), sum(map(len, own)))


@pytest.mark.slow
def test_the_snapshot_file_holds_each_trial_s_state_as_ray_writes_it(swept):
    trials, state = swept
    assert len(state["trial_data"]) == TRIALS
    for trial_json, metadata_json in state["trial_data"]:
        assert isinstance(trial_json, str) and isinstance(metadata_json, str)
        saved = Trial.from_json_state(trial_json, stub=True)
        trial = trials[saved.trial_id]
        assert saved.status == trial.status and saved.config == trial.config
        last = _TrainingRunMetadata.from_json_state(metadata_json).last_result
        assert last["score"] == trial.config["i"] * 10 + 1


@pytest.mark.slow
def test_a_packed_trial_that_changes_is_serialised_afresh(swept):
    trials, _ = swept
    trial = next(t for t in trials.values() if t.status == "TERMINATED")
    trial.run_metadata.last_result = {**trial.run_metadata.last_result, "score": -1}
    packed = trial.get_json_state()
    assert isinstance(packed, PackedJson)
    assert json.loads(tuple(packed)[1])["last_result"]["score"] == -1
    trial.set_status(Trial.PENDING)  # run again (a retry, a resume): Ray's own cache, unpacked
    state_json, metadata_json = pair = trial.get_json_state()
    assert not isinstance(pair, PackedJson) and isinstance(trial.__dict__["_state_json"], str)
    assert json.loads(state_json)["status"] == Trial.PENDING
    assert json.loads(metadata_json)["last_result"]["score"] == -1


@pytest.mark.slow
def test_a_copy_of_an_ended_trial_is_serialised_afresh(swept):
    trials, _ = swept
    trial = next(t for t in trials.values() if t.status == "TERMINATED")
    copied = copy.deepcopy(trial)  # Trial.__getstate__ drops the state's cache; its run metadata keeps a copy
    assert isinstance(copied.run_metadata.__dict__["_cached_json"], PackedJson)
    state_json, metadata_json = copied.get_json_state()
    assert json.loads(metadata_json) == json.loads(tuple(trial.get_json_state())[1])
    assert json.loads(state_json)["trial_id"] == trial.trial_id


def test_a_packed_pair_pickles_and_copies_as_one():
    packed = PackedJson(('{"a": 1}', '{"b": [2, 3]}'))
    assert tuple(packed) == ('{"a": 1}', '{"b": [2, 3]}')
    assert all(isinstance(item, bytes) for item in tuple.__iter__(packed))
    for copied in (pickle.loads(pickle.dumps(packed)), copy.deepcopy(packed), copy.copy(packed)):
        assert type(copied) is PackedJson and tuple(copied) == ('{"a": 1}', '{"b": [2, 3]}')
    written = io.StringIO()
    json.dump({"trial_data": [packed]}, written)  # as Ray's snapshot writes it: json.dump iterates the tuple
    assert json.loads(written.getvalue()) == {"trial_data": [['{"a": 1}', '{"b": [2, 3]}']]}


def test_it_is_installed_once_on_ray_s_trial(ray_alone):
    installed_once(pack_ended_trial_state, Trial, "get_json_state")


@pytest.mark.parametrize("missing", ["Trial.get_json_state", "Trial._state_json", "_TrainingRunMetadata"])
def test_a_part_this_ray_lacks_leaves_it_out_with_one_warning_line(ray_alone, monkeypatch, caplog, missing):
    if missing == "Trial.get_json_state":
        monkeypatch.delattr(Trial, "get_json_state")
    elif missing == "Trial._state_json":  # a cache the wrapper reads, set in Trial.__init__
        monkeypatch.setattr(Trial, "__init__", lambda self: None)
    else:
        monkeypatch.delattr(ray_metadata, "_TrainingRunMetadata")
    before = getattr(Trial, "get_json_state", None)
    with caplog.at_level(logging.WARNING, logger=ray_compat.__name__):
        assert pack_ended_trial_state() is False
    one_warning_line(caplog, missing)
    assert getattr(Trial, "get_json_state", None) is before
