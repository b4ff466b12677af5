"""The epochs at which Ray Tune's schedulers judge a trial, computed once and
exactly as Ray computes them (the tests compare them with Ray's own
scheduler objects): ASHA's rungs, HyperBand's brackets and milestones. The
spec's checks, progressive resizing, the checkpoint schedule and the report
all read them here. numpy's logs, as Ray takes them (imported when called)."""

from __future__ import annotations

import math


def asha_rungs(scheduler: dict, bracket: int | None = None) -> list[int]:
    """The epochs at which Ray Tune's ``ASHAScheduler`` judges a trial, for
    the spec's ``scheduler`` block: of one ``bracket``, or of all of them
    (None). Bracket s's milestones are ``grace_period * reduction_factor**(k
    + s)``, as many as ``int(log(max_t / grace) / log(factor) - s + 1)``
    (numpy's logs, as Ray takes them); a trial is judged at the first epoch
    that reaches one, so a fractional milestone (factor 1.5) is judged at the
    epoch above it."""
    if scheduler.get("name") != "asha" or not scheduler.get("max_t"):
        return []
    import numpy
    max_t, grace, factor = scheduler["max_t"], scheduler.get("grace_period", 1), scheduler.get("reduction_factor", 4)
    brackets = range(scheduler.get("brackets") or 1) if bracket is None else [bracket]
    return sorted({math.ceil(grace * factor ** (k + s)) for s in brackets
                   for k in range(int(numpy.log(max_t / grace) / numpy.log(factor) - s + 1))})


def hyperband_brackets(scheduler: dict) -> list[tuple[int, int]]:
    """``(trials, first milestone)`` of each bracket of one band of Ray Tune's
    ``HyperBandScheduler``: bracket s holds ``ceil(s_max / (s + 1) *
    factor**s)`` trials and first pauses them at ``int(max_t * factor**-s)``
    (a bracket that would start at 0 is skipped, as Ray skips it)."""
    if scheduler.get("name") != "hyperband" or not scheduler.get("max_t"):
        return []
    import numpy
    max_t, factor = scheduler["max_t"], scheduler.get("reduction_factor", 3)
    s_max = int(numpy.round(numpy.log(max_t) / numpy.log(factor))) + 1
    return [(int(numpy.ceil(s_max / (s + 1) * factor ** s)), int(max_t * factor ** (-s))) for s in range(s_max)
            if int(max_t * factor ** (-s)) > 0]


def hyperband_milestones(scheduler: dict) -> list[int]:
    """The epochs at which Ray Tune's ``HyperBandScheduler`` pauses a trial
    and halves its bracket: each bracket's first milestone, multiplied by the
    factor (truncated) at each halving, up to ``max_t``."""
    milestones = set()
    max_t, factor = scheduler.get("max_t"), scheduler.get("reduction_factor", 3)
    for halvings, (_, r) in enumerate(hyperband_brackets(scheduler)):
        milestones.add(r)
        for _ in range(halvings):
            r = int(min(r * factor, max_t))
            milestones.add(r)
    return sorted(milestones)


def scheduler_rungs(scheduler: dict) -> list[int]:
    """The epochs at which the spec's scheduler may stop (or pause) a trial:
    ASHA's rungs over all its brackets, or HyperBand's milestones."""
    return asha_rungs(scheduler) or hyperband_milestones(scheduler)
