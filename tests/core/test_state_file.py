"""Ray Tune's experiment-state file read one trial at a time (core/state_file.py):
the same entries as ``json.load``, whatever the chunk boundaries cut, and a
ValueError for a file that is not such JSON."""

from __future__ import annotations

import json

import pytest

from scenetune.core.state_file import trial_data

STATES = {
    "Ray's order": {"trial_data": [['{"trial_id": "a", "status": "TERMINATED"}', '{"start_time": 1.5}'],
                                   ['{"trial_id": "b", "note": "caf\u00e9 \u2603 \\" ]"}', "{}"]],
                    "runner_data": {"_iteration": 12}, "stats": {"start_time": 1.0}},
    "other keys first": {"runner_data": {"nested": [1, 2.5, {"k": [None, True]}]}, "n": 1234567,
                         "trial_data": [["x", "y"]], "after": 1},
    "no trials": {"trial_data": []},
}


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("name", list(STATES))
def test_entries_are_json_s_whatever_the_chunks(tmp_path, name, chunk):
    path = tmp_path / "experiment_state.json"
    path.write_text(json.dumps(STATES[name], ensure_ascii=False, indent=1 if chunk == 3 else None), encoding="utf-8")
    assert list(trial_data(str(path), chunk)) == STATES[name]["trial_data"]


def test_it_reads_one_entry_at_a_time(tmp_path):
    path = tmp_path / "experiment_state.json"
    path.write_text(json.dumps({"trial_data": [["a", "b"], ["c", "d"]]})[:-3] + "!!!")  # damaged after the first
    entries = trial_data(str(path), 4)
    assert next(entries) == ["a", "b"]
    with pytest.raises(ValueError):
        next(entries)


@pytest.mark.parametrize("text", ["", "{}", "[1]", '{"runner_data": 1}', '{"trial_data": 5}',
                                  '{"trial_data": [["a", "b"]', '{"trial_data": [["a" "b"]]}', '{"trial_data" 1}',
                                  "\u00e9t\u00e9"])
def test_what_is_not_an_experiment_state_is_a_value_error(tmp_path, text):
    path = tmp_path / "experiment_state.json"
    path.write_text(text, encoding="utf-8")
    for chunk in (1, 5, 1 << 20):
        with pytest.raises(ValueError, match="experiment_state.json"):
            list(trial_data(str(path), chunk))
