"""The driver and the report stay free of TensorFlow (DESIGN.md)."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("modules", [
    "search", "spaces", "analysis", "search.cli", "search.tuner", "search.spec", "search.ray_compat",
    "trainables", "trainables.datasets", "trainables.config", "trainables.backbones", "trainables.synth",
    "trainables.decode", "trainables.datacheck", "trainables.cache",
    "analysis.report", "analysis.tables", "analysis.figures", "analysis.importance", "analysis.final",
    "trainables.evaluate", "trainables.predict", "analysis.search_report", "analysis.pareto",
    "trainables.gan_config", "trainables.gan_metrics", "trainables.gan_samples", "trainables.gan_generate",
    "analysis.gan_report",
])
def test_import_does_not_load_tensorflow_or_keras(modules):
    code = (f"import sys, {modules}\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_the_cli_help_runs_without_tensorflow():
    code = ("import sys\nfrom search.cli import build_parser\nbuild_parser().format_help()\n"
            "print(any(m.startswith(('tensorflow', 'keras')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
