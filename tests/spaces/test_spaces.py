import json
import math

import optuna
import pytest
from ray import tune
from ray.tune.search.sample import Categorical, Float, Integer

from scenetune.spaces import Param, SpaceError, flatten, get_path, parse_space, set_path, to_optuna, to_tune, unflatten

DECLARATIONS = {
    "backbone": {"choice": ["mobilenet_v2", "basic_cnn"]},
    "dropout": {"uniform": [0.0, 0.5]},
    "momentum": {"quniform": [0.5, 0.9, 0.1]},
    "learning_rate": {"loguniform": [1.0e-5, 1.0e-2]},
    "trainable_layers": {"int": [0, 40]},
    "batch_size": {"qint": [8, 64, 8]},
    "dense_units": {"logint": [16, 512]},
    "augment.rotation_range": {"uniform": [0, 30]},
    "augment.horizontal_flip": {"choice": [True, False]},
}


def test_every_kind_converts_to_tune_and_samples_within_bounds():
    params = parse_space(DECLARATIONS)
    space = to_tune(params.values())
    assert isinstance(space["augment"]["rotation_range"], Float)
    assert isinstance(space["trainable_layers"], Integer)
    assert isinstance(space["backbone"], Categorical)
    for _ in range(200):
        for key, param in params.items():
            value = get_path(space, key).sample()
            assert param.contains(value), (key, value)


def test_int_bounds_are_inclusive_in_tune_and_optuna():
    (param,) = parse_space({"k": {"int": [0, 2]}}).values()
    seen = {to_tune([param])["k"].sample() for _ in range(300)}
    assert seen == {0, 1, 2}
    dist = to_optuna([param])["k"]
    assert (dist.low, dist.high) == (0, 2)


def test_every_kind_converts_to_optuna_and_samples_within_bounds():
    params = parse_space(DECLARATIONS)
    dists = to_optuna(params.values())
    assert set(dists) == {key.replace(".", "/") for key in params}
    assert dists["learning_rate"].log and dists["dense_units"].log
    assert dists["batch_size"].step == 8 and math.isclose(dists["momentum"].step, 0.1)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(100):
        trial = study.ask(fixed_distributions=dists)
        for key, param in params.items():
            assert param.contains(trial.params[key.replace(".", "/")]), key
        study.tell(trial, 0.0)


def test_nested_keys_round_trip_through_flatten_and_unflatten():
    tree = {}
    for key in DECLARATIONS:
        set_path(tree, key, key)
    assert tree["augment"] == {"rotation_range": "augment.rotation_range",
                               "horizontal_flip": "augment.horizontal_flip"}
    assert unflatten(flatten(tree)) == tree
    assert unflatten(flatten(tree, sep="/"), sep="/") == tree


def test_optuna_suggestions_unflatten_to_the_nested_config():
    from ray.tune.search.optuna import OptunaSearch

    params = parse_space(DECLARATIONS)
    searcher = OptunaSearch(space=to_optuna(params.values()), metric="m", mode="max",
                            sampler=optuna.samplers.RandomSampler(seed=1))
    config = searcher.suggest("trial-1")
    for key, param in params.items():
        assert param.contains(get_path(config, key)), key


def test_params_round_trip_through_json():
    params = parse_space(DECLARATIONS)
    restored = {k: Param.from_dict(k, json.loads(json.dumps(p.to_dict()))) for k, p in params.items()}
    assert restored == params


def test_grid_declarations_become_tune_grid_search():
    params = parse_space({"image_size": {"grid": [50, 150, 224]}})
    assert to_tune(params.values()) == {"image_size": tune.grid_search([50, 150, 224])}
    with pytest.raises(SpaceError, match="grid"):
        to_optuna(params.values())


@pytest.mark.parametrize("raw, message", [
    ({"x": {"uniform": [1, 0]}}, "low (1.0) > high (0.0)"),
    ({"x": {"choice": []}}, "the list is empty"),
    ({"x": {"loguniform": [0, 1]}}, "loguniform needs low > 0"),
    ({"x": {"normal": [0, 1]}}, "unknown kind 'normal'"),
    ({"x": {"uniform": [0, 1], "int": [0, 1]}}, "needs exactly one of"),
    ({"x": {"int": [0.5, 3]}}, "takes integers"),
    ({"x": {"qint": [0, 10, 3]}}, "not a multiple of step"),
    ({"x": {"uniform": [0, "a"]}}, "takes numbers"),
    ({"x": {"choice": [[1, 2], [3]]}}, "must be strings, numbers"),
    ({"a": {"choice": [1]}, "a.b": {"choice": [2]}}, "clashes with 'a'"),
])
def test_bad_declarations_name_the_key(raw, message):
    with pytest.raises(SpaceError) as info:
        parse_space(raw)
    assert message in str(info.value)
    assert str(info.value).startswith("space.")
