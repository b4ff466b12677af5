"""The soak's short version (benchmarks/soak.py runs 200 trials): a sweep of
24 trials on two worker nodes loses a node (a fresh one takes its place)
and its driver (SIGKILL, then ``--resume``), and still ends every trial,
with each epoch once and ``scenetune best`` on the highest val_accuracy.
The checks are in soak_checks.py, shared with the benchmark."""

from __future__ import annotations

import os
import pathlib
import shutil
import warnings

import pytest
import yaml

from scenetune.analysis import load_experiment
from tests.cluster.soak_checks import Soak, check_experiment, soak_spec

pytestmark = pytest.mark.slow

TRIALS, EPOCHS, WORKERS = 24, 2, 2


def test_a_sweep_that_loses_a_node_and_its_driver_ends_every_trial_with_each_epoch_once(
        cluster, tmp_path, synth_root):
    cluster.ensure_workers(WORKERS)
    spec = soak_spec("soak", str(tmp_path / "shared"), synth_root, TRIALS, EPOCHS, WORKERS)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    experiment = str(tmp_path / "shared" / "soak")
    soak = Soak(cluster, str(spec_path), experiment, TRIALS, str(tmp_path),
                plan=[("node", 0.3), ("driver", 0.6)], timeout=600)
    soak.run()

    assert [f.kind for f in soak.faults] == ["node", "driver"], "the sweep ended before the faults"
    assert soak.exits == [-9, 0], soak.drivers[-1][1].tail()
    verdict = check_experiment(experiment, TRIALS, soak.faults)
    assert verdict.problems == [], "\n".join(verdict.problems)
    assert verdict.trials == TRIALS and not verdict.lost and not verdict.missing
    assert set(verdict.best) == {"last", "all"}

    # The checks are not vacuous: on a copy of the experiment, an epoch run
    # again (no fault to explain it), the first epoch lost from both logs, and
    # one lost from result.json alone (progress.csv has it) are each caught.
    damaged = str(tmp_path / "damaged")
    shutil.copytree(experiment, damaged)
    again, lost, half = (os.path.join(damaged, name) for name in trial_dirs_by_status(damaged, "completed")[:3])
    rows = lines_of(again, "result.json")
    write_lines(again, "result.json", [*rows, rows[0]])
    write_lines(lost, "result.json", lines_of(lost, "result.json")[1:])
    header, _, *later = lines_of(lost, "progress.csv")
    write_lines(lost, "progress.csv", [header, *later])
    write_lines(half, "result.json", lines_of(half, "result.json")[1:])
    verdict = check_experiment(damaged, TRIALS, faults=[])
    name = os.path.basename
    assert any(name(again) in p and "ran again with no fault" in p for p in verdict.problems), verdict.problems
    assert any(name(lost) in m for m in verdict.missing), verdict.missing
    assert any(name(half) in g for g in verdict.json_gaps) and not any(name(half) in m for m in verdict.missing)


def trial_dirs_by_status(experiment: str, status: str) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trials = load_experiment(experiment).trials
    return sorted(trials.loc[trials["status"] == status, "trial_dir"])


def lines_of(trial: str, log: str) -> list[str]:
    return pathlib.Path(trial, log).read_text().splitlines()


def write_lines(trial: str, log: str, lines: list[str]) -> None:
    pathlib.Path(trial, log).write_text("".join(line + "\n" for line in lines))
