"""The sweep spec: YAML, validated on load. Unknown keys, keys given twice and
wrong types are errors that name the key (``search.num_samples: ...``), in one
line; every ``fixed:`` value and every value a ``space:`` declaration can take
is checked against the trainable's own config model before Ray starts.

Types are strict: a number is a YAML number (``true`` and ``"8"`` are not; an
integer is accepted where a float is expected, not the other way round), and
NaN and infinities are refused.
"""

from __future__ import annotations

import copy
import math
import os
from typing import Any, Literal

import yaml
from pydantic import Field, StrictInt, ValidationError, field_validator, model_validator

from scenetune.core import storage
from scenetune.core.registry import SAMPLERS, TRAINABLES, trainable
from scenetune.core.rungs import scheduler_rungs
from scenetune.search.spec_input import SpecError, Strict, describe, read_spec_file
from scenetune.search.spec_scheduler import SchedulerSpec, check_scheduler
from scenetune.spaces import Param, SpaceError, deep_merge, get_path, parse_space, set_path
from scenetune.spaces.params import brief, shown

__all__ = ["SpecError", "SweepSpec", "SchedulerSpec", "load_spec", "parse_spec"]


class SplitSpec(Strict):
    train: float = Field(0.6, ge=0, le=1)
    val: float = Field(0.2, ge=0, le=1)
    test: float = Field(0.2, ge=0, le=1)
    seed: int = Field(42, ge=0, le=2 ** 32 - 1)
    official: bool = Field(False, description="mit67: test from TestImages.txt, val carved from TrainImages.txt")

    @model_validator(mode="after")
    def _sums_to_one(self):
        if not self.official and abs(self.train + self.val + self.test - 1) > 1e-6:
            raise ValueError(f"train + val + test must add up to 1, got {self.train + self.val + self.test:g}")
        if self.train <= 0 or self.val <= 0:
            raise ValueError("train and val fractions must be > 0")
        return self


class DataSpec(Strict):
    dataset: Literal["mit67", "folder"] = "mit67"
    root: str
    categories: Literal["all", "seed25"] | list[str] = "all"
    split: SplitSpec = SplitSpec()
    max_bad_fraction: float = Field(0.01, ge=0, le=1, description="refuse the sweep above this share of "
                                                                  "undecodable files (the data check)")


class SearchSpec(Strict):
    algorithm: Literal["optuna", "random", "grid"] = "optuna"
    sampler: Literal[SAMPLERS] = "tpe"
    num_samples: int = Field(8, ge=1)
    max_concurrent: int | None = Field(None, ge=1)
    seed: int = Field(0, ge=0, le=2 ** 32 - 1)
    points: list[dict[str, Any]] = Field(
        [], description="configurations tried first (keys declared in space; the rest sampled)")
    warm_start: list[str] = Field(
        [], description="earlier experiments (paths, s3://, gs://) whose finished trials that lie in this space "
                        "enter the Optuna study before its first trial (docs/spec.md#warm-start)")
    warm_start_other_sizes: Literal["prior", "leave_out"] = Field(
        "prior", description="earlier trials that ran at another fixed image_size: used as a prior (their "
                             "results as they were, the image size aside) or left out (docs/spec.md#warm-start)")
    warm_start_rerun_best: int = Field(
        3, ge=0, description="of the earlier trials that ran at another fixed image_size, the configurations of "
                             "this many best (by their last value) run first, after search.points; 0: none "
                             "(docs/spec.md#warm-start)")
    warm_start_prior: Literal["auto", "whole", "startup"] = Field(
        "auto", description="what the earlier trials guide: the whole sweep (TPE sees them to the end), or only "
                            "its start-up trials, TPE seeing the sweep's own trials alone after them; auto: the "
                            "whole sweep when they ran at another image size, else the start-up "
                            "(docs/spec.md#warm-start)")


class ResourcesSpec(Strict):
    cpu: float = Field(1, gt=0)
    gpu: float = Field(0, ge=0)
    reuse_processes: bool = Field(
        True, description="run trials of the same resources one after another in one warm worker process "
                          "(TensorFlow imported once); false: a fresh process per trial")
    recycle_at_growth_mb: float = Field(
        1024, ge=0, description="replace a warm process whose resident memory grew this much since its first "
                                "trial (TensorFlow keeps a few MB of each trained model); 0: never")


class FailureSpec(Strict):
    max_failures: int = Field(2, ge=-1, description="-1: retry forever")


class CheckpointSpec(Strict):
    num_to_keep: int = Field(2, ge=1)
    frequency: Literal["auto", "rungs"] | StrictInt = Field(
        "auto", description="when trials checkpoint besides their last epoch. rungs: at ASHA's rungs (where it "
                            "stops trials); auto: the rungs and every quarter of the epochs (where a retry "
                            "resumes); N: every N epochs")

    @field_validator("frequency")
    @classmethod
    def _positive(cls, v):
        if isinstance(v, int) and v < 1:
            raise ValueError(f"every N epochs needs N >= 1, got {v}")
        return v


class Objective(Strict):
    metric: str
    mode: Literal["max", "min"]


class Constraint(Strict):
    """A bound on a reported metric (core/constraints.py): trials past it are infeasible."""
    metric: str
    max: float | None = None
    min: float | None = None


class SweepSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    trainable: str = "classifier"
    data: DataSpec
    metric: str = "val_accuracy"
    mode: Literal["max", "min"] = "max"
    objectives: list[Objective] = Field(
        [], description="two or more: a multi-objective (Pareto) search; metric/mode become the first one's")
    constraints: list[Constraint] = Field(
        [], description="bounds on reported metrics, e.g. {metric: latency_ms, max: 15}: Optuna's samplers learn "
                        "where trials keep them; best and the report rank the trials that do")
    search: SearchSpec = SearchSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    resources: ResourcesSpec = ResourcesSpec()
    failure: FailureSpec = FailureSpec()
    checkpoint: CheckpointSpec = CheckpointSpec()
    storage: str = "./results"
    space: dict[str, Any] = {}
    fixed: dict[str, Any] = {}

    @property
    def params(self) -> dict[str, Param]:
        return parse_space(self.space)

    @property
    def experiment_uri(self) -> str:
        return storage.join(self.storage, self.name)

    def max_epochs(self) -> int:
        """The most epochs any trial can run (``fixed`` or the searched maximum)."""
        epochs = self.params.get("epochs")
        if epochs is not None:
            return int(max(epochs.args) if epochs.is_categorical else epochs.high)
        return int(get_path(self.fixed, "epochs", trainable(self.trainable).config_model().model_fields["epochs"].default))

    def checkpoint_epochs(self) -> list[int]:
        """The epochs at which trials checkpoint, besides each trial's last
        (which always does), from ``checkpoint.frequency``."""
        every, epochs = self.checkpoint.frequency, self.max_epochs()
        rungs = set(scheduler_rungs(self.scheduler.model_dump()))
        if isinstance(every, int):  # and where ASHA may hold a trial: it resumes from there
            held_at = rungs if (self.scheduler.quorum or 1) > 1 else set()
            return sorted(e for e in set(range(every, epochs, every)) | held_at if 0 < e < epochs)
        chosen = rungs | {self.scheduler.max_t or 0}
        if every == "auto":  # a crash loses at most a quarter of a trial's epochs
            chosen |= set(range(math.ceil(epochs / 4), epochs, math.ceil(epochs / 4)))
        return sorted(e for e in chosen if 0 < e < epochs)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def parse_spec(raw: Any, overrides: dict | None = None) -> SweepSpec:
    """Validate a spec mapping (plus CLI overrides such as ``search.num_samples``)."""
    if not isinstance(raw, dict):
        raise SpecError("spec: the file must hold a YAML mapping")
    raw = copy.deepcopy(raw)
    for key, value in (overrides or {}).items():
        if value is not None:
            set_path(raw, key, value)
    name = raw.get("trainable", "classifier")
    if isinstance(name, str) and name not in TRAINABLES:  # not a string: the model says so
        raise SpecError(f"trainable: unknown trainable {brief(name)}; known: {', '.join(TRAINABLES)}")
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as e:
        raise SpecError(describe(e)) from None
    known = list(trainable(spec.trainable).known_metrics)
    if spec.metric not in known:
        raise SpecError(f"metric: {brief(spec.metric)} is not reported by {spec.trainable}; known: {', '.join(known)}")
    _check_objectives(spec, raw, known)
    _check_constraints(spec, known)
    _check_space(spec)
    _check_data(spec)
    check_scheduler(spec)
    return spec


def load_spec(path: str, overrides: dict | None = None) -> SweepSpec:
    """Read, check and resolve a spec file; any fault is a one-line SpecError."""
    return parse_spec(read_spec_file(path, SpecError), overrides)


def _check_objectives(spec: SweepSpec, raw: dict, known: list[str]) -> None:
    """A multi-objective spec: Optuna samples the Pareto front; ASHA (which
    ranks one number) ranks by the first objective, which ``metric`` names."""
    if not spec.objectives:
        return
    if len(spec.objectives) < 2:
        raise SpecError("objectives: list two or more (one objective is metric/mode)")
    for i, objective in enumerate(spec.objectives):
        if objective.metric not in known:
            raise SpecError(f"objectives[{i}].metric: {brief(objective.metric)} is not reported by {spec.trainable}")
    if len({o.metric for o in spec.objectives}) != len(spec.objectives):
        raise SpecError("objectives: a metric is listed twice")
    if spec.search.algorithm != "optuna":
        raise SpecError("objectives: multi-objective search needs search.algorithm optuna")
    first = spec.objectives[0]
    if ("metric" in raw and raw["metric"] != first.metric) or ("mode" in raw and raw["mode"] != first.mode):
        raise SpecError(f"metric: with objectives, metric and mode are the first objective's ({first.metric}, "
                        f"{first.mode}); leave them out")
    spec.metric, spec.mode = first.metric, first.mode


def _check_constraints(spec: SweepSpec, known: list[str]) -> None:
    for i, constraint in enumerate(spec.constraints):
        if constraint.metric not in known:
            raise SpecError(f"constraints[{i}].metric: {brief(constraint.metric)} is not reported by "
                            f"{spec.trainable}; known: {', '.join(known)}")
        if constraint.max is None and constraint.min is None:
            raise SpecError(f"constraints[{i}]: give max, min or both for {constraint.metric}")
        if constraint.max is not None and constraint.min is not None and constraint.min > constraint.max:
            raise SpecError(f"constraints[{i}]: min {constraint.min:g} is above max {constraint.max:g}")
    if len({c.metric for c in spec.constraints}) != len(spec.constraints):
        raise SpecError("constraints: a metric is listed twice (give one entry both bounds)")


def _check_space(spec: SweepSpec) -> None:
    try:
        params = spec.params
    except SpaceError as e:
        raise SpecError(str(e)) from None
    model = trainable(spec.trainable).config_model()
    try:
        model.model_validate(spec.fixed)
    except ValidationError as e:
        raise SpecError(describe(e, "fixed.")) from None
    for key, param in params.items():
        if get_path(spec.fixed, key) is not None:
            raise SpecError(f"space.{key}: also set in fixed; a key is either searched or fixed")
        if param.kind == "grid" and spec.search.algorithm == "optuna":
            raise SpecError(f"space.{key}: grid declarations need search.algorithm grid or random")
        if spec.search.algorithm == "grid" and not param.is_categorical:
            raise SpecError(f"space.{key}: search.algorithm grid takes only choice or grid declarations")
        if key == "pooling" and "backbone" in params:
            continue  # which pooling applies depends on the backbone: _check_combinations
        for value in param.args[:2] if not param.is_categorical else param.args:
            candidate = copy.deepcopy(spec.fixed)
            set_path(candidate, key, value)
            try:
                model.model_validate(candidate)
            except ValidationError as e:
                detail = describe(e).split(": ", 1)[-1]
                raise SpecError(f"space.{key}: value {brief(value)} is not accepted: {detail}") from None
    _check_combinations(spec, params, model)
    _check_points(spec, params, model)
    if spec.search.warm_start and (spec.search.algorithm != "optuna" or not params):
        raise SpecError("search.warm_start: needs search.algorithm optuna and a space to search")


def _point_items(point: dict, params: dict[str, Param]):
    """``(dotted key, value)`` of a point, as ``flatten`` gives them, but
    descending only into groups that lead to a declared key: an undeclared
    mapping ends the walk there (however many leaves YAML aliases give it)."""
    groups = {".".join(key.split(".")[:i]) for key in params for i in range(1, key.count(".") + 1)}
    stack = [("", point)]
    while stack:
        prefix, tree = stack.pop()
        for key, value in tree.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) and value and path in groups:
                stack.append((path, value))
            else:
                yield path, value


def _check_points(spec: SweepSpec, params: dict[str, Param], model) -> None:
    for i, point in enumerate(spec.search.points):
        candidate = copy.deepcopy(spec.fixed)
        for key, value in _point_items(point, params):
            where = f"search.points[{i}].{shown(key)}"
            if key not in params:
                raise SpecError(f"{where}: not declared in space (points may only pick searched values)")
            if not params[key].contains(value):
                raise SpecError(f"{where}: {brief(value)} is outside space.{key} {params[key].to_dict()}")
            set_path(candidate, key, value)
        try:
            model.model_validate(candidate)
        except ValidationError as e:
            raise SpecError(f"search.points[{i}]: {describe(e)}") from None


def _check_combinations(spec: SweepSpec, params: dict[str, Param], model) -> None:
    """Joint limits no single value shows: each backbone at the smallest image
    size, and with each searched pooling (flatten is basic_cnn's only)."""
    if "backbone" in params and "pooling" in params:
        for backbone in params["backbone"].args:
            for pooling in params["pooling"].args:
                try:
                    model.model_validate(deep_merge(spec.fixed, {"backbone": backbone, "pooling": pooling}))
                except ValidationError as e:
                    raise SpecError(f"space.pooling: {describe(e).split(': ', 1)[-1]} (space.backbone can "
                                    f"pick {backbone}: search pooling in a separate sweep per backbone kind)") from None
    if "backbone" not in params or "image_size" not in params:
        return
    size = params["image_size"]
    smallest = min(size.args) if size.is_categorical else size.low
    for backbone in params["backbone"].args:
        candidate = deep_merge(spec.fixed, {"backbone": backbone, "image_size": smallest})
        try:
            model.model_validate(candidate)
        except ValidationError as e:
            raise SpecError(f"space.image_size: {describe(e).split(': ', 1)[-1]} "
                            f"(space.backbone can pick {backbone})") from None


def _check_data(spec: SweepSpec) -> None:
    root = os.path.expanduser(spec.data.root)
    if not os.path.isdir(root):
        raise SpecError(f"data.root: {shown(spec.data.root)} does not exist or is not a directory")
    spec.data.root = os.path.abspath(root)
