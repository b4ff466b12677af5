"""Fuzzing the sweep spec: valid specs (BASE_SPEC and every sweeps/*.yaml)
mutated at one to three random places (keys dropped, renamed or added,
values replaced by other types, odd numbers, odd text), and spec files of
random or damaged YAML text. Every outcome is a valid SweepSpec or a single
UserError whose message is one non-empty line; any other exception is a
bug. A spec that parses must also survive what the sweep does next with it:
its stored form (``to_yaml``) parses again (``--resume`` reads it), its
checkpoint epochs and its Ray Tune / Optuna domains build.

Example counts scale with SCENETUNE_FUZZ_EXAMPLES_SCALE (conftest.examples);
benchmarks/fuzz_long.py runs these with many more."""

from __future__ import annotations

import copy
import glob
import math
import os
import re

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from scenetune.core.errors import UserError
from scenetune.search.spec import SweepSpec, load_spec, parse_spec
from scenetune.spaces import KINDS, to_optuna, to_tune
from scenetune.trainables.classifier.config import ClassifierConfig
from scenetune.trainables.gan.config import GanConfig
from tests.conftest import BASE_SPEC
from tests.fuzz.conftest import examples

SWEEPS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "sweeps", "*.yaml")))
ROOT_PLACEHOLDER = "@ROOT@"


def _base_specs() -> dict[str, dict]:
    bases = {"BASE_SPEC": copy.deepcopy(BASE_SPEC)}
    for path in SWEEPS:
        with open(path, encoding="utf-8") as f:
            bases[os.path.basename(path)] = yaml.safe_load(f)
    for raw in bases.values():
        raw["data"]["root"] = ROOT_PLACEHOLDER
    return bases


def _sweep_texts() -> dict[str, str]:
    texts = {}
    for path in SWEEPS:
        with open(path, encoding="utf-8") as f:
            texts[os.path.basename(path)] = re.sub(r"(?m)^(\s+root:).*$", r"\1 " + ROOT_PLACEHOLDER, f.read())
    return texts


BASES = _base_specs()
TEXTS = _sweep_texts()


def _field_names(model: type[BaseModel], prefix: str = "", leaves: bool = False) -> set[str]:
    """Every key the model knows, dotted as space/fixed/points write them
    (``leaves``: only those that hold a value, not a group), and bare."""
    out = set()
    for name, field in model.model_fields.items():
        nested = [sub for sub in getattr(field.annotation, "__args__", ()) + (field.annotation,)
                  if isinstance(sub, type) and issubclass(sub, BaseModel)]
        if not (leaves and nested):
            out.update({prefix + name} if leaves else {name, prefix + name})
        for sub in nested:
            out |= _field_names(sub, f"{prefix}{name}.", leaves)
    return out


# What a spec may search, per trainable: the configs' leaf keys
SEARCHABLE = {"classifier": sorted(_field_names(ClassifierConfig, leaves=True) - {"data.root", "data.manifest",
                                                                                   "data.classes"}),
              "gan": sorted(_field_names(GanConfig, leaves=True) - {"data.root", "data.manifest", "data.classes"})}
KNOWN_KEYS = sorted(_field_names(SweepSpec) | _field_names(ClassifierConfig) | _field_names(GanConfig))

ODD_NUMBERS = [0, 1, -1, 2, 3, 7, 10 ** 4, 2 ** 31, 2 ** 32, 2 ** 63, -2 ** 63 - 1, 10 ** 30, 10 ** 400, 0.5, 0.999999,
               1.0000001, 1e-300, 1e308, -0.0, 5e-324, float("nan"), float("inf"), float("-inf")]
numbers = st.one_of(st.integers(), st.floats(), st.sampled_from(ODD_NUMBERS),
                    st.integers(min_value=-3, max_value=300))
ODD_TEXT = ["", " ", "8", "1e3", "0x10", "1_000", "true", "yes", "null", "~", "nan", ".inf", "-1", "all", "seed25",
            "tpe", "cmaes", "optuna", "grid", "random", "asha", "hyperband", "none", "max", "min", "val_loss",
            "val_accuracy", "fid", "basic_cnn", "mobilenet_v2", "avg", "flatten", "rungs", "auto", "folder", "mit67",
            "a\nb", "line\r\nbreak", "tab\there", "\u2028", "\x85", "\x00", "é✓🙂", "s3://bucket/x", "../..", "~/x"]
texts = st.one_of(st.text(max_size=16), st.sampled_from(ODD_TEXT), numbers.map(str))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts,
                    st.dates(), st.datetimes(), st.binary(max_size=4))  # YAML gives dates and !!binary bytes
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.sampled_from(KNOWN_KEYS).map(lambda k: k + "z"), texts,
                 st.integers(-2, 2), st.none(), st.booleans(), st.floats())
def _mostly(usual, other):
    """``usual`` three times in four, else ``other``."""
    return st.sampled_from([True, True, True, False]).flatmap(lambda pick: usual if pick else other)


NUMERIC_KINDS = sorted(kind for kind, (nargs, _) in KINDS.items() if nargs)


def _numeric_declaration(kind: str):
    """{kind: [low, high(, step)]}: the right count of numbers, often in order."""
    plausible = st.one_of(st.integers(0, 64), st.floats(0, 1), st.sampled_from([1e-5, 1e-3, 0.1, 0.5, 2, 8, 16]))
    args = st.lists(_mostly(plausible, numbers), min_size=KINDS[kind][0], max_size=KINDS[kind][0])
    ordered = args.filter(lambda a: not any(isinstance(v, float) and math.isnan(v) for v in a)).map(
        lambda a: sorted(a[:2]) + a[2:])
    return st.one_of(args, ordered).map(lambda a: {kind: a})


declarations = st.one_of(
    st.sampled_from(NUMERIC_KINDS).flatmap(_numeric_declaration),
    st.builds(lambda kind, args: {kind: args}, st.sampled_from(["choice", "grid"]),
              st.lists(scalars, min_size=1, max_size=4)),
    st.builds(lambda kind, args: {kind: args}, st.sampled_from([*KINDS, "normal"]),
              st.lists(scalars, max_size=4) | scalars),
)
values = st.recursive(st.one_of(scalars, declarations),
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=5)
MUTATIONS = ["drop", "rename", "replace", "replace", "tweak", "add", "add", "declare", "declare", "point"]


def _paths(tree, prefix=()) -> list[tuple]:
    """Every place in the spec tree: the keys and list indexes that reach it."""
    out = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            out += _paths(value, prefix + (key,))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            out += _paths(value, prefix + (i,))
    return out


def _at(tree, path):
    for part in path:
        tree = tree[part]
    return tree


def _tweak(value, data):
    """A near miss of the value's own type: the number as text, a number
    next to it, a wrong-type twin."""
    if isinstance(value, bool):
        return data.draw(st.sampled_from([int(value), str(value).lower(), not value, None]))
    if isinstance(value, (int, float)):
        return data.draw(st.sampled_from([str(value), float(value), -value, value + 1, value * 10 ** 12, True,
                                          False, [value], {"value": value}]) | numbers)
    if isinstance(value, str):
        return data.draw(st.sampled_from([value.upper(), value + " ", value[:-1], f"'{value}'", [value], 0])
                         | texts)
    if isinstance(value, list):
        return data.draw(st.sampled_from([value[:-1], value + value[-1:], value[::-1], [], {"0": value}, None]))
    if isinstance(value, dict):
        return data.draw(st.sampled_from([{}, list(value), dict(list(value.items())[:-1]), None]))
    return data.draw(values)


def mutate(raw: dict, data, mutations: list[str] = MUTATIONS) -> object:
    """The spec with 1-3 random mutations (the root may be replaced too)."""
    for _ in range(data.draw(st.sampled_from([1, 1, 2, 3]), label="mutations")):
        how = data.draw(st.sampled_from(mutations), label="how")
        if how == "declare":  # a space declaration: the kind of mutation that reaches parse_space deepest
            if isinstance(raw, dict) and isinstance(raw.get("space"), dict):
                searchable = st.sampled_from(SEARCHABLE["gan" if raw.get("trainable") == "gan" else "classifier"])
                key = data.draw(_mostly(searchable, keys), label="space key")
                raw["space"][key] = data.draw(_mostly(declarations, values), label="decl")
                if isinstance(raw.get("fixed"), dict) and isinstance(key, str):
                    raw["fixed"].pop(key, None)  # else "also set in fixed" stops the checks early
            continue
        if how == "point":  # a search point picking a value of a declared parameter
            search, space = (raw.get("search"), raw.get("space")) if isinstance(raw, dict) else (None, None)
            if isinstance(search, dict) and isinstance(space, dict) and space:
                declared = st.sampled_from(sorted(space, key=repr))
                point = {data.draw(_mostly(declared, keys), label="point key"):
                         data.draw(numbers | scalars, label="point value")}
                points = search.setdefault("points", [])
                if isinstance(points, list):
                    points.append(point)
            continue
        path = data.draw(st.sampled_from(_paths(raw)), label="path")
        if not path:  # the whole spec
            if how in ("replace", "tweak"):
                raw = data.draw(values, label="root")
            continue
        parent, key = _at(raw, path[:-1]), path[-1]
        if how == "drop":
            del parent[key]
        elif how == "rename" and isinstance(parent, dict):
            new = data.draw(keys, label="new key")
            parent[new] = parent.pop(key)
        elif how == "replace":
            parent[key] = data.draw(values, label="value")
        elif how == "tweak":
            parent[key] = _tweak(parent[key], data)
        elif how == "add":
            target = parent[key]
            if isinstance(target, dict):
                target[data.draw(keys, label="added key")] = data.draw(values, label="added value")
            elif isinstance(target, list):
                target.append(data.draw(values, label="appended"))
            else:
                parent[key] = data.draw(values, label="value")
    return raw


def check_one_line(error: UserError) -> None:
    message = str(error)
    assert message.strip(), f"{type(error).__name__} with an empty message"
    assert len(message.splitlines()) == 1, f"{type(error).__name__} over several lines: {message!r}"


def check_resolved(spec: SweepSpec) -> None:
    """What the sweep does with a parsed spec must not fail: store it and read
    it back (resume), its checkpoint epochs, its Tune / Optuna domains."""
    assert isinstance(spec, SweepSpec)
    again = parse_spec(yaml.load(spec.to_yaml(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    assert again.model_dump(mode="json") == spec.model_dump(mode="json")
    epochs = spec.checkpoint_epochs()
    assert all(0 < e < spec.max_epochs() for e in epochs)
    params = list(spec.params.values())
    to_tune(params)
    if spec.search.algorithm == "optuna":
        to_optuna(params)
    for p in params:
        if p.kind in ("uniform", "loguniform", "int", "logint"):
            assert all(math.isfinite(a) for a in p.args), p


def outcome(parse, *args) -> SweepSpec | UserError:
    """A spec, or one UserError line; any other exception fails the test."""
    try:
        spec = parse(*args)
    except UserError as e:
        check_one_line(e)
        return e
    check_resolved(spec)
    return spec


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fuzz-data"))


def _with_root(value, root: str):
    if isinstance(value, dict):
        return {k: _with_root(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_root(v, root) for v in value]
    return root if value == ROOT_PLACEHOLDER else value


def test_every_base_spec_is_valid(data_root):
    """The fuzzer starts from valid specs (else it would test nothing deep)."""
    for name, raw in BASES.items():
        assert isinstance(outcome(parse_spec, _with_root(raw, data_root)), SweepSpec), name


@settings(max_examples=examples(1200))
@given(base=st.sampled_from(sorted(BASES)), data=st.data())
def test_mutated_specs_parse_or_fail_in_one_line(data_root, base, data):
    raw = mutate(_with_root(copy.deepcopy(BASES[base]), data_root), data)
    overrides = data.draw(st.none() | st.dictionaries(
        st.sampled_from(["search.num_samples", "name", "storage", "scheduler.max_t"]) | st.sampled_from(KNOWN_KEYS)
        | texts, scalars, max_size=2), label="overrides")
    outcome(parse_spec, raw, overrides)


@settings(max_examples=examples(600))
@given(base=st.sampled_from(sorted(BASES)), data=st.data())
def test_mutated_spaces_parse_or_fail_in_one_line(data_root, base, data):
    """Only the searched parameters and the search points change: past the
    spec's own keys, into parse_space, the config models and the points."""
    outcome(parse_spec, mutate(_with_root(copy.deepcopy(BASES[base]), data_root), data, ["declare", "point"]))


def _damage(text: str, data) -> str:
    for _ in range(data.draw(st.integers(1, 3), label="damages")):
        i = data.draw(st.integers(0, len(text)), label="at")
        how = data.draw(st.sampled_from(["truncate", "cut", "insert", "duplicate line", "indent"]), label="how")
        if how == "truncate":
            text = text[:i]
        elif how == "cut":
            text = text[:i] + text[i + data.draw(st.integers(1, 40)):]
        elif how == "insert":
            text = text[:i] + data.draw(st.sampled_from([":", "- ", "{", "]", "'", '"', "\t", "\n", "&a ", "*a",
                                                         "!!binary ", "<<: ", "? ", "#", "\x00"]) | texts) + text[i:]
        elif how == "duplicate line":
            start = text.rfind("\n", 0, i) + 1
            end = text.find("\n", i)
            line = text[start:] if end < 0 else text[start:end + 1]
            text = text[:start] + line + ("\n" if not line.endswith("\n") else "") + text[start:]
        else:
            start = text.rfind("\n", 0, i) + 1
            text = text[:start] + "  " + text[start:]
    return text


@settings(max_examples=examples(400))
@given(data=st.data())
def test_yaml_text_loads_or_fails_in_one_line(data_root, data):
    kind = data.draw(st.sampled_from(["damaged", "damaged", "text", "bytes"]), label="kind")
    if kind == "damaged":
        text = _damage(TEXTS[data.draw(st.sampled_from(sorted(TEXTS)), label="sweep")], data)
        content = text.replace(ROOT_PLACEHOLDER, data_root).encode("utf-8")
    elif kind == "text":
        content = data.draw(st.text(), label="text").encode("utf-8", "surrogatepass")
    else:
        content = data.draw(st.binary(), label="bytes")
    path = os.path.join(data_root, "fuzz-spec.yaml")
    with open(path, "wb") as f:
        f.write(content)
    outcome(load_spec, path)
