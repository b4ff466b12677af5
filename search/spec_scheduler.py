"""The ``scheduler`` block of a sweep spec: its model and its checks
against the trainable and the trials' epochs (:mod:`scenetune.search.spec`
calls :func:`check_scheduler` once the rest of the spec is valid)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from scenetune.core.registry import SWEEP_SCHEDULERS, trainable
from scenetune.core.rungs import asha_rungs, hyperband_brackets
from scenetune.search.spec_input import SpecError, Strict
from scenetune.spaces.params import brief

# The most epochs a scheduler's max_t may count (the trainables' configs cap
# their epochs alike): the rung schedule is replayed epoch by epoch.
MAX_T = 10_000
# The most rungs (milestones) between grace_period and max_t a scheduler may
# have: a reduction_factor just above 1 would make millions.
MAX_RUNGS = 100


# What the scheduler ranks trials by at its rungs when the spec does not say:
# a classifier's validation accuracy ties at chance in its first epochs (most
# trials of a sweep sit within the noise of one another there), its loss
# already tells them apart (benchmarks/early_stopping.py measures the choice).
RANK_AT_RUNGS = {("classifier", "val_accuracy"): ("val_loss", "min")}


class SchedulerSpec(Strict):
    name: Literal[SWEEP_SCHEDULERS] = Field(
        "asha", description="asha: asynchronous successive halving; hyperband: Ray's synchronous HyperBand "
                            "(KerasTuner's algorithm: brackets that pause trials at each milestone); none")
    max_t: int | None = Field(None, ge=1, le=MAX_T, description="default: the trials' epochs")
    grace_period: int = Field(1, ge=1, description="ASHA: the first rung, in epochs")
    reduction_factor: float = Field(3, gt=1)
    brackets: int = Field(1, ge=1, le=8, description="ASHA: bracket s first judges a trial at grace_period * "
                                               "reduction_factor**s (Ray draws each trial's bracket)")
    quorum: int | None = Field(None, ge=1, description="ASHA: results a rung needs before it judges a trial; one "
                                                      "that reaches the rung sooner is paused (held) until then, "
                                                      "then resumed or stopped. Default: reduction_factor, rounded "
                                                      "up; 1: judge at once (Ray's ASHA: the first trials pass)")
    metric: str | None = Field(None, description="rank trials at the rungs by this metric (default: val_loss for a "
                                                 "classifier sweep of val_accuracy, else the sweep's metric)")
    mode: Literal["max", "min"] | None = None


def _resize_at_rungs(spec) -> None:
    """Progressive resizing grows the image at ASHA's rungs: a trial that ASHA
    lets past rung k (epoch grace * factor**k) trains its next phase larger."""
    sizes = spec.fixed.get("progressive_resize")
    if not sizes or spec.fixed.get("resize_epochs") is not None:
        return
    sched = spec.scheduler
    if sched.name != "asha":
        raise SpecError("fixed.progressive_resize: without ASHA, set fixed.resize_epochs (the epoch each size starts)")
    if sched.max_t is None:
        sched.max_t = spec.max_epochs()
    rungs = asha_rungs(sched.model_dump(), bracket=0)
    if len(rungs) < len(sizes) - 1:
        raise SpecError(f"fixed.progressive_resize: {len(sizes)} sizes need {len(sizes) - 1} ASHA rungs before "
                        f"max_t; the scheduler has {len(rungs)} ({rungs})")
    spec.fixed["resize_epochs"] = [0] + rungs[:len(sizes) - 1]


def _check_rung_count(spec) -> None:
    """Refuse a schedule of more than MAX_RUNGS milestones before anything
    lists them (a factor of 1.000001 makes millions)."""
    sched = spec.scheduler
    if sched.name == "none":
        return
    max_t = sched.max_t or spec.max_epochs()
    if max_t > MAX_T:
        raise SpecError(f"scheduler.max_t: the trials' {max_t} epochs exceed the scheduler's limit of {MAX_T}")
    lowest = 1 if sched.name == "hyperband" else min(sched.grace_period, max_t)
    rungs = math.log(max_t / lowest) / math.log(sched.reduction_factor)
    if rungs > MAX_RUNGS:
        raise SpecError(f"scheduler.reduction_factor: {sched.reduction_factor} makes {rungs:.0f} milestones up to "
                        f"max_t {max_t}; at most {MAX_RUNGS} (raise the factor)")


def check_scheduler(spec) -> None:
    """The spec's ``scheduler`` block against its trainable and epochs; resolves
    ``max_t``, the ranking metric, ``quorum`` and progressive resizing's epochs."""
    sched = spec.scheduler
    _check_rung_count(spec)
    _resize_at_rungs(spec)
    if sched.name == "none":
        if sched.metric or sched.mode:
            raise SpecError("scheduler.metric: only ASHA and HyperBand rank trials at rungs; scheduler.name is none")
        if sched.quorum is not None:
            raise SpecError("scheduler.quorum: applies to ASHA only; scheduler.name is none")
        return
    if sched.name == "hyperband":
        for key in ("grace_period", "brackets", "quorum"):  # the defaults pass: a stored resolved spec holds them
            if getattr(sched, key) != SchedulerSpec.model_fields[key].default:
                raise SpecError(f"scheduler.{key}: applies to ASHA only; HyperBand's brackets start at "
                                "max_t / reduction_factor**s")
    if sched.name == "asha" and sched.quorum is None:
        sched.quorum = math.ceil(sched.reduction_factor)
    if (sched.metric is None) != (sched.mode is None):
        raise SpecError("scheduler.metric and scheduler.mode: give both (e.g. val_loss, min) or neither")
    if sched.metric is None:
        sched.metric, sched.mode = RANK_AT_RUNGS.get((spec.trainable, spec.metric), (None, None))
    known = list(trainable(spec.trainable).known_metrics)
    if sched.metric is not None and sched.metric not in known:
        raise SpecError(f"scheduler.metric: {brief(sched.metric)} is not reported by {spec.trainable}; "
                        f"known: {', '.join(known)}")
    epochs = spec.max_epochs()
    if sched.max_t is None:
        sched.max_t = epochs
    if sched.grace_period > sched.max_t:
        raise SpecError(f"scheduler.grace_period: {sched.grace_period} exceeds scheduler.max_t ({sched.max_t})")
    band = sum(trials for trials, _ in hyperband_brackets(sched.model_dump()))
    if band and spec.search.max_concurrent is not None and spec.search.max_concurrent < band:
        raise SpecError(f"search.max_concurrent: HyperBand (max_t {sched.max_t}, factor {sched.reduction_factor:g}) "
                        f"keeps a band of {band} trials live at once, paused ones included; "
                        f"{spec.search.max_concurrent} would starve its brackets (raise it to {band} or leave it "
                        "unset: Ray runs as many as the resources hold)")
