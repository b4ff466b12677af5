"""The driver and the report stay free of TensorFlow (DESIGN.md)."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("modules", [
    "search", "spaces", "analysis", "scenetune.cli", "scenetune.search.tuner", "scenetune.search.spec", "scenetune.search.ray_compat",
    "trainables", "scenetune.trainables.data.datasets", "scenetune.trainables.classifier.config", "scenetune.trainables.classifier.backbones", "scenetune.trainables.data.synth",
    "scenetune.trainables.data.decode", "scenetune.trainables.data.datacheck", "scenetune.trainables.data.cache",
    "scenetune.analysis.report", "scenetune.analysis.tables", "scenetune.analysis.figures", "scenetune.analysis.importance", "scenetune.analysis.final",
    "scenetune.commands.evaluate", "scenetune.commands.predict", "scenetune.analysis.search_report", "scenetune.analysis.pareto",
    "scenetune.trainables.gan.config", "scenetune.trainables.gan.metrics", "scenetune.trainables.gan.samples", "scenetune.commands.generate",
    "scenetune.analysis.gan_report",
])
def test_import_does_not_load_tensorflow_or_keras(modules):
    code = (f"import sys, {modules}\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_the_cli_help_runs_without_tensorflow():
    code = ("import sys\nfrom scenetune.cli import build_parser\nbuild_parser().format_help()\n"
            "print(any(m.startswith(('tensorflow', 'keras')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
