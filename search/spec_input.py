"""A sweep spec's input side: reading its YAML file, and saying what is wrong
with it, in one line that names the key.

The file is UTF-8 YAML read by :class:`SpecLoader`, PyYAML's safe loader
refusing a key given twice in one mapping (``safe_load`` keeps the last one
without a word). Every fault is an ``error`` (the spec's ``SpecError``):
undecodable bytes, characters YAML refuses, bad syntax, nesting deeper than
Python's recursion, with the line where it is. :func:`describe` turns
pydantic's first validation error into ``dotted.key: message``.
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from scenetune.core.errors import UserError
from scenetune.spaces.params import brief, shown


class SpecError(UserError, ValueError):
    """A sweep spec that cannot run; the message names the key at fault."""


class Strict(BaseModel):
    # strict: no true for 1, no "8" for 8 (an int is still a float); no NaN or infinity
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def one_line(text: str) -> str:
    """``text`` with every run of whitespace, line breaks included, as one space."""
    return " ".join(str(text).split())


# What pydantic adds to an error's location besides keys: the member of a
# union (``float``, ``tuple[float, float]``, ``literal['all','seed25']``...)
# or a validator wrapping the field.
_SCHEMA_TAG = re.compile(r"(float|int|str|bool|none|list\[.*\]|tuple\[.*\]|dict\[.*\]|literal\[.*\]"
                         r"|function-\w+\[.*\]|is-instance\[.*\]|nullable\[.*\]|[a-z-]+\[.*\])")


def describe(error: ValidationError, prefix: str = "") -> str:
    """The first pydantic error as ``dotted.key: message``, on one line."""
    first = error.errors()[0]
    parts = list(first["loc"])
    keep_last = first["type"] == "extra_forbidden"  # the last part is the user's key, whatever it says
    parts = [p for i, p in enumerate(parts) if not (isinstance(p, str) and _SCHEMA_TAG.fullmatch(p))
             or (keep_last and i == len(parts) - 1)]
    messages = {"extra_forbidden": "unknown key", "missing": "required key is missing"}
    message = messages.get(first["type"], first["msg"].removeprefix("Value error, "))
    if parts and parts[-1] == "[key]":  # a mapping's key, not its value, is wrong
        parts, message = parts[:-2], f"key {brief(first.get('input'))}: {message}"
    elif first["type"] not in messages and "input" in first and not isinstance(first["input"], dict):
        message += f" (got {brief(first['input'])})"
    loc = ".".join(shown(p) for p in parts)
    key = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "spec"
    return one_line(f"{key}: {message}")


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping that gives a key twice (YAML forbids it; PyYAML keeps the last)."""


class SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping. Each
    mapping is checked on its own keys (merge keys ``<<`` may be overridden)
    before PyYAML merges anything into it; keys that are equal once loaded
    (``1`` and ``1.0``) are the same key."""

    def __init__(self, stream):
        super().__init__(stream)
        self._where: dict[int, str] = {}  # mapping node -> its dotted path
        self._checked: set[int] = set()

    def construct_document(self, node):
        self._name_nodes(node, "")
        return super().construct_document(node)

    def _name_nodes(self, root, path: str) -> None:
        """The dotted path of every node (the first in the file, if an alias repeats it)."""
        stack = [(root, path)]
        while stack:
            node, path = stack.pop()
            if id(node) in self._where:
                continue
            self._where[id(node)] = path
            children = []
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    part = shown(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                    children.append((value_node, f"{path}.{part}" if path else part))
            elif isinstance(node, yaml.SequenceNode):
                children = [(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
            stack.extend(reversed(children))

    def flatten_mapping(self, node):
        if id(node) not in self._checked:  # before merge keys add their pairs
            self._checked.add(id(node))
            self._check_unique(node)
        super().flatten_mapping(node)

    def _check_unique(self, node) -> None:
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable: PyYAML reports it
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                where = self._where.get(id(node), "")
                name = f"{where}.{shown(key)}" if where else shown(key)
                raise DuplicateKeyError(None, None, f"{name} is given twice (lines {first} and {line})",
                                        key_node.start_mark)
            seen[key] = line


def read_spec_file(path: str, error: type[Exception]) -> Any:
    """The YAML data of the spec file at ``path``; any fault raises ``error``
    with a one-line message that starts with the path."""
    name = shown(os.fspath(path))
    if not os.path.isfile(path):
        raise error(f"{name}: no such spec file")
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as e:
        raise error(f"{name}: cannot be read: {one_line(e.strerror or e)}") from None
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as e:
        line = content.count(b"\n", 0, e.start) + 1
        raise error(f"{name}: not UTF-8 text (line {line}, byte {content[e.start]:#04x})") from None
    try:
        return yaml.load(text, Loader=SpecLoader)  # a SafeLoader: plain data only
    except DuplicateKeyError as e:
        raise error(f"{name}: {e.problem}") from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        char = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        raise error(f"{name}: not valid YAML (line {line}): {one_line(e.reason)} ({char})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(e, "problem", None) or getattr(e, "context", None) or type(e).__name__
        raise error(f"{name}: not valid YAML{where}: {one_line(problem)}") from None
    except RecursionError:
        raise error(f"{name}: not a spec: its YAML nests too deeply") from None
