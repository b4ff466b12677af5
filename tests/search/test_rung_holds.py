"""ASHA's first trials at a rung are held, not waved through (issue 23).

Ray's ASHA judges a trial when it reaches a rung, against the results the
rung holds so far: the first trial there is compared with nothing and
passes, all the way to ``max_t``. Under the defaults (``scheduler.quorum``:
the reduction factor) a trial that reaches a rung before it holds that many
results is paused at its checkpoint, then stopped or resumed once they are
in, as the curves say. Real Ray Tune, trials with known curves
(tests/known_curves.py), one at a time (each takes both CPUs), in a known order.
"""

import json
import os

import pytest
from ray import tune

from scenetune.search.ray_compat import keep_the_drivers_trial_logs
from scenetune.search.schedulers import tune_ranking
from scenetune.search.spec import parse_spec
from scenetune.search.tuner import scheduler
from tests.known_curves import EPOCHS, checkpointed_lines

pytestmark = pytest.mark.slow


def spec_with(tmp_path, block: dict):
    return parse_spec({"name": "holds", "data": {"root": str(tmp_path)}, "metric": "val_accuracy", "mode": "max",
                       "scheduler": block, "fixed": {"backbone": "basic_cnn", "epochs": EPOCHS}})


def run(spec, tmp_path, order: list[str]) -> dict[str, list[int]]:
    """Each trial's reported epochs, in the order reported."""
    keep_the_drivers_trial_logs()  # as a sweep does: a held trial that resumes keeps its result.json rows
    chosen = scheduler(spec)
    metric, mode = tune_ranking(chosen, spec.metric, spec.mode)
    tuner = tune.Tuner(tune.with_resources(checkpointed_lines, {"cpu": 2}),
                       param_space={"curve": tune.grid_search(order)},
                       tune_config=tune.TuneConfig(metric=metric, mode=mode, scheduler=chosen, reuse_actors=True),
                       run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0))
    results = tuner.fit()
    assert not results.errors
    epochs = {}
    for result in results:
        with open(os.path.join(result.path, "result.json")) as f:
            epochs[result.config["curve"]] = [json.loads(line)["epoch"] for line in f if line.strip()]
    statuses = json.load(open(sorted(p for p in (tmp_path / "ray").rglob("experiment_state-*.json"))[-1]))
    assert {json.loads(trial)["status"] for trial, _ in statuses["trial_data"]} == {"TERMINATED"}
    return epochs


def test_the_first_trials_at_a_rung_wait_for_peers_and_are_stopped_when_the_curves_say_so(ray_local, tmp_path):
    spec = spec_with(tmp_path, {"brackets": 1})
    assert spec.scheduler.quorum == 3, "the default quorum is the reduction factor"
    epochs = run(spec, tmp_path, ["A", "B", "C", "D", "E", "F"])
    # A and B reach rung 1 first and wait; C's result makes three: A (0.20) is
    # below the top third of {0.20, 0.50, 0.30} and stops there, B resumes.
    # At rung 3 B and D wait for F; D (0.49) is stopped, B and F go on.
    last = {name: e[-1] for name, e in epochs.items()}
    assert last == {"A": 1, "B": EPOCHS, "C": 1, "D": 3, "E": 1, "F": EPOCHS}, last
    for name, reported in epochs.items():  # a held trial resumes from its checkpoint: no epoch twice
        assert reported == list(range(1, len(reported) + 1)), (name, reported)


def test_without_a_quorum_the_first_trial_passes_every_rung(ray_local, tmp_path):
    """What the defaults avoid: Ray's ASHA (``quorum: 1``) trains the first
    trial, the worst, to max_t."""
    epochs = run(spec_with(tmp_path, {"brackets": 1, "quorum": 1}), tmp_path, ["A", "B", "C", "D", "E", "F"])
    assert epochs["A"][-1] == EPOCHS


def test_held_trials_are_judged_on_what_there_is_when_nothing_else_can_run(ray_local, tmp_path):
    """Two trials and a quorum of three: the rung never fills. The sweep
    judges them on the two results (A stops, B goes on alone, held again at
    rung 3 and let through) instead of waiting for ever."""
    epochs = run(spec_with(tmp_path, {"brackets": 1}), tmp_path, ["A", "B"])
    assert {name: e[-1] for name, e in epochs.items()} == {"A": 1, "B": EPOCHS}
    assert epochs["B"] == list(range(1, EPOCHS + 1))
