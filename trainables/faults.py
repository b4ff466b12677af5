"""Test-only fault injection, driven by the trial config's ``debug_fault``.

``{epoch: N, mode: once}``   raise after reporting epoch N (the retry resumes
                             from that checkpoint and does not fail again);
``{epoch: N, mode: always}`` raise before reporting epoch N, on every attempt;
``{epoch: N, mode: oom}``    allocate memory at epoch N until Ray's memory
                             monitor kills the worker.
The fault tests use these to prove that retries, resumes and errored trials
behave; a real sweep leaves ``debug_fault`` unset.
"""

from __future__ import annotations

import time


class InjectedFault(RuntimeError):
    """The failure a test asked for."""


def inject_fault(fault, epoch: int, before_report: bool) -> None:
    if fault is None or fault.epoch != epoch:
        return
    if fault.mode == "always" and before_report:
        raise InjectedFault(f"debug_fault: failing at epoch {epoch} (mode always)")
    if fault.mode == "once" and not before_report:
        raise InjectedFault(f"debug_fault: failing after epoch {epoch} (mode once)")
    if fault.mode == "oom" and before_report:
        hoard = []
        while True:  # ~1 GiB a step until the memory monitor ends this process
            hoard.append(bytearray(1 << 30))
            for i in range(0, len(hoard[-1]), 4096):
                hoard[-1][i] = 1
            time.sleep(0.05)
