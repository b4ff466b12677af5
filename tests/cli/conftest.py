"""The analysis tests' experiments with known numbers, for the CLI tests."""

from tests.analysis.conftest import damaged_experiment  # noqa: F401
