"""Nested dicts (configs, specs) and their dotted keys."""

from __future__ import annotations

from typing import Any


def flatten(tree: dict, prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Nested dict -> ``{"a.b": leaf}``; empty dicts are kept as leaves."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path, sep))
        else:
            flat[path] = value
    return flat
