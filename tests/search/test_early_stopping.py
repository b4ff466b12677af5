"""Early stopping under the default scheduler keeps the trials that later
epochs show are best, when their first-rung accuracy is chance-level noise
(real Ray Tune, a trainable with known curves, trials one at a time)."""

import pytest
from ray import tune

from scenetune.search.schedulers import tune_ranking
from scenetune.search.spec import parse_spec
from scenetune.search.tuner import scheduler
from tests.known_curves import BAD, EPOCHS, GOOD, ORDER, known_curves

pytestmark = pytest.mark.slow

def run(spec, tmp_path) -> dict[str, int]:
    """Each trial's last epoch under the spec's scheduler."""
    chosen = scheduler(spec)
    metric, mode = tune_ranking(chosen, spec.metric, spec.mode)
    # One trial at a time, in ORDER: each takes both CPUs (a held trial frees them).
    tuner = tune.Tuner(tune.with_resources(known_curves, {"cpu": 2}), param_space={"curve": tune.grid_search(ORDER)},
                       tune_config=tune.TuneConfig(metric=metric, mode=mode, scheduler=chosen),
                       run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0))
    results = tuner.fit()
    return {r.config["curve"]: r.metrics["epoch"] for r in results}


def spec_with(tmp_path, scheduler_block: dict):
    return parse_spec({"name": "ties", "data": {"root": str(tmp_path)}, "metric": "val_accuracy", "mode": "max",
                       "scheduler": scheduler_block, "fixed": {"backbone": "basic_cnn", "epochs": EPOCHS}})


def test_default_scheduler_keeps_the_trials_whose_first_rung_accuracy_ties_at_chance(ray_local, tmp_path):
    spec = spec_with(tmp_path, {})
    assert (spec.scheduler.metric, spec.scheduler.mode) == ("val_loss", "min"), "ranks by loss by default"
    last_epoch = run(spec, tmp_path)
    assert {name: last_epoch[name] for name in GOOD} == {name: EPOCHS for name in GOOD}
    assert min(last_epoch[name] for name in BAD) < EPOCHS, "it still stops trials"


def test_ranking_by_accuracy_at_the_first_rung_stops_a_later_best_trial(ray_local, tmp_path):
    """What the defaults avoid (the defaults before, kept one spec line away)."""
    spec = spec_with(tmp_path, {"metric": "val_accuracy", "mode": "max", "brackets": 1, "quorum": 1})
    last_epoch = run(spec, tmp_path)
    assert last_epoch["good1"] == 1, last_epoch
