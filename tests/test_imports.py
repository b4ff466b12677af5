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


def module_name(path: str) -> str:
    """The installed name of a source file (``search/run.py`` -> ``scenetune.search.run``)."""
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] == "__init__":
        rel = rel[:-1]
    return ".".join(rel) if rel[0] == "scenetune" else ".".join(["scenetune"] + rel)


def imported_modules(path: str) -> list[str]:
    """Every module an ``import`` or ``from ... import`` in the file names,
    at any depth (imports inside functions count: they are arrows too),
    relative imports resolved against the file's package."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = module_name(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            if base:
                out.append(base)
                out += [f"{base}.{alias.name}" for alias in node.names]
    return out


def named_imports() -> list[tuple[str, str, str]]:
    """``(user layer, module, what for)`` of the modules the registry names as
    ``"module:attribute"`` strings, imported on demand: a trainable's config
    model is read by the driver (search), its report builder by the report
    (analysis), its train function in trial processes (trainables); and the
    worker's set-up hook that the driver hands Ray (trainables)."""
    from scenetune.core.registry import TRAINABLES
    from scenetune.search.cluster_connect import WORKER_SETUP_HOOK

    out = []
    for record in TRAINABLES.values():
        out += [("search", record.config.split(":")[0], f"{record.name}'s config model"),
                ("analysis", record.report.split(":")[0], f"{record.name}'s report"),
                ("trainables", record.train.split(":")[0], f"{record.name}'s train function")]
    return out + [("trainables", WORKER_SETUP_HOOK.rsplit(".", 1)[0], "the worker set-up hook")]


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


def test_the_modules_imported_by_name_keep_the_layers_of_their_users():
    wrong = [f"{module} ({what}) is in {layer_of(module)}, which {user} may not import"
             for user, module, what in named_imports() if layer_of(module) not in ALLOWED[user]]
    assert wrong == []
    for _, module, _ in named_imports():
        assert os.path.isfile(os.path.join(ROOT, *module.split(".")[1:]) + ".py"), module


def test_relative_imports_are_resolved():
    path = os.path.join(ROOT, "search", "run.py")
    assert module_name(path) == "scenetune.search.run"
    assert module_name(os.path.join(ROOT, "scenetune", "cli.py")) == "scenetune.cli"


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


def driver_side_modules() -> list[str]:
    """Every module of the layers the driver, the report and the CLI run
    (core, spaces, search, analysis, commands, the front door), every
    trainables module that search imports (the data check, the split), and
    the config models the registry names for the driver."""
    modules = {module_name(p) for layer, p in source_files()
               if layer in ("core", "spaces", "search", "analysis", "commands", "front")}
    modules |= {m for layer, p in source_files() if layer == "search" for m in imported_modules(p)
                if layer_of(m) == "trainables" and os.path.isfile(
                    os.path.join(ROOT, *m.split(".")[1:]) + ".py")}
    modules |= {module for user, module, _ in named_imports() if user == "search"}
    return sorted(modules)


def test_the_driver_side_modules_are_found():
    found = driver_side_modules()
    for module in ("scenetune.search.run", "scenetune.search.spec_input", "scenetune.analysis.trial_logs",
                   "scenetune.analysis.classifier_report", "scenetune.trainables.data.datacheck",
                   "scenetune.trainables.classifier.config", "scenetune.trainables.gan.config"):
        assert module in found


@pytest.mark.parametrize("part", range(4))
def test_no_driver_side_module_loads_tensorflow_or_keras(part):
    """Each driver-side module imported on its own (four processes share them):
    none loads TensorFlow or Keras."""
    modules = driver_side_modules()[part::4]
    code = ("import importlib, sys\nloaded = {}\n"
            f"for name in {modules!r}:\n"
            "    before = set(sys.modules)\n"
            "    importlib.import_module(name)\n"
            "    heavy = sorted(m for m in set(sys.modules) - before if m.split('.')[0] in ('tensorflow', 'keras'))\n"
            "    if heavy:\n        loaded[name] = heavy[:3]\n"
            "print(loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "{}"


def test_the_cli_help_runs_without_tensorflow():
    code = ("import sys\nfrom scenetune.cli import build_parser\nbuild_parser().format_help()\n"
            "print(any(m.startswith(('tensorflow', 'keras')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
