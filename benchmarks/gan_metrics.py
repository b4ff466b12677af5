"""The GAN's per-epoch metrics, side by side with the straightforward way, on
the same images in one process.

    .venv/bin/python benchmarks/gan_metrics.py                  # 2,048 real + 2,048 generated at 64 px
    .venv/bin/python benchmarks/gan_metrics.py --n 1024 --inception-images 128

Real images: synthetic scenes (scenetune.trainables.data.synth) drawn in memory at --size px.
Generated images: a freshly built DCGAN generator (gen_filters 32) at --size px.

Rows (seconds; each pair timed alternately, best of 3, so both see the same machine load):
  features   scenetune's random_conv extractor (480 features, 64 px input, batched) on real + generated,
             vs InceptionV3 at 299 px (2048 features; the standard FID extractor, its cost is the same with
             random weights) measured on --inception-images images and scaled linearly to 2 x --n;
  fid        trace of the matrix square root from two symmetric eigendecompositions (scenetune) vs
             scipy.linalg.sqrtm(S1 @ S2), on the same features (480-d, and 2048-d random features);
  diversity  mean pairwise distance from one Gram matrix (scenetune) vs scipy.spatial.distance.pdist;
  total      features + fid + diversity: what every epoch pays (the issue's target: under 10 s at
             2,048 + 2,048 images, 64 px, 2 cores).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
from scipy.spatial.distance import pdist  # noqa: E402


def clock(fn, *args, repeat=1):
    """Best of ``repeat`` wall times, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def side_by_side(ours, theirs, repeat=3):
    """Best-of-``repeat`` times of two functions, alternating runs so that
    both see the same machine load; returns ``(t_ours, r_ours, t_theirs, r_theirs)``."""
    best = [float("inf"), float("inf")]
    results = [None, None]
    for _ in range(repeat):
        for i, fn in enumerate((ours, theirs)):
            elapsed, results[i] = clock(fn)
            best[i] = min(best[i], elapsed)
    return best[0], results[0], best[1], results[1]


def sqrtm_fid(real, fake):
    from scenetune.trainables.gan.metrics import feature_stats

    (m1, s1), (m2, s2) = feature_stats(real), feature_stats(fake)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def real_images(n: int, size: int) -> np.ndarray:
    from scenetune.trainables.data.synth import SCENES, render_scene

    rng = np.random.default_rng(0)
    labels = list(SCENES)
    images = [np.asarray(render_scene(labels[i % len(labels)], rng, size, size)) for i in range(n)]
    return np.stack(images).astype(np.float32) / 127.5 - 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2048, help="real images, and as many generated")
    parser.add_argument("--size", type=int, default=64, choices=[32, 64, 128])
    parser.add_argument("--inception-images", type=int, default=256,
                        help="images InceptionV3 is timed on (scaled to 2 x n)")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from scenetune.trainables.gan.features import inception_extractor, random_conv_extractor
    from scenetune.trainables.gan.metrics import diversity, fid, mean_pairwise_distance
    from scenetune.trainables.gan.models import build_generator

    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs; drawing {args.n} real scenes at {args.size} px ...",
          flush=True)
    real = real_images(args.n, args.size)
    keras.utils.set_random_seed(0)
    generator = build_generator(100, args.size, 32)
    latents = np.random.default_rng(1).normal(size=(args.n, 100)).astype(np.float32)
    gen_time, fake = clock(lambda: generator.predict(latents, batch_size=256, verbose=0))

    ours = random_conv_extractor(args.size, 3)
    ours(real[:256])  # warm-up: the first call builds the layers, once per trial
    feat_time, (real_f, fake_f) = clock(lambda: (ours(real), ours(fake)), repeat=2)

    inception = inception_extractor(args.size, 3, weights=None)  # ImageNet weights cost the same to run
    k = min(args.inception_images, args.n)
    inception(real[:16])
    inc_time, _ = clock(lambda: inception(real[:k]))
    inc_time *= 2 * args.n / k
    rng = np.random.default_rng(2)
    wide_real, wide_fake = rng.normal(size=(args.n, 2048)), rng.normal(0.1, 1.1, size=(args.n, 2048))

    rows = []

    def row(step, what, ours_s, baseline, base_s, check=""):
        rows.append((step, what, ours_s, baseline, base_s, base_s / ours_s if ours_s else float("nan"), check))

    row("features", f"random_conv 480-d, {2 * args.n} images", feat_time,
        f"InceptionV3 299 px 2048-d (timed on {k}, x{2 * args.n / k:.0f})", inc_time)
    fid_s, value, base_s, base_value = side_by_side(lambda: fid(real_f, fake_f), lambda: sqrtm_fid(real_f, fake_f))
    row("fid 480-d", "eigh of sqrt(S1) S2 sqrt(S1)", fid_s, "scipy.linalg.sqrtm(S1 S2)", base_s,
        f"{value:.6g} vs {base_value:.6g}")
    wide_s, value, base_wide, base_value = side_by_side(lambda: fid(wide_real, wide_fake),
                                                        lambda: sqrtm_fid(wide_real, wide_fake), repeat=1)
    row("fid 2048-d", "eigh of sqrt(S1) S2 sqrt(S1)", wide_s, "scipy.linalg.sqrtm(S1 S2)", base_wide,
        f"{value:.6g} vs {base_value:.6g}")
    div_s, spread, pd_s, pd_value = side_by_side(lambda: diversity(fake_f, mean_pairwise_distance(real_f)),
                                                 lambda: pdist(fake_f).mean() / pdist(real_f).mean())
    row("diversity", "Gram matrix", div_s, "scipy pdist", pd_s, f"{spread:.6g} vs {pd_value:.6g}")
    row("total", "features + fid + diversity", feat_time + fid_s + div_s,
        "InceptionV3 + sqrtm 2048-d + pdist", inc_time + base_wide + pd_s)

    print(f"\n{args.n} real + {args.n} generated images at {args.size} px "
          f"(generating them: {gen_time:.2f} s, not counted)\n")
    print("| step | scenetune | s | alternative | s | alternative / scenetune | check |")
    print("|---|---|---:|---|---:|---:|---|")
    for step, what, a, baseline, b, ratio, check in rows:
        print(f"| {step} | {what} | {a:.2f} | {baseline} | {b:.2f} | {ratio:.1f}x | {check} |")
    total = rows[-1][2]
    print(f"\nscenetune's per-epoch metrics: {total:.2f} s ({'under' if total < 10 else 'OVER'} the 10 s target)")


if __name__ == "__main__":
    main()
