"""Search-space parameters declared as plain data.

A sweep spec's ``space:`` maps a (possibly dotted) config key to exactly one
declaration::

    backbone:               {choice: [mobilenet_v2, basic_cnn]}
    learning_rate:          {loguniform: [1.0e-5, 1.0e-2]}
    trainable_layers:       {int: [0, 40]}          # both ends inclusive
    augment.rotation_range: {uniform: [0, 30]}

``parse_space`` turns that mapping into :class:`Param` objects, checking every
declaration and naming the key at fault; :mod:`scenetune.spaces.convert` is the one
place that turns them into Ray Tune domains and Optuna distributions. A Param
round-trips through JSON (``to_dict`` / ``Param.from_dict``), like Optuna's
distributions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scenetune.core.errors import UserError

# kind -> (number of arguments, description used in error messages)
KINDS: dict[str, tuple[int | None, str]] = {
    "choice": (None, "a non-empty list of values"),
    "grid": (None, "a non-empty list of values, each tried once (grid search)"),
    "uniform": (2, "[low, high]"),
    "quniform": (3, "[low, high, step]"),
    "loguniform": (2, "[low, high], low > 0"),
    "int": (2, "[low, high], integers, both inclusive"),
    "qint": (3, "[low, high, step], integers, both inclusive"),
    "logint": (2, "[low, high], integers, low >= 1, both inclusive"),
}

SCALAR = (str, int, float, bool, type(None))


class SpaceError(UserError, ValueError):
    """A declaration that cannot be used; ``key`` names the space entry."""

    def __init__(self, key: str, message: str):
        super().__init__(f"space.{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class Param:
    """One searched parameter: its dotted config key, its kind and arguments."""

    key: str
    kind: str
    args: tuple

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))

    @property
    def low(self) -> float:
        return self.args[0]

    @property
    def high(self) -> float:
        return self.args[1]

    @property
    def step(self) -> float | None:
        return self.args[2] if self.kind in ("quniform", "qint") else None

    @property
    def is_categorical(self) -> bool:
        return self.kind in ("choice", "grid")

    def contains(self, value: Any) -> bool:
        """True when ``value`` is one this parameter can take."""
        if self.is_categorical:
            return value in self.args
        if self.kind in ("int", "qint", "logint") and int(value) != value:
            return False
        if not self.low <= value <= self.high:
            return False
        step = self.step
        if step is not None:
            k = (value - self.low) / step
            return math.isclose(k, round(k), abs_tol=1e-6)
        return True

    def to_dict(self) -> dict:
        return {self.kind: list(self.args)}

    @classmethod
    def from_dict(cls, key: str, raw: Any) -> "Param":
        return _parse_one(key, raw)


def parse_space(raw: Any) -> dict[str, Param]:
    """Validate a ``space:`` mapping; returns ``{dotted key: Param}``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpaceError("", "must be a mapping of parameter name to declaration")
    params = {}
    for key, decl in raw.items():
        if not isinstance(key, str) or not key or any(not p for p in key.split(".")):
            raise SpaceError(str(key), "parameter names are non-empty dotted strings")
        params[key] = _parse_one(key, decl)
    _check_no_prefix_clash(params)
    return params


def _parse_one(key: str, decl: Any) -> Param:
    if not isinstance(decl, dict) or len(decl) != 1:
        raise SpaceError(key, f"needs exactly one of {sorted(KINDS)}, e.g. {{uniform: [0, 1]}}")
    (kind, args), = decl.items()
    if kind not in KINDS:
        raise SpaceError(key, f"unknown kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    nargs, shape = KINDS[kind]
    if not isinstance(args, (list, tuple)):
        raise SpaceError(key, f"{kind} takes {shape}, got {args!r}")
    args = tuple(args)
    if nargs is None:
        if not args:
            raise SpaceError(key, f"{kind} needs {shape}; the list is empty")
        for value in args:
            if not isinstance(value, SCALAR):
                raise SpaceError(key, f"{kind} values must be strings, numbers, booleans or null, got {value!r}")
        if len(set(map(repr, args))) != len(args):
            raise SpaceError(key, f"{kind} lists a value twice")
        return Param(key, kind, args)
    if len(args) != nargs:
        raise SpaceError(key, f"{kind} takes {shape}, got {list(args)!r}")
    for value in args:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpaceError(key, f"{kind} takes numbers {shape}, got {value!r}")
    low, high = args[0], args[1]
    if kind in ("int", "qint", "logint"):
        if any(int(v) != v for v in args):
            raise SpaceError(key, f"{kind} takes integers {shape}, got {list(args)!r}")
        args = tuple(int(v) for v in args)
        low, high = args[0], args[1]
    else:
        args = tuple(float(v) for v in args)
        low, high = args[0], args[1]
    if low > high:
        raise SpaceError(key, f"low ({low}) > high ({high})")
    if kind == "loguniform" and low <= 0:
        raise SpaceError(key, f"loguniform needs low > 0, got {low}")
    if kind == "logint" and low < 1:
        raise SpaceError(key, f"logint needs low >= 1, got {low}")
    if kind in ("quniform", "qint"):
        step = args[2]
        if step <= 0:
            raise SpaceError(key, f"step must be > 0, got {step}")
        n = (high - low) / step
        if not math.isclose(n, round(n), abs_tol=1e-9):
            raise SpaceError(key, f"high - low ({high - low:g}) is not a multiple of step ({step:g})")
    return Param(key, kind, args)


def _check_no_prefix_clash(params: dict[str, Param]) -> None:
    for key in params:
        parts = key.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            if prefix in params:
                raise SpaceError(key, f"clashes with {prefix!r}: a key cannot be both a value and a group")
