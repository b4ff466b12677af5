"""``pip install .`` installs one top-level name, ``scenetune``, and the CLI
and API work from the installed copy (not from this checkout)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from this checkout, installed (without its
    dependencies, which this environment has) into a folder of its own."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # the tracked files only: no stale build/ or egg-info of this checkout
    for name in subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.splitlines():
        if os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(source / os.path.dirname(name), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp / "dist"), str(source)], check=True, cwd=tmp)
    (wheel,) = (tmp / "dist").iterdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                    str(tmp / "site"), str(wheel)], check=True, cwd=tmp)
    return wheel, tmp / "site"


def run_installed(site, *code_or_args: str, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run([sys.executable, *code_or_args], capture_output=True, text=True, env=env, cwd=cwd)


def test_the_wheel_holds_one_top_level_package(installed):
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"scenetune"}
    for module in ("scenetune/cli.py", "scenetune/api.py", "scenetune/core/storage.py", "scenetune/search/spec.py",
                   "scenetune/trainables/classifier/train.py", "scenetune/trainables/data/seed25_counts.csv",
                   "scenetune/analysis/report.py", "scenetune/commands/evaluate.py"):
        assert module in names


def test_the_installed_cli_and_api_run_from_the_installed_copy(installed, tmp_path):
    _, site = installed
    where = run_installed(site, "-c", "import scenetune.cli, scenetune.api, scenetune.trainables.data.datasets as d;"
                          "print(scenetune.cli.__file__); print(len(d.seed25_counts()))", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    path, count = where.stdout.split()
    assert path.startswith(str(site)) and count == "25"
    synth = run_installed(site, "-m", "scenetune.cli", "data", "synth", str(tmp_path / "d"), "--classes", "2",
                          "--per-class", "2", "--size", "16", cwd=tmp_path)
    assert synth.returncode == 0, synth.stderr
    assert sorted(os.listdir(tmp_path / "d" / "Images")) and "wrote 4 images" in synth.stdout
    bad = run_installed(site, "-m", "scenetune.cli", "sweep", "missing.yaml", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip() == "scenetune: error: missing.yaml: no such spec file"
