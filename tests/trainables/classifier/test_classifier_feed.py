"""The classifier trainable on the decode cache, with the augmentation as the
model's first layer (what a GPU trial does), through a retry."""

import glob
import os

import keras
import pytest

from scenetune.analysis import load_experiment
from scenetune.search.run import run_sweep
from scenetune.search.spec import load_spec
from scenetune.trainables.data.augment import RandomAffine

pytestmark = pytest.mark.slow


def test_augmentation_in_the_model_trains_checkpoints_and_resumes(ray_local, make_spec, decode_cache_dir):
    spec = load_spec(make_spec({"name": "in-model", "failure": {"max_failures": 1},
                                "fixed": {"epochs": 2, "augment_on": "model",
                                          "augment": {"rotation_range": 15, "horizontal_flip": True},
                                          "debug_fault": {"epoch": 1, "mode": "once"}}}))
    exp = load_experiment(run_sweep(spec))
    (trial,) = exp.trials.itertuples()
    assert trial.status == "completed" and trial.failures == 1 and trial.epochs == 2
    (latest,) = sorted(glob.glob(os.path.join(exp.uri, trial.trial_dir, "checkpoint_*")))[-1:]
    model = keras.models.load_model(os.path.join(latest, "model.keras"))
    layer = model.layers[1]
    assert isinstance(layer, RandomAffine) and layer.augment.rotation_range == 15
    assert glob.glob(os.path.join(decode_cache_dir, "32px-*", "COMPLETE")), "the trial decoded into the cache"
