"""Hypothesis profiles: ``ci`` (the default: derandomized, so a run is
reproducible, and no deadline on a loaded machine) and ``long`` (random,
many more examples: benchmarks/fuzz_long.py), chosen by the environment
variable SCENETUNE_FUZZ_PROFILE.

Every fuzz test sizes itself with :func:`examples`:
``@settings(max_examples=examples(500))`` runs 500 examples in CI and
500 x SCENETUNE_FUZZ_EXAMPLES_SCALE when that is set (benchmarks/fuzz_long.py
sets it)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", derandomize=False, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("SCENETUNE_FUZZ_PROFILE", "ci"))


def scale() -> int:
    """SCENETUNE_FUZZ_EXAMPLES_SCALE: how many times the CI example counts to run (default 1)."""
    raw = os.environ.get("SCENETUNE_FUZZ_EXAMPLES_SCALE", "1")
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"SCENETUNE_FUZZ_EXAMPLES_SCALE must be a whole number >= 1, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"SCENETUNE_FUZZ_EXAMPLES_SCALE must be a whole number >= 1, got {raw!r}")
    return value


def examples(n: int) -> int:
    """A fuzz test's max_examples: its CI count ``n`` times SCENETUNE_FUZZ_EXAMPLES_SCALE."""
    return n * scale()
