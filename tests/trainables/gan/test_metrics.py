"""FID, KID, diversity and the collapse detector: on feature sets with known
answers, and on real networks (a generator that ignores its latent, a
saturated discriminator, real images)."""

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import pdist

from scenetune.trainables.gan.metrics import (
    COLLAPSE_DIVERSITY,
    collapse_state,
    discriminator_saturated,
    diversity,
    feature_stats,
    fid,
    frechet_distance,
    kid,
    mean_pairwise_distance,
)


def features(n=400, d=16, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing * scale


def textbook_fid(a, b):
    (m1, s1), (m2, s2) = feature_stats(a), feature_stats(b)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_of_a_feature_set_with_itself_is_zero():
    x = features()
    assert abs(fid(x, x)) < 1e-8 * np.trace(np.cov(x, rowvar=False))


def test_fid_grows_monotonically_with_added_noise():
    x = features()
    noise = np.random.default_rng(1).normal(size=x.shape)
    values = [fid(x, x + s * noise) for s in (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)]
    assert values[0] < 1e-8
    assert all(a < b for a, b in zip(values, values[1:])), values


def test_fid_equals_the_textbook_formula_and_a_pure_mean_shift():
    a, b = features(seed=0), features(seed=3, scale=1.7) + 0.3
    assert fid(a, b) == pytest.approx(textbook_fid(a, b), rel=1e-6)
    shift = np.linspace(-1, 1, a.shape[1])
    assert fid(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    mu, sigma = feature_stats(a)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_kid_is_unbiased_on_two_samples_of_one_distribution():
    rng = np.random.default_rng(0)
    same = [kid(rng.normal(size=(60, 8)), rng.normal(size=(60, 8))) for _ in range(200)]
    mean, sem = np.mean(same), np.std(same) / np.sqrt(len(same))
    assert abs(mean) < 3 * sem, (mean, sem)
    assert min(same) < 0 < max(same)  # unbiased: it straddles 0, a biased MMD never goes below
    shifted = [kid(rng.normal(size=(60, 8)), rng.normal(0.5, 1, size=(60, 8))) for _ in range(20)]
    assert np.mean(shifted) > 10 * sem


def test_mean_pairwise_distance_matches_scipy_and_diversity_is_a_ratio():
    x = features(n=300, d=24)
    assert mean_pairwise_distance(x) == pytest.approx(pdist(x).mean(), rel=1e-9)
    spread = mean_pairwise_distance(x)
    assert diversity(np.repeat(x[:1], 50, axis=0), spread) == pytest.approx(0.0, abs=1e-6)
    assert diversity(features(n=300, d=24, seed=5), spread) == pytest.approx(1.0, abs=0.1)
    assert diversity(0.5 * x, spread) == pytest.approx(0.5)


@pytest.mark.parametrize("accuracies, saturated", [
    ((1.0, 0.0), True), ((0.0, 1.0), True), ((0.99, 0.01), True),  # the report's 100%/0%, and the reverse
    ((1.0, 1.0), False), ((0.7, 0.6), False), ((0.95, 0.05), False)])
def test_discriminator_saturation(accuracies, saturated):
    assert discriminator_saturated(*accuracies) is saturated


def test_collapse_needs_patience_epochs_in_a_row():
    low, high = COLLAPSE_DIVERSITY / 3, 0.6
    assert collapse_state([low], [False], patience=2) == (False, "")
    assert collapse_state([high, low, low], [False] * 3, patience=2) == (True, "low diversity")
    assert collapse_state([low, high, low], [False] * 3, patience=2) == (False, "")
    assert collapse_state([high] * 3, [True, True, True], patience=3) == (True, "saturated discriminator")
    assert collapse_state([high] * 3, [True, False, True], patience=2) == (False, "")


# --- on real networks ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_images(synth_root):
    """The synthetic scenes, split in two halves of the same distribution."""
    import glob

    paths = sorted(glob.glob(f"{synth_root}/Images/*/*"))
    return paths[0::2], paths[1::2]


def evaluator_for(paths, cfg):
    from scenetune.trainables.gan.features import random_conv_extractor
    from scenetune.trainables.gan.train import Evaluator

    labels = np.zeros(len(paths), np.int32)
    return Evaluator(cfg, paths, labels, random_conv_extractor(cfg.image_size, cfg.channels))


def test_a_generator_mapping_every_latent_to_one_image_is_flagged(real_images):
    from scenetune.trainables.gan.config import GanConfig
    from scenetune.trainables.gan.train import build_gan

    cfg = GanConfig(image_size=32, gen_filters=8, disc_filters=8, latent_dim=16, fid_samples=48)
    gan = build_gan(cfg, 1, 0)
    project = gan.generator.get_layer("project")
    project.set_weights([np.zeros_like(w) for w in project.get_weights()])  # the latent no longer matters
    images = gan.generator.predict(np.random.default_rng(0).normal(size=(6, 16)), verbose=0)
    assert np.abs(images - images[:1]).max() < 1e-6
    result = evaluator_for(real_images[0], cfg)(gan)
    assert result["diversity"] < 0.01
    assert collapse_state([result["diversity"]] * cfg.collapse_patience, [False] * cfg.collapse_patience,
                          cfg.collapse_diversity, cfg.collapse_patience) == (True, "low diversity")


def test_real_images_are_not_flagged(real_images):
    from scenetune.trainables.gan.config import GanConfig
    from scenetune.trainables.gan.metrics import COLLAPSE_PATIENCE

    cfg = GanConfig(image_size=32, fid_samples=48)
    evaluator = evaluator_for(real_images[0], cfg)
    other = evaluator_for(real_images[1], cfg)  # the other half, as if generated
    value = diversity(other.real_features, evaluator.real_spread)
    assert 0.7 < value < 1.3
    assert collapse_state([value] * COLLAPSE_PATIENCE, [False] * COLLAPSE_PATIENCE) == (False, "")
    assert fid(evaluator.real_features, other.real_features) < fid(
        evaluator.real_features, np.repeat(other.real_features[:1], 24, axis=0))


def test_a_saturated_discriminator_is_flagged_after_patience_epochs():
    """A discriminator whose bias says "real" to everything: its epoch
    accuracies are 100% real / 0% fake, the report's failure."""
    from scenetune.trainables.gan.config import GanConfig
    from scenetune.trainables.gan.train import build_gan

    cfg = GanConfig(image_size=32, gen_filters=4, disc_filters=4, latent_dim=8, batch_size=4)
    gan = build_gan(cfg, 1, 0)
    logit = gan.discriminator.get_layer("logit")
    kernel, _ = logit.get_weights()
    logit.set_weights([np.zeros_like(kernel), np.array([1e3], "float32")])
    rng = np.random.default_rng(0)
    saturated = []
    for _ in range(2):
        history = gan.fit(rng.uniform(-1, 1, (16, 32, 32, 3)).astype("float32"), np.zeros(16, "int32"),
                          batch_size=4, epochs=1, verbose=0).history
        assert history["d_acc_real"][-1] == 1.0 and history["d_acc_fake"][-1] == 0.0
        saturated.append(discriminator_saturated(history["d_acc_real"][-1], history["d_acc_fake"][-1]))
    assert collapse_state([0.8, 0.8], saturated, patience=2) == (True, "saturated discriminator")
    assert collapse_state([0.8], saturated[:1], patience=2) == (False, "")
