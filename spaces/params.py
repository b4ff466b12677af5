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
import re
import reprlib
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
# A parameter name is a dotted path of identifiers, as the config models name their fields.
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# Integer bounds a sampler can draw (Ray and Optuna sample into numpy's int64).
INT_LIMIT = 2 ** 63 - 1


_BRIEF = reprlib.Repr()  # Python 3.11's takes no arguments
_BRIEF.maxlevel, _BRIEF.maxstring, _BRIEF.maxother, _BRIEF.maxlong = 2, 60, 60, 40
_BRIEF.maxlist = _BRIEF.maxtuple = _BRIEF.maxdict = _BRIEF.maxset = 4


def brief(value: Any) -> str:
    """A value's repr for a one-line message, cut short: a long string, a
    deep structure or YAML aliases nested into billions of leaves stay a few
    dozen characters (and cost as little to render)."""
    return _BRIEF.repr(value)


def shown(key: Any) -> str:
    """A key or user text for a one-line message: as written when it is
    printable text, else its repr (no newline or other line break gets through)."""
    return key if isinstance(key, str) and key and key.isprintable() else brief(key)


class SpaceError(UserError, ValueError):
    """A declaration that cannot be used; ``key`` names the space entry."""

    def __init__(self, key: Any, message: str):
        super().__init__(f"space.{shown(key)}: {message}" if key != "" else f"space: {message}")
        self.key = str(key)


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
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            return False
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
        if not isinstance(key, str) or not NAME.fullmatch(key):
            raise SpaceError(key, "parameter names are dotted names of config keys, e.g. augment.rotation_range")
        params[key] = _parse_one(key, decl)
    _check_no_prefix_clash(params)
    return params


def _parse_one(key: str, decl: Any) -> Param:
    if not isinstance(decl, dict) or len(decl) != 1:
        raise SpaceError(key, f"needs exactly one of {sorted(KINDS)}, e.g. {{uniform: [0, 1]}}")
    (kind, args), = decl.items()
    if kind not in KINDS:
        raise SpaceError(key, f"unknown kind {brief(kind)}; known: {', '.join(sorted(KINDS))}")
    nargs, shape = KINDS[kind]
    if not isinstance(args, (list, tuple)):
        raise SpaceError(key, f"{kind} takes {shape}, got {brief(args)}")
    args = tuple(args)
    if nargs is None:
        if not args:
            raise SpaceError(key, f"{kind} needs {shape}; the list is empty")
        for value in args:
            if not isinstance(value, SCALAR):
                raise SpaceError(key, f"{kind} values must be strings, numbers, booleans or null, got {brief(value)}")
        for value in args:
            if isinstance(value, float) and not math.isfinite(value):
                raise SpaceError(key, f"{kind} values must be finite numbers, got {brief(value)}")
        if len(set(map(repr, args))) != len(args):
            raise SpaceError(key, f"{kind} lists a value twice")
        return Param(key, kind, args)
    if len(args) != nargs:
        raise SpaceError(key, f"{kind} takes {shape}, got {brief(list(args))}")
    for value in args:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpaceError(key, f"{kind} takes numbers {shape}, got {brief(value)}")
        if not _finite(value):
            raise SpaceError(key, f"{kind} takes finite numbers {shape}, got {brief(value)}")
    low, high = args[0], args[1]
    if kind in ("int", "qint", "logint"):
        if any(int(v) != v for v in args):
            raise SpaceError(key, f"{kind} takes integers {shape}, got {brief(list(args))}")
        args = tuple(int(v) for v in args)
        if any(abs(v) > INT_LIMIT for v in args):
            raise SpaceError(key, f"{kind} takes integers within +-(2**63 - 1), got {brief(list(args))}")
        low, high = args[0], args[1]
    else:
        args = tuple(float(v) for v in args)
        low, high = args[0], args[1]
    if low > high:
        raise SpaceError(key, f"low ({low}) > high ({high})")
    if not _finite(high - low):
        raise SpaceError(key, f"the range [{low:g}, {high:g}] is too wide to sample (high - low overflows)")
    if kind == "loguniform" and low <= 0:
        raise SpaceError(key, f"loguniform needs low > 0, got {low}")
    if kind == "logint" and low < 1:
        raise SpaceError(key, f"logint needs low >= 1, got {low}")
    if kind in ("quniform", "qint"):
        step = args[2]
        if step <= 0:
            raise SpaceError(key, f"step must be > 0, got {step}")
        n = (high - low) / step
        if not _finite(n):
            raise SpaceError(key, f"step ({step:g}) is too small for the range [{low:g}, {high:g}]")
        if not math.isclose(n, round(n), abs_tol=1e-9):
            raise SpaceError(key, f"high - low ({high - low:g}) is not a multiple of step ({step:g})")
        if not math.isclose(low / step, round(low / step), abs_tol=1e-9):  # as Ray Tune's quantized domains ask
            raise SpaceError(key, f"low ({low:g}) is not a multiple of step ({step:g}): steps count from 0")
    return Param(key, kind, args)


def _finite(value: float) -> bool:
    """A finite number that converts to a float (a huge int does not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_no_prefix_clash(params: dict[str, Param]) -> None:
    for key in params:
        parts = key.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            if prefix in params:
                raise SpaceError(key, f"clashes with {prefix!r}: a key cannot be both a value and a group")
