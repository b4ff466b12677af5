"""Hypothesis profiles: ``ci`` (the default: derandomized, so a run is
reproducible, and no deadline on a loaded machine) and ``long`` (random,
many more examples: benchmarks/fuzz_long.py), chosen by the environment
variable SCENETUNE_FUZZ_PROFILE."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", derandomize=False, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("SCENETUNE_FUZZ_PROFILE", "ci"))
