"""Claims of README.md, docs/spec.md, docs/architecture.md and
docs/pipeline.md about sweeps, each checked once (issue 17: every claim has
a test). Four tiny sweeps on the embedded Ray:

- `search.algorithm: grid` runs every point of the grid once, without
  Optuna; in the same sweep, `failure.max_failures: -1` retries a failing
  trial (from its last checkpoint) until it completes, `augment_on: auto`
  puts the augmentation in the input pipeline on a machine without a GPU
  (the model has no RandomAffine layer), every trial folder holds TensorBoard
  events (`events.out.tfevents.*`), and the trial parameter `cache_dir` is
  where the decode cache is built;
- Optuna's `cmaes`, `qmc` and `random` samplers each run a sweep; a
  model-based sampler starts with `num_samples/4` random trials (2 to 10):
  the CMA-ES sweep's first two trials are the random sampler's draws, its
  third is not;
- `scenetune sweep SPEC --name N --storage S --num-samples K` puts the
  experiment at S/N with K trials.
"""

from __future__ import annotations

import glob
import json
import os
import pickle

import optuna
import pytest
import yaml

from scenetune.analysis import load_experiment
from scenetune.cli import main
from scenetune.search.spec import load_spec, parse_spec
from scenetune.search.tuner import make_sampler, searcher_and_space, startup_trials
from scenetune.spaces import to_optuna
from tests.conftest import BASE_SPEC, deep_update

SEARCHED = {"learning_rate": {"loguniform": [1.0e-4, 1.0e-2]}, "dropout": {"uniform": [0.0, 0.5]}}


def write_spec(folder, synth_root, changes: dict, filename: str = "spec.yaml") -> str:
    spec = deep_update(deep_update(BASE_SPEC, {"data": {"root": synth_root}, "storage": str(folder / "results")}),
                       changes)
    path = folder / filename
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def in_order(exp) -> list[dict]:
    """The configs of a sweep's trials, run one at a time, in the order they
    ran: by the time of each one's first result."""
    def started(trial) -> int:
        with open(os.path.join(exp.uri, trial.trial_dir, "result.json")) as f:
            return json.loads(f.readline())["timestamp"]

    trials = sorted(exp.trials.itertuples(), key=started)
    return [exp.configs[t.trial_id] for t in trials]


def random_draws(spec_path: str, seed: int, n: int) -> list[dict]:
    """What Optuna's RandomSampler with ``seed`` draws first, over the spec's space."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), direction="maximize")
    space = to_optuna(list(load_spec(spec_path).params.values()))
    return [study.ask(fixed_distributions=space).params for _ in range(n)]


# --- startup trials: unit


@pytest.mark.parametrize("num_samples, startup", [(3, 2), (8, 2), (12, 3), (40, 10), (200, 10)])
def test_model_based_samplers_start_with_a_quarter_of_the_budget_at_random(num_samples, startup):
    assert startup_trials(num_samples) == startup
    for name in ("tpe", "cmaes"):
        sampler = make_sampler(name, 0, num_samples)
        assert getattr(sampler, "base", sampler)._n_startup_trials == startup, name  # TPE: within BoundedHistorySampler


# --- grid, retries forever, augmentation on the CPU, TensorBoard events, cache_dir


@pytest.fixture(scope="module")
def grid_sweep(ray_local, synth_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grid")
    path = write_spec(tmp, synth_root, {
        "name": "grid", "search": {"algorithm": "grid", "num_samples": 1},
        "space": {"dense_units": {"grid": [4, 8]}},
        "failure": {"max_failures": -1},
        "fixed": {"dense_units": None, "epochs": 2, "cache_dir": str(tmp / "cache"),
                  "augment": {"rotation_range": 10, "horizontal_flip": True},
                  "debug_fault": {"epoch": 1, "mode": "once"}}})
    assert main(["sweep", path]) == 0
    return path, load_experiment(str(tmp / "results" / "grid")), tmp


@pytest.mark.slow
def test_grid_runs_every_point_once_without_optuna(grid_sweep):
    path, exp, _ = grid_sweep
    search_alg, space = searcher_and_space(load_spec(path))
    assert type(search_alg).__name__ == "BasicVariantGenerator" and "grid_search" in str(space)
    assert sorted(c["dense_units"] for c in exp.configs.values()) == [4, 8]
    assert list(exp.trials["status"]) == ["completed", "completed"]
    assert not glob.glob(os.path.join(exp.uri, "searcher-state-*")), "no Optuna study saved"


@pytest.mark.slow
def test_max_failures_minus_one_retries_a_failing_trial_until_it_completes(grid_sweep):
    _, exp, _ = grid_sweep
    assert exp.spec["failure"]["max_failures"] == -1
    for trial in exp.trials.itertuples():
        assert trial.failures == 1, "the injected fault failed the first attempt"
        assert trial.status == "completed" and trial.epochs == 2
    rows = exp.epochs.sort_values(["trial_id", "training_iteration"])
    assert list(rows["epoch"]) == [1, 2, 1, 2], "each retry went on from its checkpoint at epoch 1"


@pytest.mark.slow
def test_augment_on_auto_augments_in_the_input_pipeline_without_a_gpu(grid_sweep):
    import keras

    from scenetune.trainables.data.augment import RandomAffine

    _, exp, _ = grid_sweep
    for trial in exp.trials.itertuples():
        trial_dir = os.path.join(exp.uri, trial.trial_dir)
        with open(os.path.join(trial_dir, "scenetune_config.json")) as f:
            config = json.load(f)
        assert config["augment_on"] == "auto" and config["augment"]["rotation_range"] == 10
        (checkpoint,) = glob.glob(os.path.join(trial_dir, "checkpoint_*"))
        model = keras.models.load_model(os.path.join(checkpoint, "model.keras"))
        assert not any(isinstance(layer, RandomAffine) for layer in model.layers)
        assert model.layers[1].name == "rescale", [layer.name for layer in model.layers]


@pytest.mark.slow
def test_every_trial_folder_holds_tensorboard_events_of_its_metrics(grid_sweep):
    import tensorflow as tf  # its event reader: TensorBoard itself is not a dependency

    _, exp, _ = grid_sweep
    for trial in exp.trials.itertuples():
        trial_dir = os.path.join(exp.uri, trial.trial_dir)
        files = glob.glob(os.path.join(trial_dir, "events.out.tfevents.*"))
        assert files
        logged = {event.step: value.simple_value for path in files
                  for event in tf.compat.v1.train.summary_iterator(path)
                  for value in event.summary.value if value.tag.endswith("/val_accuracy")}
        rows = exp.epochs[exp.epochs["trial_id"] == trial.trial_id]
        recorded = dict(zip(rows["training_iteration"], rows["val_accuracy"]))
        assert set(logged) == {1, 2} and all(logged[s] == pytest.approx(recorded[s]) for s in logged)


@pytest.mark.slow
def test_the_trial_parameter_cache_dir_holds_the_decode_cache(grid_sweep, decode_cache_dir):
    _, exp, tmp = grid_sweep
    (built,) = glob.glob(str(tmp / "cache" / "32px-*" / "COMPLETE"))
    # built there by this sweep's trials (after the driver wrote the split), whatever $SCENETUNE_CACHE
    # (decode_cache_dir, shared by the session's tests) already holds
    assert not str(built).startswith(decode_cache_dir)
    assert os.path.getmtime(built) >= os.path.getmtime(os.path.join(exp.uri, "split.csv"))


# --- Optuna's samplers, and the name, storage and num-samples overrides


@pytest.fixture(scope="module")
def cmaes_sweep(ray_local, synth_root, tmp_path_factory):
    """CMA-ES, one trial at a time (the sampler sees two finished trials
    before the third), started from the command line with overrides."""
    tmp = tmp_path_factory.mktemp("cmaes")
    path = write_spec(tmp, synth_root, {
        "name": "from-spec", "search": {"sampler": "cmaes", "num_samples": 1, "max_concurrent": 1, "seed": 4},
        "space": SEARCHED, "fixed": {"epochs": 1}})
    storage = tmp / "elsewhere"
    assert main(["sweep", path, "--name", "overridden", "--storage", str(storage), "--num-samples", "3"]) == 0
    return path, tmp, storage


@pytest.mark.slow
def test_name_storage_and_num_samples_override_the_spec(cmaes_sweep):
    _, tmp, storage = cmaes_sweep
    assert not (tmp / "results").exists(), "nothing at the spec's storage"
    exp = load_experiment(str(storage / "overridden"))
    assert len(exp.trials) == 3 and set(exp.trials["status"]) == {"completed"}
    assert (exp.spec["name"], exp.spec["search"]["num_samples"]) == ("overridden", 3)


@pytest.mark.slow
def test_cmaes_starts_with_random_trials_then_samples_its_own(cmaes_sweep):
    path, _, storage = cmaes_sweep
    configs = [{k: c[k] for k in SEARCHED} for c in in_order(load_experiment(str(storage / "overridden")))]
    assert startup_trials(3) == 2
    draws = random_draws(path, seed=4, n=3)
    assert configs[:2] == draws[:2], "the first num_samples/4 (at least 2) trials are random"
    assert configs[2] != draws[2], "then CMA-ES samples"
    assert len({tuple(c.values()) for c in configs}) == 3


@pytest.fixture(scope="module", params=["qmc", "random"])
def sampler_sweep(request, ray_local, synth_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    path = write_spec(tmp, synth_root, {
        "name": request.param, "search": {"sampler": request.param, "num_samples": 2, "max_concurrent": 1, "seed": 1},
        "space": SEARCHED, "fixed": {"epochs": 1}})
    assert main(["sweep", path]) == 0
    return request.param, load_experiment(str(tmp / "results" / request.param))


def sampler_draws(name: str, spec, n: int) -> list[dict]:
    """What scenetune's ``name`` sampler (:func:`make_sampler`, the spec's seed)
    draws over the spec's space for ``n`` trials asked one at a time, each
    finished before the next is asked (``max_concurrent: 1``)."""
    study = optuna.create_study(sampler=make_sampler(name, spec.search.seed, spec.search.num_samples),
                                direction="maximize")
    space = to_optuna(list(spec.params.values()))
    draws = []
    for _ in range(n):
        trial = study.ask(fixed_distributions=space)
        draws.append(trial.params)
        study.tell(trial, 0.0)
    return draws


def saved_sampler(exp) -> optuna.samplers.BaseSampler:
    """The sampler of the Optuna study the sweep saved (Ray Tune's searcher state)."""
    (path,) = glob.glob(os.path.join(exp.uri, "searcher-state-*.pkl"))
    with open(path, "rb") as f:
        state = pickle.load(f)
    while "_ot_study" not in state:  # a concurrency limit wraps OptunaSearch
        state = vars(state["searcher"])
    return state["_ot_study"].sampler


@pytest.mark.slow
def test_the_qmc_and_random_samplers_run_sweeps_of_distinct_trials(sampler_sweep):
    """Each sweep's trials are the named sampler's draws, in order (QMC's
    first trial is its random start, its second a point of its Sobol
    sequence), and the study it saved has that sampler (TPE, the default, a
    sweep that ignored the setting would run, starts with the random
    sampler's draws: only the study tells those two apart)."""
    name, exp = sampler_sweep
    assert exp.spec["search"]["sampler"] == name
    assert list(exp.trials["status"]) == ["completed", "completed"]
    configs = [{k: c[k] for k in SEARCHED} for c in in_order(exp)]
    assert configs[0]["learning_rate"] != configs[1]["learning_rate"] and configs[0]["dropout"] != configs[1]["dropout"]
    for c in configs:
        assert 1e-4 <= c["learning_rate"] <= 1e-2 and 0 <= c["dropout"] <= 0.5
    spec = parse_spec(exp.spec)
    assert configs == sampler_draws(name, spec, 2)
    if name == "qmc":
        assert configs[1] != sampler_draws("random", spec, 2)[1], "QMC's second trial is no random draw"
    expected = {"qmc": optuna.samplers.QMCSampler, "random": optuna.samplers.RandomSampler}[name]
    assert type(saved_sampler(exp)) is expected
