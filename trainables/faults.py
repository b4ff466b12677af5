"""Test-only fault injection, driven by the trial config's ``debug_fault``.

``{epoch: N, mode: once}``   raise after reporting epoch N (the retry resumes
                             from that checkpoint and does not fail again);
``{epoch: N, mode: always}`` raise before reporting epoch N, on every attempt;
``{epoch: N, mode: oom}``    allocate memory at epoch N until Ray's memory
                             monitor kills the worker; past ``oom_limit_mb``
                             it gives up and raises instead, so a node whose
                             monitor is off is not driven into the kernel's
                             OOM killer.
The fault tests use these to prove that retries, resumes and errored trials
behave; a real sweep leaves ``debug_fault`` unset.
"""

from __future__ import annotations

import time

STEP_MB = 64


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
        # 64 MiB steps, each touched so it is resident: small enough that the
        # monitor (refreshing every few hundred ms) acts well before a hard limit.
        while len(hoard) * STEP_MB < fault.oom_limit_mb:
            hoard.append(bytearray(STEP_MB << 20))
            hoard[-1][::4096] = b"\x01" * len(range(0, STEP_MB << 20, 4096))
            time.sleep(0.02)
        raise InjectedFault(f"debug_fault: allocated {fault.oom_limit_mb} MiB at epoch {epoch} and no memory "
                            "monitor stopped this trial")
