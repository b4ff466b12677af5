"""The epochs at which Ray Tune's schedulers judge a trial, computed once and
exactly as Ray computes them (the tests compare them with Ray's own
scheduler objects): ASHA's rungs, HyperBand's brackets and milestones. The
spec's checks, progressive resizing, the checkpoint schedule and the report
all read them here. numpy's logs, as Ray takes them (imported when called)."""

from __future__ import annotations


def asha_rungs(scheduler: dict, bracket: int | None = None) -> list[int]:
    """The epochs at which Ray Tune's ``ASHAScheduler`` judges a trial that
    reports every epoch, for the spec's ``scheduler`` block: of one
    ``bracket``, or of all of them (None)."""
    if scheduler.get("name") != "asha" or not scheduler.get("max_t"):
        return []
    max_t, grace, factor = scheduler["max_t"], scheduler.get("grace_period", 1), scheduler.get("reduction_factor", 4)
    brackets = range(scheduler.get("brackets") or 1) if bracket is None else [bracket]
    return sorted({epoch for s in brackets for epoch in _judged_epochs(max_t, grace, factor, s)})


def _judged_epochs(max_t: int, grace: int, factor: float, s: int) -> list[int]:
    """Ray's ``_Bracket.on_result``, replayed for one trial: bracket s's
    milestones are ``grace * factor**(k + s)``, as many as ``int(log(max_t /
    grace) / log(factor) - s + 1)`` (numpy's logs, as Ray takes them). At
    each epoch the trial is judged at the highest milestone it has reached
    and not yet been judged at, if any: a fractional milestone is judged at
    the epoch above it, and when two milestones fall between the same epochs
    (factor 1.3) the lower one is judged at a later epoch."""
    import numpy

    count = int(numpy.log(max_t / grace) / numpy.log(factor) - s + 1)
    milestones = [grace * factor ** (k + s) for k in reversed(range(count))]
    recorded, judged = set(), []
    for epoch in range(1, int(max_t) + 1):
        for i, milestone in enumerate(milestones):
            if epoch >= milestone and i not in recorded:
                recorded.add(i)
                judged.append(epoch)
                break
    return judged


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
