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
    # Ray Tune's quantized domains round to multiples of step from 0 and refuse other bounds (found by the fuzzer)
    ({"x": {"quniform": [0.5, 0.5, 1]}}, "low (0.5) is not a multiple of step (1): steps count from 0"),
    ({"x": {"qint": [3, 9, 2]}}, "low (3) is not a multiple of step (2)"),
    ({"x": {"uniform": [0, "a"]}}, "takes numbers"),
    ({"x": {"choice": [[1, 2], [3]]}}, "must be strings, numbers"),
    ({"a": {"choice": [1]}, "a.b": {"choice": [2]}}, "clashes with 'a'"),
])
def test_bad_declarations_name_the_key(raw, message):
    with pytest.raises(SpaceError) as info:
        parse_space(raw)
    assert message in str(info.value)
    assert str(info.value).startswith("space.")


# Found by tests/fuzz/test_spec_fuzz.py: each declaration below once raised
# something other than a one-line SpaceError (or was accepted and broke later).
@pytest.mark.parametrize("raw, message", [
    ({"x": {"int": [0, math.inf]}}, "int takes finite numbers"),  # was OverflowError from int(inf)
    ({"x": {"qint": [0, math.nan, 1]}}, "qint takes finite numbers"),  # was ValueError from int(nan)
    ({"x": {"quniform": [0, 1, math.nan]}}, "quniform takes finite numbers"),  # was ValueError from round(nan)
    ({"x": {"uniform": [0, 10 ** 400]}}, "uniform takes finite numbers"),  # was OverflowError from float()
    ({"x": {"uniform": [-1e308, 1e308]}}, "too wide to sample"),  # high - low overflows: Ray cannot draw
    ({"x": {"quniform": [0, 1e308, 5e-324]}}, "step (4.94066e-324) is too small"),  # was OverflowError from round(inf)
    ({"x": {"qint": [0, 2 ** 64, 1]}}, "integers within +-(2**63 - 1)"),  # numpy's int64 cannot hold it
    ({"x": {"choice": [math.nan, 1.0]}}, "choice values must be finite numbers"),  # stored as null: resume failed
    ({"x": {"grid": [math.inf]}}, "grid values must be finite numbers"),
])
def test_non_finite_or_unsampleable_numbers_are_refused(raw, message):
    with pytest.raises(SpaceError) as info:
        parse_space(raw)
    assert message in str(info.value)
    assert len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize("key", ["a\u2028b", "a\nb", "", "a..b", ".a", "a.", "augment.rotation range", "1x"])
def test_parameter_names_are_dotted_identifiers_in_one_line_messages(key):
    """A key with a line break once made a multi-line message (found by the fuzzer)."""
    with pytest.raises(SpaceError, match="parameter names are dotted names") as info:
        parse_space({key: {"uniform": [0, 1]}})
    assert len(str(info.value).splitlines()) == 1


def test_non_string_keys_and_huge_values_make_short_one_line_messages():
    with pytest.raises(SpaceError) as info:
        parse_space({7: {"uniform": [0, 1]}})
    assert str(info.value).startswith("space.7: parameter names")
    nested = [[["x" * 10_000] * 100] * 100] * 100
    with pytest.raises(SpaceError) as info:
        parse_space({"x": {"choice": [nested]}})
    assert len(str(info.value)) < 300 and len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize("value", ["0.5", None, [0.5], {"v": 0.5}, math.nan, math.inf, True])
def test_contains_is_false_for_what_is_not_a_number_in_range(value):
    """Param.contains once raised TypeError for a string ('<=' between float
    and str) and ValueError for NaN: a search point holding one crashed the spec check."""
    for decl in ({"uniform": [0, 1]}, {"int": [0, 1]}, {"quniform": [0, 1, 0.5]}):
        (param,) = parse_space({"x": decl}).values()
        assert not param.contains(value), (decl, value)
