"""Per-trial device set-up, checked on CPU: the GPU memory plan for whole and
fractional GPUs, the threads a trial's CPUs give, and the spec options
mixed_precision and jit_compile reaching the model (a float16 or bfloat16
policy keeps the softmax in float32, and one training step runs); the
trial's resources read through Ray Tune's public context, in a real trial
and outside one, and any other failure to read them surfacing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from scenetune.trainables import device
from scenetune.trainables.classifier.config import ClassifierConfig

TINY = dict(backbone="basic_cnn", weights="none", image_size=32, cnn_blocks=2, cnn_filters=8, dense_units=16)


@pytest.mark.parametrize("fraction", [0, 1, 2])
def test_a_whole_gpu_or_none_grows_its_memory_on_demand(fraction):
    assert device.memory_limit_mb(fraction, 24_000) is None
    assert device.gpu_memory_plan(fraction, [24_000, 48_000]) == [None, None]


def test_four_quarter_gpu_trials_fit_on_one_card_together():
    total = 24_576  # an A10G
    (limit,) = device.gpu_memory_plan(0.25, [total])
    assert limit == int(total * 0.25) - 256
    assert 4 * (limit + 256) <= total, "four trials and their CUDA contexts fit the card"
    assert device.gpu_memory_plan(0.5, [total, 49_152]) == [total // 2 - 256, 49_152 // 2 - 256]


def test_a_tiny_fraction_still_gets_a_usable_cap():
    assert device.memory_limit_mb(0.001, 8_000) == 256


def test_the_plan_is_empty_without_gpus():
    assert device.gpu_memory_plan(0.25, []) == []


class TrialContext:
    """Stands in for Ray Tune's TuneContext: the resources a trial was given."""

    def __init__(self, cpu, gpu):
        self.resources = {"CPU": cpu, "GPU": gpu}

    def get_trial_resources(self):
        return type("Request", (), {"required_resources": self.resources})()


def test_trial_resources_are_read_from_the_tune_context():
    assert device.trial_resources(TrialContext(4, 0.25)) == (4.0, 0.25)


def test_outside_a_tune_session_there_are_no_resources_and_no_error():
    from ray import tune

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Ray's "meant to only be called inside" warning is not ours to pass on
        assert device.trial_resources(tune.get_context()) == (0.0, 0.0)


class BrokenContext:
    """A context whose accessor fails as a changed Ray API would."""

    def get_trial_resources(self):
        raise RuntimeError("the trial's resources moved")


def test_an_unexpected_error_reading_the_resources_surfaces():
    with pytest.raises(RuntimeError, match="moved"):
        device.trial_resources(BrokenContext())
    with pytest.raises(AttributeError):
        device.trial_resources(object())  # no accessor at all: not "outside a trial"
    with pytest.raises(RuntimeError, match="moved"):
        device.configure(0, "float32", BrokenContext())


def report_resources(config):
    from ray import tune

    from scenetune.trainables import device as trial_device

    cpus, gpus = trial_device.trial_resources(tune.get_context())
    tune.report({"cpus": cpus, "gpus": gpus})


@pytest.mark.slow
def test_a_real_tune_trial_reads_its_resources(ray_local, tmp_path):
    from ray import tune

    tuner = tune.Tuner(tune.with_resources(report_resources, {"cpu": 1}),
                       run_config=tune.RunConfig(name="device", storage_path=str(tmp_path), verbose=0))
    (result,) = tuner.fit()
    assert result.error is None
    assert (result.metrics["cpus"], result.metrics["gpus"]) == (1.0, 0.0)


@pytest.fixture
def restore_policy():
    import keras

    yield
    keras.mixed_precision.set_global_policy("float32")


def test_configure_on_cpu_applies_threads_precision_and_no_gpu_settings(restore_policy):
    import keras

    applied = device.configure(0, "bfloat16", TrialContext(2, 0))
    assert applied["cpus"] == 2 and applied["precision"] == "mixed_bfloat16"
    assert "gpu_memory_limit_mb" not in applied, "no GPU here, nothing capped"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"


@pytest.mark.parametrize("precision, compute", [("float16", "float16"), ("bfloat16", "bfloat16")])
def test_mixed_precision_keeps_the_output_in_float32_and_trains_a_step(restore_policy, precision, compute):
    import keras

    from scenetune.trainables.classifier.models import build_classifier

    cfg = ClassifierConfig(**TINY, mixed_precision=precision)
    device.configure(0, cfg.mixed_precision)
    model = build_classifier(cfg, 3)
    assert model.get_layer("hidden").dtype_policy.compute_dtype == compute
    assert model.get_layer("scene").dtype_policy.compute_dtype == "float32", "softmax in float32"
    assert model.outputs[0].dtype == "float32"
    if precision == "float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer), "losses are scaled"
    images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    loss, accuracy = model.train_on_batch(images, np.arange(8) % 3)
    assert np.isfinite(loss) and 0 <= accuracy <= 1


@pytest.mark.parametrize("jit", [True, False])
def test_jit_compile_reaches_the_compiled_model(jit):
    from scenetune.trainables.classifier.models import build_classifier

    model = build_classifier(ClassifierConfig(**TINY, jit_compile=jit), 3)
    assert model.jit_compile is jit
    images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    loss, _ = model.train_on_batch(images, np.arange(8) % 3)  # XLA compiles on CPU too
    assert np.isfinite(loss)


def test_configure_after_tensorflow_already_ran_keeps_its_thread_pools(restore_policy):
    import tensorflow as tf

    tf.constant(1.0) + 1  # TensorFlow initialised, as after a fit in the same process
    applied = device.configure(0, "float32", TrialContext(3, 0))  # a thread count it was not started with
    assert applied["threads_unchanged"] is True and applied["precision"] == "float32"
