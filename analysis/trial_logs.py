"""One trial's files, and Ray Tune's saved state, read whatever shape they
are in: ``result.json`` line by line (``progress.csv`` for the epochs it
lacks), ``params.json``, and the newest ``experiment_state-*.json``. Every
damaged piece (bytes that are not UTF-8, a truncated or non-JSON line, a
value of the wrong type, an epoch reported twice) is skipped with a note
naming the file, never an exception: :mod:`scenetune.analysis.experiment`
turns the notes into the experiment's warnings."""

from __future__ import annotations

import io
import json
import math
import numbers
import re
from collections import Counter

import pandas as pd

from scenetune.core import storage
from scenetune.core.layout import newest_state_file
from scenetune.core.state_file import trial_data

IGNORED_RESULT_KEYS = ("config", "date", "timestamp", "pid", "hostname", "node_ip", "should_checkpoint",
                       "done", "time_since_restore", "checkpoint_dir_name")


def short(value, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters: a garbled value can be huge."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_text(uri: str, notes: list[str], what: str = "skipped") -> str | None:
    """The file's text, or None (noted) when it is not UTF-8."""
    data = storage.read_bytes(uri)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        notes.append(f"{uri}: not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start}); {what}")
        return None


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def parse_json(text: str):
    """json.loads; ValueError (JSONDecodeError, or an integer of more digits
    than Python converts) for anything it cannot read, and for text that
    escapes half of a UTF-16 surrogate pair (no table can hold such a string)."""
    try:
        document = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(document, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a lone surrogate escape: not Unicode text") from None
    return document


MAX_EPOCH = 10 ** 9


def epoch_number(value) -> int | None:
    """A result's ``training_iteration`` as an int >= 1 (a float of a whole
    number too: progress.csv gives floats when a cell is empty), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if not isinstance(value, numbers.Integral) and not (math.isfinite(value) and float(value).is_integer()):
        return None
    number = int(value)
    return number if 1 <= number <= MAX_EPOCH else None


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def clean_row(row: dict, where: str, notes: list[str]) -> dict | None:
    """A result row whose ``training_iteration`` is an epoch number, without
    values no table can hold (objects, lists, integers past a float's range);
    None (noted) without an epoch number."""
    epoch = epoch_number(row.get("training_iteration"))
    if epoch is None:
        notes.append(f"{where}: no epoch number (training_iteration {short(row.get('training_iteration'))}); "
                     "skipped")
        return None
    clean = {"training_iteration": epoch}
    for key, value in row.items():
        if key == "training_iteration" or key in IGNORED_RESULT_KEYS:
            if key == "config":
                clean[key] = value
            continue
        if not isinstance(key, str):
            continue
        if isinstance(value, (dict, list)):
            notes.append(f"{where}: {key} is {'an object' if isinstance(value, dict) else 'a list'}, "
                         "not a value; ignored")
            continue
        if isinstance(value, int) and not isinstance(value, bool) and not -2 ** 63 <= value < 2 ** 63:
            try:
                value = float(value)
            except OverflowError:
                notes.append(f"{where}: {key} is a number past a float's range; ignored")
                continue
        clean[key] = value
    trial_id = clean.get("trial_id")
    if trial_id is not None and not isinstance(trial_id, str):
        notes.append(f"{where}: trial_id {short(trial_id)} is not text; ignored")
        del clean["trial_id"]
    return clean


def latest_per_iteration(rows: list[dict], result_uri: str, notes: list[str]) -> list[dict]:
    """One row per epoch. A trial that Ray Tune restores from a checkpoint older
    than its last result (a resumed driver restarts its running trials from
    the state it last saved) runs those epochs again and appends them: the
    later run is the one the trial went on from."""
    latest: dict = {}
    for number, row in enumerate(rows):
        latest[row.get("training_iteration", f"row {number}")] = row  # a key keeps its first place
    if len(latest) < len(rows):
        counts = Counter(r.get("training_iteration") for r in rows)
        again = sorted(i for i, n in counts.items() if n > 1)
        notes.append(f"{result_uri}: epochs {again} reported twice (run again after a restore); "
                     "kept the later run")
    return list(latest.values())


def read_results(trial_uri: str, entries: set[str], notes: list[str]) -> list[dict]:
    result_uri = storage.join(trial_uri, "result.json")
    if "result.json" in entries:
        rows = []
        # Bytes split on \n, \r and \r\n only, each line decoded alone: one bad line costs one epoch.
        for number, raw in enumerate(storage.read_bytes(result_uri).splitlines(), 1):
            if not raw.strip():
                continue
            try:
                row = parse_json(raw.decode("utf-8"))
            except UnicodeDecodeError:
                notes.append(f"{result_uri}: line {number} is not UTF-8 text; skipped")
                continue
            except ValueError:
                notes.append(f"{result_uri}: line {number} is not valid JSON (truncated?); skipped")
                continue
            if not isinstance(row, dict):
                notes.append(f"{result_uri}: line {number} is not a JSON object; skipped")
                continue
            row = clean_row(row, f"{result_uri}: line {number}", notes)
            if row is not None:
                rows.append(row)
        rows = latest_per_iteration(rows, result_uri, notes)
        iterations = [r.get("training_iteration") for r in rows]
        if iterations == list(range(1, len(rows) + 1)) or "progress.csv" not in entries:
            return rows
        # A gap: a retried trial's result.json can be replaced by an older copy
        # from storage, while progress.csv kept every row. Take each missing one.
        known = set(iterations)
        extra = [r for r in read_progress(trial_uri, notes) if r.get("training_iteration") not in known]
        if extra:
            notes.append(f"{result_uri}: epochs {sorted(r['training_iteration'] for r in extra)} missing; "
                         "taken from progress.csv")
        return sorted(rows + extra, key=lambda r: r.get("training_iteration") or 0)
    if "progress.csv" in entries:
        notes.append(f"{result_uri}: missing; read progress.csv instead")
        return read_progress(trial_uri, notes)
    return []


def read_config(trial_uri: str, entries: set[str], results: list[dict], notes: list[str]) -> dict | None:
    """params.json, else the config in the first result; None when neither is
    readable: Ray writes params.json as a trial starts, so a live experiment
    can show it empty or half written."""
    if "params.json" in entries:
        params_uri = storage.join(trial_uri, "params.json")
        text = read_text(params_uri, notes, "its config is read from result.json if it can be")
        if text is not None:
            try:
                config = parse_json(text)
            except ValueError:
                notes.append(f"{params_uri}: not valid JSON (still being written?)")
            else:
                if isinstance(config, dict):
                    return config
                notes.append(f"{params_uri}: not a JSON object; its config is read from result.json if it can be")
    if results and isinstance(results[0].get("config"), dict):
        return results[0]["config"]
    return None if "params.json" in entries else {}


def read_progress(trial_uri: str, notes: list[str]) -> list[dict]:
    progress_uri = storage.join(trial_uri, "progress.csv")
    text = read_text(progress_uri, notes)
    if text is None:
        return []
    try:
        # Trial ids are hex: "50152306" would read as a number, "1e123456" as infinity.
        records = pd.read_csv(io.StringIO(text), dtype={"trial_id": str}).to_dict("records")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        notes.append(f"{progress_uri}: unreadable ({str(e).strip().splitlines()[0] if str(e).strip() else e!r}); "
                     "skipped")
        return []
    rows = []
    for number, record in enumerate(records, 2):  # line 1 is the header
        record = {k: v for k, v in record.items() if not (isinstance(v, float) and math.isnan(v))}  # empty cells
        row = clean_row(record, f"{progress_uri}: line {number}", notes)
        if row is not None:
            rows.append(row)
    return latest_per_iteration(rows, progress_uri, notes)


def trial_states(uri: str, notes: list[str]) -> dict[str, dict]:
    """trial_id -> {tune_status, started_at, ended_at (Unix seconds: first
    start, last result), failures, error_file, wall_time_s, dir} from the
    newest state file, read a trial at a time (core/state_file.py: 240 MB
    at 10,000 trials)."""
    state_uri = newest_state_file(uri)
    if state_uri is None:
        notes.append(f"{uri}: no experiment_state-*.json; statuses inferred from the trial logs")
        return {}
    inferred = "statuses inferred from the trial logs"
    out = {}
    try:
        for number, entry in enumerate(trial_data(state_uri), 1):
            read = trial_state(entry)
            if read is None:
                notes.append(f"{state_uri}: trial {number} of trial_data unreadable; its status is inferred")
            else:
                out[read[0]] = read[1]
    except UnicodeDecodeError as e:
        notes.append(f"{state_uri}: not UTF-8 text (byte {e.object[e.start]:#04x}); {inferred}")
        return {}
    except (ValueError, RecursionError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e).removeprefix(f"{state_uri}: ")
        notes.append(f"{state_uri}: unreadable ({short(reason, 80)}); {inferred}")
        return {}
    return out


def trial_state(entry) -> tuple[str, dict] | None:
    """``(trial_id, state)`` of one ``trial_data`` entry (a pair of JSON
    texts: the trial, its run-time facts), or None when it is damaged."""
    if not isinstance(entry, list) or len(entry) != 2 or not all(isinstance(part, str) for part in entry):
        return None
    try:
        for part in entry:
            part.encode("utf-8")  # a lone surrogate escape in the file decodes to one: not Unicode text
        trial, runtime = parse_json(entry[0]), parse_json(entry[1])
    except ValueError:
        return None
    if not isinstance(trial, dict) or not isinstance(runtime, dict) or not isinstance(trial.get("trial_id"), str):
        return None

    def typed(tree: dict, key: str, kind, default=None):
        value = tree.get(key)
        return value if isinstance(value, kind) and not isinstance(value, bool) else default

    started, last = typed(runtime, "start_time", numbers.Real), typed(runtime, "last_result_time", numbers.Real)
    wall = last - started if started and last else None
    finite = wall is not None and math.isfinite(wall)
    return trial["trial_id"], {"tune_status": typed(trial, "status", str),
                               "started_at": float(started) if finite else None,
                               "ended_at": float(last) if finite else None,
                               "failures": typed(runtime, "num_failures", int, 0),
                               "error_file": typed(runtime, "error_filename", str),
                               "wall_time_s": wall if wall is not None and math.isfinite(wall) else None,
                               "dir": typed(trial, "relative_logdir", str)}
