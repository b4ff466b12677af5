"""The layers' import rules (docs/architecture.md), read from the source:

- core imports nothing of the project, and nothing heavy at import time;
- spaces imports core only; trainables never import search, analysis or commands;
- search never imports analysis or commands; analysis never imports
  trainables, search, commands or TensorFlow;
- only commands and the front door (the CLI and the API) import both sides;
- the driver, the report and the CLI's help never load TensorFlow or Keras;
- nothing imports the layers by their folder names (``import search``): only
  ``scenetune.…`` is installed.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = {"core": "core", "spaces": "spaces", "trainables": "trainables", "search": "search",
          "analysis": "analysis", "commands": "commands", "scenetune": "front"}
ALLOWED = {
    "core": {"core"},
    "spaces": {"core", "spaces"},
    "trainables": {"core", "spaces", "trainables"},
    "search": {"core", "spaces", "trainables", "search"},
    "analysis": {"core", "spaces", "analysis"},
    "commands": {"core", "spaces", "trainables", "search", "analysis", "commands"},
    "front": {"core", "spaces", "trainables", "search", "analysis", "commands", "front"},
}
FOLDER_NAMES = ("core", "spaces", "trainables", "search", "analysis", "commands")


def source_files():
    for folder, layer in LAYERS.items():
        for base, _, files in os.walk(os.path.join(ROOT, folder)):
            for name in files:
                if name.endswith(".py"):
                    yield layer, os.path.join(base, name)


def imported_modules(path: str) -> list[str]:
    """Every module an ``import`` or ``from ... import`` in the file names,
    at any depth (imports inside functions count: they are arrows too)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            out += [f"{node.module}.{alias.name}" for alias in node.names]
    return out


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "scenetune":
        return None
    if len(parts) == 1 or parts[1] not in LAYERS:
        return "front"
    return LAYERS[parts[1]]


def test_every_layer_imports_only_what_it_may():
    wrong = []
    for layer, path in source_files():
        for module in imported_modules(path):
            target = layer_of(module)
            if target is not None and target not in ALLOWED[layer]:
                wrong.append(f"{os.path.relpath(path, ROOT)} ({layer}) imports {module} ({target})")
    assert wrong == []


def test_only_commands_and_the_front_door_import_both_sides():
    both = set()
    for layer, path in source_files():
        targets = {layer_of(m) for m in imported_modules(path)}
        if {"trainables", "analysis"} <= targets:
            both.add(layer)
    assert both <= {"commands", "front"}


def test_nothing_imports_a_layer_by_its_folder_name():
    wrong = []
    for _, path in list(source_files()) + [("tests", p) for p in _files_under("tests")] + \
            [("benchmarks", p) for p in _files_under("benchmarks")]:
        for module in imported_modules(path):
            if module.split(".")[0] in FOLDER_NAMES:
                wrong.append(f"{os.path.relpath(path, ROOT)} imports {module}")
    assert wrong == []


def _files_under(folder: str):
    for base, _, files in os.walk(os.path.join(ROOT, folder)):
        yield from (os.path.join(base, n) for n in files if n.endswith(".py"))


def test_no_module_is_over_400_lines():
    long = [f"{os.path.relpath(p, ROOT)}: {n}" for p in
            [p for _, p in source_files()] + list(_files_under("benchmarks")) + list(_files_under("tests"))
            if (n := sum(1 for _ in open(p, encoding="utf-8"))) > 400]
    assert long == []


def _loaded_after_import(modules: str, roots: tuple[str, ...]) -> str:
    code = (f"import sys, {modules}\n"
            f"print(','.join(sorted({{m.split('.')[0] for m in sys.modules}} & {set(roots)!r})))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("module", ["scenetune.core.storage", "scenetune.core.layout", "scenetune.core.rungs",
                                    "scenetune.core.registry", "scenetune.core.errors", "scenetune"])
def test_the_bottom_layer_imports_nothing_heavy(module):
    heavy = ("tensorflow", "keras", "pandas", "ray", "optuna", "pyarrow", "numpy", "sklearn", "matplotlib")
    assert _loaded_after_import(module, heavy) == ""


@pytest.mark.parametrize("modules", [
    "scenetune.cli", "scenetune.api", "scenetune.spaces",
    "scenetune.search.spec, scenetune.search.tuner, scenetune.search.ray_compat, scenetune.search.clock",
    "scenetune.trainables, scenetune.trainables.reporting, scenetune.trainables.device",
    "scenetune.trainables.data.datasets, scenetune.trainables.data.synth, scenetune.trainables.data.decode, "
    "scenetune.trainables.data.datacheck, scenetune.trainables.data.cache",
    "scenetune.trainables.classifier.config, scenetune.trainables.classifier.backbones, "
    "scenetune.trainables.classifier.scores",
    "scenetune.trainables.gan.config, scenetune.trainables.gan.metrics, scenetune.trainables.gan.samples",
    "scenetune.analysis, scenetune.analysis.report, scenetune.analysis.tables, scenetune.analysis.figures, "
    "scenetune.analysis.importance, scenetune.analysis.final, scenetune.analysis.search_report, "
    "scenetune.analysis.pareto, scenetune.analysis.gan_report, scenetune.analysis.study",
    "scenetune.commands.evaluate, scenetune.commands.predict, scenetune.commands.generate, "
    "scenetune.commands.replay",
])
def test_import_does_not_load_tensorflow_or_keras(modules):
    assert _loaded_after_import(modules, ("tensorflow", "keras")) == ""


def test_the_cli_help_runs_without_tensorflow():
    code = ("import sys\nfrom scenetune.cli import build_parser\nbuild_parser().format_help()\n"
            "print(any(m.startswith(('tensorflow', 'keras')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
