"""The one converter from declared :class:`~scenetune.spaces.params.Param` objects to
Ray Tune domains and Optuna distributions, and the helpers that move between
dotted keys (``augment.rotation_range``) and nested config dicts.

Ray Tune takes a nested ``param_space``; Ray's ``OptunaSearch`` takes a flat
dict whose keys join the path with ``/`` and unflattens its suggestions, so
both forms address the same nested trial config.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

import optuna.distributions as od
from ray import tune

from scenetune.core.errors import UserError
from scenetune.spaces.params import Param, SpaceError, shown


class SpecPathError(UserError, ValueError):
    """A dotted key that runs through a value, not a group."""


def to_tune(params: Iterable[Param]) -> dict:
    """Nested Ray Tune ``param_space`` for the declared parameters."""
    space: dict = {}
    for p in params:
        set_path(space, p.key, tune_domain(p))
    return space


def tune_domain(p: Param):
    a = p.args
    match p.kind:
        case "choice":
            return tune.choice(list(a))
        case "grid":
            return tune.grid_search(list(a))
        case "uniform":
            return tune.uniform(a[0], a[1])
        case "quniform":
            return tune.quniform(a[0], a[1], a[2])
        case "loguniform":
            return tune.loguniform(a[0], a[1])
        case "int":
            return tune.randint(a[0], a[1] + 1)  # Tune's upper bound is exclusive
        case "qint":
            return tune.qrandint(a[0], a[1], a[2])  # inclusive upper bound
        case "logint":
            return tune.lograndint(a[0], a[1] + 1)
    raise SpaceError(p.key, f"no Ray Tune domain for kind {p.kind!r}")


def to_optuna(params: Iterable[Param]) -> dict[str, od.BaseDistribution]:
    """Flat ``{"a/b": distribution}`` for ``OptunaSearch(space=...)``."""
    return {"/".join(p.path): optuna_distribution(p) for p in params}


def optuna_distribution(p: Param) -> od.BaseDistribution:
    a = p.args
    match p.kind:
        case "choice":
            return od.CategoricalDistribution(list(a))
        case "uniform":
            return od.FloatDistribution(a[0], a[1])
        case "quniform":
            return od.FloatDistribution(a[0], a[1], step=a[2])
        case "loguniform":
            return od.FloatDistribution(a[0], a[1], log=True)
        case "int":
            return od.IntDistribution(a[0], a[1])
        case "qint":
            return od.IntDistribution(a[0], a[1], step=a[2])
        case "logint":
            return od.IntDistribution(a[0], a[1], log=True)
    raise SpaceError(p.key, f"{p.kind!r} has no Optuna distribution; "
                               "use search.algorithm grid or random for grid declarations")


def set_path(tree: dict, dotted: str, value: Any) -> None:
    """``set_path(d, "a.b", 1)`` makes ``d["a"]["b"] == 1``."""
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SpecPathError(f"{shown(dotted)}: {part!r} already holds a value, not a group")
    node[leaf] = value


def get_path(tree: dict, dotted: str, default: Any = None) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def unflatten(flat: dict[str, Any], sep: str = ".") -> dict:
    tree: dict = {}
    for key, value in flat.items():
        set_path(tree, key.replace(sep, "."), value)
    return tree


def deep_merge(base: dict, override: dict) -> dict:
    """A copy of ``base`` with ``override``'s leaves written over it."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
