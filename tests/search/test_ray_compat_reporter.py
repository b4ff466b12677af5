"""When Ray's ``ray.tune.experimental.output`` lacks a part that
``quiet_trial_boxes`` (search/ray_compat.py) replaces or reads: the trial
boxes are left as they are, with one warning line (tests/search/test_ray_compat.py
shows the patch at work)."""

from __future__ import annotations

import inspect
import logging

import pytest
from ray.tune.experimental import output

from scenetune.search import ray_compat
from scenetune.search.ray_compat import quiet_trial_boxes
from tests.search.test_ray_compat import one_warning_line


def _without_instance_attr(monkeypatch, attr: str) -> None:
    init = output.ProgressReporter.__init__

    def init_without(self, *args, **kwargs):
        init(self, *args, **kwargs)
        delattr(self, attr)

    monkeypatch.setattr(output.ProgressReporter, "__init__", init_without)


@pytest.mark.parametrize("missing", ["TuneTerminalReporter", "setup", "_start_end_verbosity", "experiment_started",
                                     "_verbosity", "_last_heartbeat_time"])
def test_reporter_parts_this_ray_lacks_leave_the_boxes_as_they_are_with_one_warning_line(monkeypatch, caplog,
                                                                                        missing):
    before = {cls: dict(vars(cls)) for cls in (output.TuneReporterBase, output.TuneTerminalReporter)}
    if missing == "TuneTerminalReporter":
        monkeypatch.delattr(output, missing)
    elif missing in ray_compat.REPORTER_INSTANCE_ATTRS:
        _without_instance_attr(monkeypatch, missing)
    else:  # gone from the class and every class it inherits from (Ray's Callback has a setup)
        for cls in inspect.getmro(output.TuneTerminalReporter):
            if missing in vars(cls):
                monkeypatch.delattr(cls, missing)
        before = {cls: dict(vars(cls)) for cls in before}
    with caplog.at_level(logging.WARNING, logger=ray_compat.__name__), quiet_trial_boxes() as in_place:
        assert in_place is False
        assert {cls: dict(vars(cls)) for cls in before} == before, "nothing patched"
    one_warning_line(caplog, missing)
