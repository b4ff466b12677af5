"""The GAN's config and GAN sweep specs, validated before Ray starts (no TensorFlow)."""

import copy

import pytest
from pydantic import ValidationError

from scenetune.core.registry import TRAINABLES
from scenetune.search.spec import SpecError, parse_spec
from scenetune.trainables.classifier.config import DataRef
from scenetune.trainables.gan.config import GanConfig

SPEC = {"name": "g", "trainable": "gan", "data": {"root": "."}, "metric": "fid", "mode": "min",
        "space": {"gen_filters": {"choice": [8, 16]}, "image_size": {"choice": [32, 64, 128]}},
        "fixed": {"epochs": 2}}


def spec_with(**changes):
    raw = copy.deepcopy(SPEC)
    raw.update(changes)
    return raw


def test_gan_is_registered_with_its_config_and_metrics():
    assert TRAINABLES["gan"].config_model() is GanConfig
    assert {"fid", "kid", "diversity", "collapsed", "d_acc_real", "d_acc_fake"} <= set(TRAINABLES["gan"].metrics)
    assert parse_spec(spec_with()).trainable == "gan"


def test_stages_follow_the_image_size():
    assert [GanConfig(image_size=s).stages for s in (32, 64, 128)] == [3, 4, 5]
    assert GanConfig(grayscale=True).channels == 1 and GanConfig().channels == 3


@pytest.mark.parametrize("changes, message", [
    ({"space": {"image_size": {"choice": [32, 48]}}}, "space.image_size: value 48 is not accepted"),
    ({"fixed": {"gen_filters": 0}}, "fixed.gen_filters"),
    ({"fixed": {"feature_extractor": "vgg"}}, "fixed.feature_extractor"),
    ({"fixed": {"feature_extractor": "classifier"}}, "needs classifier_checkpoint"),
    ({"fixed": {"label_smoothing": 0.7}}, "fixed.label_smoothing"),
    ({"fixed": {"categories": []}}, "categories: give at least one class"),
    ({"fixed": {"backbone": "basic_cnn"}}, "fixed.backbone: unknown key"),
    ({"metric": "val_accuracy"}, "metric: 'val_accuracy' is not reported by gan"),
])
def test_bad_gan_specs_name_the_key(changes, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        parse_spec(spec_with(**changes))


def test_categories_must_be_classes_of_the_experiment():
    data = DataRef(root=".", manifest="split.csv", classes=["library", "subway"])
    assert GanConfig(categories=["subway"], data=data).classes == ["subway"]
    assert GanConfig(data=data).classes == ["library", "subway"]
    with pytest.raises(ValidationError, match="not in the experiment's classes: pool"):
        GanConfig(categories=["pool"], data=data)
