"""Fuzzing an experiment's trial logs: real Ray Tune experiments (the
``known_experiment`` and ``damaged_experiment`` fixtures, copied once) whose
``result.json``, ``params.json`` and ``progress.csv`` (and, now and then, the
``experiment_state-*.json``) are garbled in one to three trials, now and then
in all of them: truncated at random bytes, random bytes spliced in or written
over, lines duplicated, dropped or swapped, non-UTF-8 bytes, JSON values of
the wrong type (text where a number is, nested objects, lists, huge integers,
NaN, infinities, null, half a surrogate pair), whole documents that are not
objects, CSV cells, rows and headers broken, files emptied or deleted. Each
example rewrites only the garbled files and restores them afterwards.

Then ``load_experiment`` and the commands that read logs must warn and go
on: ``scenetune best`` and ``scenetune report`` (through
``scenetune.cli.main``) exit 0, or 2 with one ``scenetune: error:`` line
(no trial left readable, no metric reported); never 1 (a bug) nor an
uncaught exception. ``scenetune evaluate`` reads the logs, ranks the
trials and checks the best one's config before it loads a model: given an
empty checkpoint folder in every trial, it ends in a one-line error (exit 2)
once all that has gone through (a config it cannot use, or no model file).

Examples: ``examples(300)`` for load_experiment + best, ``examples(24)`` for
report (it draws figures: 1-4 s an example), ``examples(25)`` for
evaluate, scaled by SCENETUNE_FUZZ_EXAMPLES_SCALE. A failure is not shrunk
(one took Hypothesis over five minutes): its note lists every damage done,
and the ci profile's derandomized run gives it again. Slow: the fixtures run
Ray Tune."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import shutil
import tempfile
import warnings

import pytest
from hypothesis import Phase, given, note, settings
from hypothesis import strategies as st

from scenetune.analysis.experiment import Experiment, load_experiment
from scenetune.cli import main
from scenetune.core.errors import UserError

try:
    from tests.fuzz.conftest import examples
except ImportError:  # conftest's examples() not there yet
    def examples(n: int) -> int:
        return n * int(os.environ.get("SCENETUNE_FUZZ_EXAMPLES_SCALE", "1"))

pytestmark = pytest.mark.slow

LOG_FILES = ("result.json", "params.json", "progress.csv")
IMPORTANT_KEYS = ("training_iteration", "trial_id", "val_accuracy", "time_total_s", "train_time_s", "epoch",
                  "config", "epochs", "backbone", "image_size", "seed", "data", "augment", "status", "trial_data")
ODD_VALUES = ["text", "", "0.5", "NaN", {"nested": {"deeper": [1, {"x": None}]}}, {}, [], [1, "two", None],
              10 ** 400, -10 ** 30, 1e308, -1e308, math.nan, math.inf, -math.inf, None, True, False, 0, -1, 2.5,
              "\u00e9\u4e2d\U0001f600", "1e999", "\ud800"]  # the last: half a surrogate pair, escaped in JSON
ODD_CELLS = ["", "nan", "inf", "-1e999", "text", '"', '"a,b"', "1" * 400, "True", "{}", "\u00e9", "0x10"]


class Workbench:
    """A private copy of an experiment whose log files are garbled example by
    example and restored after each."""

    def __init__(self, source: str, target: str, checkpoints: bool = False):
        shutil.copytree(source, target)
        self.uri = target
        if checkpoints:  # an empty checkpoint folder in every trial: evaluate reads on up to the model file
            for name in os.listdir(target):
                if os.path.isfile(os.path.join(target, name, "params.json")):
                    os.mkdir(os.path.join(target, name, "checkpoint_000001"))
        self.originals: dict[str, bytes] = {}
        for root, _, files in os.walk(target):
            for name in files:
                if name in LOG_FILES or name.startswith("experiment_state-"):
                    path = os.path.join(root, name)
                    self.originals[path] = open(path, "rb").read()
        self.log_files = sorted(p for p in self.originals if os.path.basename(p) in LOG_FILES)
        self.state_files = sorted(p for p in self.originals if p not in self.log_files)
        self.trials = sorted({os.path.dirname(p) for p in self.log_files})
        self.tree = self._tree()

    def _tree(self) -> list[str]:
        return sorted(os.path.relpath(os.path.join(root, name), self.uri)
                      for root, _, files in os.walk(self.uri) for name in files)

    @contextlib.contextmanager
    def garbled(self, rnd: random.Random):
        """Garble one to three trials' logs, now and then every trial's (rarely
        the state file too); yields what was done."""
        done = []
        count = len(self.trials) if rnd.random() < 0.2 else rnd.randint(1, min(3, len(self.trials)))
        try:
            for trial in rnd.sample(self.trials, count):
                present = [p for p in self.log_files if os.path.dirname(p) == trial]
                for path in rnd.sample(present, rnd.randint(1, len(present))):
                    done += _garble_file(path, self.originals[path], rnd)
            if self.state_files and rnd.random() < 0.1:
                path = self.state_files[-1]
                done += _garble_file(path, self.originals[path], rnd)
            yield done
        finally:
            for path, data in self.originals.items():
                with open(path, "wb") as f:
                    f.write(data)
            assert self._tree() == self.tree, "the commands wrote nothing into the experiment"


def _garble_file(path: str, data: bytes, rnd: random.Random) -> list[str]:
    name = os.path.basename(path)
    if rnd.random() < 0.05:
        os.remove(path)
        return [f"{name}: deleted"]
    done = []
    for _ in range(rnd.randint(1, 3)):
        data, what = garble(data, name, rnd)
        done.append(f"{os.path.basename(os.path.dirname(path))}/{name}: {what}")
    with open(path, "wb") as f:
        f.write(data)
    return done


def garble(data: bytes, name: str, rnd: random.Random) -> tuple[bytes, str]:
    """One random damage of ``data`` (a file called ``name``)."""
    kinds = ["truncate", "splice", "overwrite", "dup_line", "drop_line", "swap_lines", "non_utf8", "empty",
             "blank_lines", "crlf"]
    if name.endswith(".json"):
        kinds += ["json_value"] * 6 + ["json_document"] * 2
    if name.endswith(".csv"):
        kinds += ["csv_cell"] * 4 + ["csv_row", "csv_header", "csv_column"]
    kind = rnd.choice(kinds)
    lines = data.splitlines(keepends=True)
    at = rnd.randint(0, len(data))
    if kind == "truncate":
        return data[:at], f"truncated at byte {at}"
    if kind == "splice":
        junk = rnd.randbytes(rnd.randint(1, 24))
        return data[:at] + junk + data[at:], f"{junk!r} spliced in at {at}"
    if kind == "overwrite":
        junk = rnd.randbytes(rnd.randint(1, 8))
        return data[:at] + junk + data[at + len(junk):], f"{junk!r} written over byte {at}"
    if kind == "non_utf8":
        junk = rnd.choice([b"\xff", b"\xfe\xff", b"\xc3", b"\xe9t\xe9", b"\x80\x80", b"\xed\xa0\x80"])
        if rnd.random() < 0.2:
            return data.decode("utf-8", "replace").encode("utf-16"), "re-encoded as UTF-16"
        return data[:at] + junk + data[at:], f"non-UTF-8 {junk!r} at {at}"
    if kind == "empty":
        return rnd.choice([b"", b"\n", b"   ", b"\x00"]), "emptied"
    if kind == "blank_lines":
        return b"\n\n" + data + b"\n \n", "blank lines added"
    if kind == "crlf":
        return data.replace(b"\n", b"\r\n"), "CRLF line ends"
    if not lines:
        return data, "nothing to change (empty)"
    i = rnd.randrange(len(lines))
    if kind == "dup_line":
        return b"".join(lines[:i + 1] + lines[i:]), f"line {i + 1} duplicated"
    if kind == "drop_line":
        return b"".join(lines[:i] + lines[i + 1:]), f"line {i + 1} dropped"
    if kind == "swap_lines":
        j = rnd.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return b"".join(lines), f"lines {i + 1} and {j + 1} swapped"
    if kind in ("json_value", "json_document"):
        return _garble_json(data, lines, name, kind, rnd)
    return _garble_csv(lines, kind, rnd)


def _garble_json(data: bytes, lines: list[bytes], name: str, kind: str, rnd: random.Random) -> tuple[bytes, str]:
    """A value of the wrong type in a JSON document, or in one line of a JSON-lines file."""
    json_lines = name == "result.json"
    i = rnd.randrange(len(lines)) if json_lines else None
    text = lines[i] if json_lines else data
    try:
        document = json.loads(text)
    except ValueError:
        return data, "not JSON already: left as is"
    if kind == "json_document":
        document = rnd.choice([5, "text", [1, 2], None, 1.5, [], {}, [document], 10 ** 400])
        what = f"document replaced by {_short(document)}"
    else:
        document, what = _replace_value(document, rnd)
    dumped = json.dumps(document).encode()
    if json_lines:
        lines[i] = dumped + (b"\n" if lines[i].endswith(b"\n") else b"")
        return b"".join(lines), f"line {i + 1}: {what}"
    return dumped, what


def _replace_value(document, rnd: random.Random):
    """``document`` with one value (at a random depth, preferably a key the
    readers use) replaced by an odd one."""
    if not isinstance(document, (dict, list)) or not document:
        return rnd.choice(ODD_VALUES), "scalar document replaced"
    node, path = document, []
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        preferred = [k for k in keys if k in IMPORTANT_KEYS]
        key = rnd.choice(preferred if preferred and rnd.random() < 0.7 else keys)
        path.append(key)
        child = node[key]
        if isinstance(child, (dict, list)) and child and rnd.random() < 0.5:
            node = child
            continue
        value = rnd.choice(ODD_VALUES)
        if rnd.random() < 0.1:
            del node[key]
            return document, f"{'.'.join(map(str, path))} removed"
        node[key] = value
        return document, f"{'.'.join(map(str, path))} = {_short(value)}"


def _garble_csv(lines: list[bytes], kind: str, rnd: random.Random) -> tuple[bytes, str]:
    rows = [line.rstrip(b"\r\n").split(b",") for line in lines]
    i = rnd.randrange(len(rows))
    if kind == "csv_cell":
        j = rnd.randrange(len(rows[i]))
        rows[i][j] = rnd.choice(ODD_CELLS).encode()
        what = f"row {i + 1} cell {j + 1} = {rows[i][j][:20]!r}"
    elif kind == "csv_row":
        if rnd.random() < 0.5:
            rows[i] = rows[i] + [b"extra"] * rnd.randint(1, 3)
            what = f"row {i + 1} has extra cells"
        else:
            rows[i] = rows[i][:rnd.randint(0, len(rows[i]))]
            what = f"row {i + 1} cut short"
    elif kind == "csv_header":
        j = rnd.randrange(len(rows[0]))
        old = rows[0][j]
        rows[0][j] = rnd.choice([b"", b"training_iteration", b"trial_id", b"val_accuracy", b"x", rows[0][0]])
        what = f"header {old!r} renamed {rows[0][j]!r}"
    else:
        j = rnd.randrange(len(rows[0]))
        rows = [r[:j] + r[j + 1:] for r in rows]
        what = f"column {j + 1} removed"
    return b"\n".join(b",".join(r) for r in rows) + b"\n", what


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``scenetune ARGV`` in this process: (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = main(argv)
    return status, err.getvalue()


def assert_warned_and_went_on(argv: list[str], done: list[str]) -> int:
    status, err = run_cli(argv)
    note(f"scenetune {' '.join(argv)} -> {status}\n{err}")
    assert status in (0, 2), f"exit {status} (1 is a bug) after {done}:\n{err}"
    assert "Traceback" not in err
    lines = err.splitlines()
    errors = [line for line in lines if line.startswith("scenetune: error:")]
    if status == 2:
        assert len(errors) == 1 and lines[-1] == errors[0], err
    else:
        assert not errors, err
    return status


def check_load(uri: str, done: list[str]) -> None:
    """load_experiment reads what it can: an Experiment whose notes are the
    warnings it gave, or one UserError."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            exp = load_experiment(uri)
        except UserError as e:
            assert str(e) and "\n" not in str(e)
            return
    assert isinstance(exp, Experiment)
    assert [str(w.message) for w in caught if str(w.message) in exp.warnings] == exp.warnings
    if not exp.trials.empty:
        assert exp.trials["trial_id"].is_unique, f"one row per trial after {done}"
        assert (exp.trials["epochs"] >= 0).all()
        assert set(exp.epochs.get("trial_id", [])) <= set(exp.trials["trial_id"])


@pytest.fixture(scope="module")
def benches(known_experiment, damaged_experiment, tmp_path_factory):
    folder = tmp_path_factory.mktemp("log_fuzz")
    return {"known": Workbench(known_experiment, str(folder / "known")),
            "damaged": Workbench(damaged_experiment, str(folder / "damaged"))}


@pytest.fixture(scope="module")
def checkpointed(known_experiment, damaged_experiment, tmp_path_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("log_fuzz_checkpointed")
    return {"known": Workbench(known_experiment, str(folder / "known"), checkpoints=True),
            "damaged": Workbench(damaged_experiment, str(folder / "damaged"), checkpoints=True)}


EXPERIMENTS = st.sampled_from(["known", "damaged"])
NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]


@settings(max_examples=examples(300), phases=NO_SHRINK)
@given(which=EXPERIMENTS, rnd=st.randoms(use_true_random=False), options=st.sampled_from(
    [[], ["--scope", "all"], ["--format", "json"], ["--top", "3", "--format", "yaml"], ["--metric", "val_loss",
                                                                                         "--mode", "min"]]))
def test_load_experiment_and_best_warn_and_go_on(benches, which, rnd, options):
    bench = benches[which]
    with bench.garbled(rnd) as done:
        note(f"{which}: {done}")
        check_load(bench.uri, done)
        assert_warned_and_went_on(["best", bench.uri, *options], done)


@settings(max_examples=examples(24), phases=NO_SHRINK)
@given(which=EXPERIMENTS, rnd=st.randoms(use_true_random=False))
def test_report_warns_and_goes_on(benches, which, rnd):
    bench = benches[which]
    with bench.garbled(rnd) as done, tempfile.TemporaryDirectory() as out:
        note(f"{which}: {done}")
        status = assert_warned_and_went_on(["report", bench.uri, "--out", os.path.join(out, "report")], done)
        if status == 0:
            assert os.path.isfile(os.path.join(out, "report", "report.html"))


@settings(max_examples=examples(25), phases=NO_SHRINK)
@given(which=EXPERIMENTS, rnd=st.randoms(use_true_random=False))
def test_evaluate_reads_the_logs_and_gives_a_one_line_error(checkpointed, which, rnd):
    bench = checkpointed[which]
    with bench.garbled(rnd) as done:
        note(f"{which}: {done}")
        assert assert_warned_and_went_on(["evaluate", bench.uri], done) == 2  # no model file: 2 once all is read
