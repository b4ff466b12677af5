"""The trial processes' set-up hook (scenetune.trainables.warmup): an idle
process that Ray ends with SIGTERM while a garbage collection runs exits
without the "Exception ignored ... SystemExit" lines; any other exception
raised where Python cannot raise it is still reported."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import gc, sys, weakref
from scenetune.trainables.warmup import exit_quietly_when_ended
sys.unraisablehook = exit_quietly_when_ended
class Thing: pass
def ended(ref): raise {error}
kept = Thing(); ref = weakref.ref(kept, ended)
del kept; gc.collect()
print("still running")
"""


@pytest.mark.parametrize("error, reported", [("SystemExit(1)", False), ("ValueError('a bug')", True)])
def test_an_unraisable_system_exit_is_silent_and_other_errors_are_reported(error, reported):
    run = subprocess.run([sys.executable, "-c", SCRIPT.format(error=error)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0 and "still running" in run.stdout, run.stderr
    assert ("Exception ignored" in run.stderr) is reported, run.stderr
    assert ("ValueError: a bug" in run.stderr) is reported
