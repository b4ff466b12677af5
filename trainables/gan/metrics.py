"""What the GAN reports about its samples, computed on feature vectors (numpy
only; the features come from :mod:`scenetune.trainables.gan.features`).

- ``fid``: Fréchet distance between Gaussians fitted to real and generated
  features, ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``. The trace of the
  matrix square root is taken from the eigenvalues of the symmetric PSD matrix
  ``sqrt(S1) S2 sqrt(S1)`` (same eigenvalues as ``S1 S2``), two ``eigh`` calls
  instead of ``scipy.linalg.sqrtm``'s Schur decomposition: faster, and free of
  the complex round-off that ``sqrtm`` leaves on near-singular covariances.
- ``kid``: the unbiased estimate of the squared MMD with the polynomial kernel
  ``k(x, y) = (x.y / d + 1)^3`` (Binkowski et al. 2018); unbiased, so it is
  about 0 (and may be slightly negative) for two samples of one distribution.
- ``diversity``: mean pairwise Euclidean distance among generated features
  divided by the same among real features: ~1 when samples spread like real
  images, ~0 when every latent gives the same image (mode collapse).
- ``collapsed``: sustained low diversity or a saturated discriminator, see
  :func:`collapse_state`.
"""

from __future__ import annotations

import numpy as np

# Diversity below this means the samples are nearly identical: they spread less
# than 0.15 times as much as real images do. Measured (random-conv features, the
# synthetic scenes): a generator mapping every latent to one image ~0.00; a
# freshly initialised DCGAN generator ~0.05; grids that look like one image
# repeated 0.05-0.15; varied grids 0.3-0.9; real images against real ~1.
COLLAPSE_DIVERSITY = 0.15
# Collapse must last this many consecutive epochs: a new generator starts out
# nearly constant (DCGAN's small initial weights) and needs an epoch or two to
# spread, and one noisy epoch is not a collapse.
COLLAPSE_PATIENCE = 2
# A discriminator is saturated when its epoch accuracies are within this of
# 100% on one side and 0% on the other (the report's "100% for real and 0% for
# fake ... or 0 and 100% respectively": it gives every image the same answer).
SATURATION_TOLERANCE = 0.02


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of ``(n, d)`` features."""
    f = np.asarray(features, dtype=np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(matrix)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """FID between two Gaussians, via the eigenvalues of sqrt(S1) S2 sqrt(S1)."""
    root = _psd_sqrt(sigma1)
    middle = root @ sigma2 @ root
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt, 0.0))


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    return frechet_distance(*feature_stats(real), *feature_stats(fake))


def kid(real: np.ndarray, fake: np.ndarray) -> float:
    """Unbiased squared MMD with the cubic polynomial kernel."""
    x, y = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def mean_pairwise_distance(features: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs i < j, from one Gram matrix
    (``|a-b|^2 = |a|^2 + |b|^2 - 2 a.b``) instead of n^2/2 explicit differences."""
    f = np.asarray(features, np.float64)
    f = f - f.mean(axis=0)  # centring changes no distance and keeps the Gram trick accurate
    sq = np.einsum("ij,ij->i", f, f)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2 * (f @ f.T), 0, None)
    n = len(f)
    return float(np.sqrt(d2[np.triu_indices(n, 1)]).mean()) if n > 1 else 0.0


def diversity(fake: np.ndarray, real_spread: float) -> float:
    """Spread of generated features relative to ``real_spread``, the real
    images' :func:`mean_pairwise_distance`."""
    return mean_pairwise_distance(fake) / real_spread if real_spread > 0 else 0.0


def discriminator_saturated(d_acc_real: float, d_acc_fake: float, tol: float = SATURATION_TOLERANCE) -> bool:
    """The discriminator gives every image the same answer (all real or all fake)."""
    return bool((d_acc_real >= 1 - tol and d_acc_fake <= tol) or (d_acc_real <= tol and d_acc_fake >= 1 - tol))


def collapse_state(diversity_history: list[float], saturated_history: list[bool],
                   threshold: float = COLLAPSE_DIVERSITY, patience: int = COLLAPSE_PATIENCE) -> tuple[bool, str]:
    """``(collapsed, reason)`` at the latest epoch, from the per-epoch
    histories (oldest first, this epoch last): ``low diversity`` when the last
    ``patience`` diversities were all below ``threshold`` (mode collapse, or a
    generator too small to vary, the report's "single colour" images);
    ``saturated discriminator`` when the discriminator was saturated in each of
    the last ``patience`` epochs; ``(False, "")`` otherwise."""
    recent = list(diversity_history)[-patience:]
    if len(recent) == patience and all(d < threshold for d in recent):
        return True, "low diversity"
    if len(saturated_history) >= patience and all(saturated_history[-patience:]):
        return True, "saturated discriminator"
    return False, ""
