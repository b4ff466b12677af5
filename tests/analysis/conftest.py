"""A copy of an experiment per test (the known experiments are in tests/conftest.py)."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture
def copy_of(tmp_path):
    """``copy_of(uri) -> path``: a private copy of a session experiment."""
    def copy(uri: str) -> str:
        target = tmp_path / os.path.basename(uri)
        shutil.copytree(uri, target)
        return str(target)
    return copy
