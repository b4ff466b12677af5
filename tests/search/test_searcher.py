"""The searcher a spec builds: points that name some of the searched keys
pin those for the first trials, and Optuna samples the rest."""

import pytest

from scenetune.search.spec import load_spec
from scenetune.search.tuner import searcher_and_space

SPACE = {"learning_rate": {"loguniform": [1.0e-4, 1.0e-2]},
         "dense_units": {"choice": [8, 16, 32]},
         "augment.rotation_range": {"uniform": [0, 15]}}
POINTS = [{"learning_rate": 0.002}, {"dense_units": 32, "augment": {"rotation_range": 5.0}}]


@pytest.mark.parametrize("sampler, objectives", [
    ("tpe", {}),
    ("nsga2", {"metric": None, "mode": None, "objectives": [{"metric": "val_accuracy", "mode": "max"},
                                                            {"metric": "train_time_s", "mode": "min"}]}),
], ids=["tpe", "nsga2-two-objectives"])
def test_optuna_points_may_name_some_keys_and_optuna_samples_the_rest(make_spec, sampler, objectives):
    spec = load_spec(make_spec({"search": {"algorithm": "optuna", "sampler": sampler, "num_samples": 4,
                                           "points": POINTS},
                                "space": SPACE, "fixed": {"dense_units": None}, **objectives}))
    searcher, _ = searcher_and_space(spec)
    first, second, third = (searcher.suggest(f"t{i}") for i in range(3))
    for config in (first, second, third):
        assert 1.0e-4 <= config["learning_rate"] <= 1.0e-2 and config["dense_units"] in (8, 16, 32)
        assert 0 <= config["augment"]["rotation_range"] <= 15
    assert first["learning_rate"] == 0.002
    assert (second["dense_units"], second["augment"]["rotation_range"]) == (32, 5.0)
    assert second["learning_rate"] != 0.002, "sampled, not copied from the first point"
