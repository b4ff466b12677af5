"""Reading real Ray Tune experiment directories: ASHA's rungs, statuses,
wall time, and damaged inputs that warn instead of crashing."""

import pytest

from scenetune.analysis import load_experiment

pytestmark = pytest.mark.slow


def test_known_experiment_reads_every_trial_and_epoch(known_experiment):
    exp = load_experiment(known_experiment)
    assert exp.warnings == []
    assert len(exp.trials) == 7 and (exp.trials["status"] == "completed").all()
    assert len(exp.epochs) == 14
    by_config = exp.trials.set_index(["config/backbone", "config/image_size", "config/seed"])
    assert by_config.loc[("mobilenet_v2", 224, 0), "train_time_s"] == 746.0
    assert by_config.loc[("mobilenet_v2", 50, 1), "last_val_accuracy"] == 0.40
    assert (exp.trials["wall_time_s"] > 0).all()  # from the experiment state: first start to last result
    assert (exp.trials["wall_time_s"] >= exp.trials["time_total_s"] - 1).all()


def test_damaged_experiment_statuses_rungs_and_warnings(damaged_experiment):
    with pytest.warns(UserWarning) as caught:
        exp = load_experiment(damaged_experiment)
    messages = [str(w.message) for w in caught]
    assert any("result.json: line 2 is not valid JSON (truncated?)" in m for m in messages), messages
    assert any("train_known_empty_00000: empty trial directory; skipped" in m for m in messages), messages
    assert exp.rungs == [1, 2, 4]
    trials = exp.trials.set_index("config/seed")
    assert trials.loc[10, "status"] == "completed" and trials.loc[10, "epochs"] == 4
    assert trials.loc[11, "status"] == "stopped" and trials.loc[11, "stopped_at_rung"] == 1
    assert trials.loc[11, "planned_epochs"] == 4
    assert trials.loc[12, "status"] == "errored" and trials.loc[12, "epochs"] == 1  # one line lost to the cut
    assert "known failure at epoch 3" in trials.loc[12, "error"]
    assert list(exp.errored["trial_id"]) == [trials.loc[12, "trial_id"]]


def test_rows_missing_from_result_json_are_taken_from_progress_csv(known_experiment, tmp_path):
    """A retried trial's result.json can come back as an older copy with a gap;
    progress.csv still has every epoch."""
    import os
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(known_experiment, copy)
    trial = sorted(d for d in os.listdir(copy) if (copy / d / "result.json").exists())[0]
    result = copy / trial / "result.json"
    lines = result.read_text().splitlines()
    result.write_text("\n".join(lines[1:]) + "\n")  # epoch 1 lost
    with pytest.warns(UserWarning, match=r"epochs \[1\] missing; taken from progress.csv"):
        exp = load_experiment(str(copy))
    rows = exp.epochs[exp.epochs["trial_id"] == exp.trials.set_index("trial_dir").loc[trial, "trial_id"]]
    assert list(rows.sort_values("training_iteration")["training_iteration"]) == [1, 2]
    assert (exp.trials["epochs"] == 2).all()


def test_a_trial_read_from_progress_csv_keeps_a_hex_id_that_looks_like_a_number(known_experiment, tmp_path):
    import os
    import shutil

    import pandas as pd

    copy = tmp_path / "copy"
    shutil.copytree(known_experiment, copy)
    trial = sorted(d for d in os.listdir(copy) if (copy / d / "progress.csv").exists())[0]
    progress = pd.read_csv(copy / trial / "progress.csv", dtype={"trial_id": str})
    progress["trial_id"] = "1e123456"  # Ray's ids are 8 hex digits; read as a number this is infinity
    progress.to_csv(copy / trial / "progress.csv", index=False)
    (copy / trial / "result.json").unlink()
    with pytest.warns(UserWarning, match="result.json: missing; read progress.csv instead"):
        exp = load_experiment(str(copy))
    assert exp.trials.set_index("trial_dir").loc[trial, "trial_id"] == "1e123456"


def test_an_epoch_run_again_after_a_restore_counts_once_with_its_later_run(known_experiment, tmp_path):
    """A resumed driver restarts a running trial from the checkpoint in its
    last saved state: an epoch reported after that state was saved runs again
    and is appended to result.json a second time."""
    import json
    import os
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(known_experiment, copy)
    trial = sorted(d for d in os.listdir(copy) if (copy / d / "result.json").exists())[0]
    result = copy / trial / "result.json"
    lines = result.read_text().splitlines()
    rerun = json.loads(lines[-1])
    rerun["val_accuracy"] = 0.123  # the run the trial went on from
    result.write_text("\n".join(lines + [json.dumps(rerun)]) + "\n")
    with pytest.warns(UserWarning, match=r"epochs \[2\] reported twice \(run again after a restore\); kept the later"):
        exp = load_experiment(str(copy))
    trial_id = exp.trials.set_index("trial_dir").loc[trial, "trial_id"]
    rows = exp.epochs[exp.epochs["trial_id"] == trial_id]
    assert list(rows["training_iteration"]) == [1, 2]
    assert rows["val_accuracy"].iloc[-1] == 0.123
    assert (exp.trials["epochs"] == 2).all()
    assert exp.trials.set_index("trial_id").loc[trial_id, "last_val_accuracy"] == 0.123


def test_a_trial_caught_writing_its_params_json_is_read_from_its_results_or_skipped(known_experiment, tmp_path):
    """A live experiment: Ray creates params.json as a trial starts, so a reader
    (`scenetune best` during a sweep) can find it empty."""
    import os
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(known_experiment, copy)
    trials = sorted(d for d in os.listdir(copy) if (copy / d / "result.json").exists())
    (copy / trials[0] / "params.json").write_text("")  # results carry the config
    starting = copy / trials[1]
    (starting / "params.json").write_text('{"backbone": "mobil')  # no results yet: nothing to read
    (starting / "result.json").write_text("")
    os.remove(starting / "progress.csv")
    with pytest.warns(UserWarning) as caught:
        exp = load_experiment(str(copy))
    messages = [str(w.message) for w in caught]
    assert any(f"{trials[0]}/params.json: not valid JSON" in m for m in messages), messages
    assert any(f"{trials[1]}: no readable config or result yet" in m for m in messages), messages
    assert len(exp.trials) == len(trials) - 1 and trials[1] not in set(exp.trials["trial_dir"])
    read = exp.trials.set_index("trial_dir").loc[trials[0]]
    assert read["config/backbone"] == exp.configs[read["trial_id"]]["backbone"] != ""


def test_a_trial_folder_missing_from_ray_s_saved_state_is_left_out_with_a_note(known_experiment, tmp_path):
    """A trial started after Ray Tune's last state save, then its driver killed:
    --resume does not continue it, so the experiment does not count it."""
    import json
    import os
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(known_experiment, copy)
    trial = sorted(d for d in os.listdir(copy) if (copy / d / "result.json").exists())[0]
    shutil.copytree(copy / trial, copy / "train_known_0badf00d")
    rows = [json.loads(line) for line in (copy / trial / "result.json").read_text().splitlines() if line.strip()]
    (copy / "train_known_0badf00d" / "result.json").write_text(
        "".join(json.dumps({**row, "trial_id": "0badf00d"}) + "\n" for row in rows))
    with pytest.warns(UserWarning, match="train_known_0badf00d: not in Ray Tune's saved state"):
        exp = load_experiment(str(copy))
    assert len(exp.trials) == 7 and "0badf00d" not in set(exp.trials["trial_id"])
    assert "0badf00d" not in set(exp.epochs["trial_id"])
