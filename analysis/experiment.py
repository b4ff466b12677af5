"""An experiment directory (local or remote) read into tidy DataFrames.

Sources, all written by Ray Tune: each trial directory's ``params.json``
(config) and ``result.json`` (one JSON line per reported epoch; its
``progress.csv`` when ``result.json`` is missing), and the newest
``experiment_state-*.json`` (each trial's status, failures and error file).
Damaged inputs (a truncated last line, a missing file, an empty trial
directory, bytes that are not UTF-8, a line that is not a JSON object or has
no epoch number, a config that is not an object, a value of the wrong type)
are skipped with a warning naming the file, never a crash: a metric value
that is not a number where the other epochs report numbers reads as missing
(NaN), an ``epochs`` config that is not a whole number leaves the planned
epochs unknown.

``trials``: one row per trial: ``trial_id``, ``status`` (``completed``,
``stopped`` early by the scheduler, ``errored``, ``running``, ``pending``),
``epochs`` run, ``planned_epochs`` (the trial's ``epochs``, capped by ASHA's
``max_t``), ``stopped_at_rung`` (the ASHA rung, in epochs, that stopped a
``stopped`` trial), ``failures``, ``error``, ``wall_time_s`` (first start to
last result, from the experiment state), ``time_total_s`` and
``train_time_s`` (Ray's and the trainable's clocks at the last epoch),
``config/<dotted key>`` columns, and ``last_<metric>`` for every numeric
metric and ``best_<metric>`` for the experiment's metric.
``epochs``: one row per trial-epoch with every reported metric.
"""

from __future__ import annotations

import io
import json
import math
import numbers
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd
import yaml

from scenetune.core import storage
from scenetune.core.errors import UserError
from scenetune.core.layout import DATA_CHECK_FILE, OWN_DIRS, RESOLVED_CONFIG_FILE, SPEC_FILE
from scenetune.core.rungs import scheduler_rungs

IGNORED_RESULT_KEYS = ("config", "date", "timestamp", "pid", "hostname", "node_ip", "should_checkpoint",
                       "done", "time_since_restore", "checkpoint_dir_name")
TUNE_STATUS = {"TERMINATED": "completed", "ERROR": "errored", "RUNNING": "running", "PENDING": "pending",
               "PAUSED": "pending"}


class ExperimentError(UserError):
    """Not an experiment directory we can read."""


@dataclass
class Experiment:
    uri: str
    trials: pd.DataFrame
    epochs: pd.DataFrame
    configs: dict[str, dict]
    spec: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    data_check: dict = field(default_factory=dict)  # bad/converted/skipped files; {} when none recorded
    # trial_id -> the config the trial ran with, every default filled in (its
    # scenetune_config.json); trials that wrote none (older ones) are absent.
    resolved: dict[str, dict] = field(default_factory=dict)

    def resolved_values(self, key: str) -> list:
        """The distinct values of a resolved config ``key`` over the trials, in trial order."""
        values = [config[key] for config in self.resolved.values() if key in config]
        return list(dict.fromkeys(values))

    @property
    def metric(self) -> str:
        return self.spec.get("metric", "val_accuracy")

    @property
    def mode(self) -> str:
        return self.spec.get("mode", "max")

    @property
    def name(self) -> str:
        return self.spec.get("name") or self.uri.rstrip("/").rsplit("/", 1)[-1]

    @property
    def rungs(self) -> list[int]:
        """The scheduler's rungs (epochs at which ASHA or HyperBand may stop a
        trial), ascending; [] without one."""
        return scheduler_rungs(self.spec.get("scheduler") or {})

    @property
    def errored(self) -> pd.DataFrame:
        """The errored trials with their error line."""
        if self.trials.empty:
            return self.trials
        return self.trials.loc[self.trials["status"] == "errored", ["trial_id", "trial_dir", "epochs", "failures",
                                                                     "error"]]


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            out.update(_flatten(value, path))
        else:
            out[path] = value
    return out


def _short(value, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters: a garbled value can be huge."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _read_text(uri: str, notes: list[str], what: str = "skipped") -> str | None:
    """The file's text, or None (noted) when it is not UTF-8."""
    data = storage.read_bytes(uri)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        notes.append(f"{uri}: not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start}); {what}")
        return None


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _parse_json(text: str):
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


def _epoch_number(value) -> int | None:
    """A result's ``training_iteration`` as an int >= 1 (a float of a whole
    number too: progress.csv gives floats when a cell is empty), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if not isinstance(value, numbers.Integral) and not (math.isfinite(value) and float(value).is_integer()):
        return None
    number = int(value)
    return number if 1 <= number <= MAX_EPOCH else None


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _clean_row(row: dict, where: str, notes: list[str]) -> dict | None:
    """A result row whose ``training_iteration`` is an epoch number, without
    values no table can hold (objects, lists, integers past a float's range);
    None (noted) without an epoch number."""
    epoch = _epoch_number(row.get("training_iteration"))
    if epoch is None:
        notes.append(f"{where}: no epoch number (training_iteration {_short(row.get('training_iteration'))}); "
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
        notes.append(f"{where}: trial_id {_short(trial_id)} is not text; ignored")
        del clean["trial_id"]
    return clean


def _latest_per_iteration(rows: list[dict], result_uri: str, notes: list[str]) -> list[dict]:
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


def _read_results(trial_uri: str, entries: set[str], notes: list[str]) -> list[dict]:
    result_uri = storage.join(trial_uri, "result.json")
    if "result.json" in entries:
        rows = []
        # Bytes split on \n, \r and \r\n only, each line decoded alone: one bad line costs one epoch.
        for number, raw in enumerate(storage.read_bytes(result_uri).splitlines(), 1):
            if not raw.strip():
                continue
            try:
                row = _parse_json(raw.decode("utf-8"))
            except UnicodeDecodeError:
                notes.append(f"{result_uri}: line {number} is not UTF-8 text; skipped")
                continue
            except ValueError:
                notes.append(f"{result_uri}: line {number} is not valid JSON (truncated?); skipped")
                continue
            if not isinstance(row, dict):
                notes.append(f"{result_uri}: line {number} is not a JSON object; skipped")
                continue
            row = _clean_row(row, f"{result_uri}: line {number}", notes)
            if row is not None:
                rows.append(row)
        rows = _latest_per_iteration(rows, result_uri, notes)
        iterations = [r.get("training_iteration") for r in rows]
        if iterations == list(range(1, len(rows) + 1)) or "progress.csv" not in entries:
            return rows
        # A gap: a retried trial's result.json can be replaced by an older copy
        # from storage, while progress.csv kept every row. Take each missing one.
        known = set(iterations)
        extra = [r for r in _read_progress(trial_uri, notes) if r.get("training_iteration") not in known]
        if extra:
            notes.append(f"{result_uri}: epochs {sorted(r['training_iteration'] for r in extra)} missing; "
                         "taken from progress.csv")
        return sorted(rows + extra, key=lambda r: r.get("training_iteration") or 0)
    if "progress.csv" in entries:
        notes.append(f"{result_uri}: missing; read progress.csv instead")
        return _read_progress(trial_uri, notes)
    return []


def _read_config(trial_uri: str, entries: set[str], results: list[dict], notes: list[str]) -> dict | None:
    """params.json, else the config in the first result; None when neither is
    readable: Ray writes params.json as a trial starts, so a live experiment
    can show it empty or half written."""
    if "params.json" in entries:
        params_uri = storage.join(trial_uri, "params.json")
        text = _read_text(params_uri, notes, "its config is read from result.json if it can be")
        if text is not None:
            try:
                config = _parse_json(text)
            except ValueError:
                notes.append(f"{params_uri}: not valid JSON (still being written?)")
            else:
                if isinstance(config, dict):
                    return config
                notes.append(f"{params_uri}: not a JSON object; its config is read from result.json if it can be")
    if results and isinstance(results[0].get("config"), dict):
        return results[0]["config"]
    return None if "params.json" in entries else {}


def _read_progress(trial_uri: str, notes: list[str]) -> list[dict]:
    progress_uri = storage.join(trial_uri, "progress.csv")
    text = _read_text(progress_uri, notes)
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
        row = _clean_row(record, f"{progress_uri}: line {number}", notes)
        if row is not None:
            rows.append(row)
    return _latest_per_iteration(rows, progress_uri, notes)


def _trial_states(uri: str, notes: list[str]) -> dict[str, dict]:
    """trial_id -> {tune_status, failures, error_file, wall_time_s, dir} from
    the newest state file."""
    names = [name for name, is_dir in storage.list_dir(uri)
             if not is_dir and name.startswith("experiment_state-") and name.endswith(".json")]
    if not names:
        notes.append(f"{uri}: no experiment_state-*.json; statuses inferred from the trial logs")
        return {}
    state_uri = storage.join(uri, sorted(names)[-1])
    inferred = "statuses inferred from the trial logs"
    text = _read_text(state_uri, notes, inferred)
    if text is None:
        return {}
    try:
        state = _parse_json(text)
    except ValueError:
        notes.append(f"{state_uri}: not valid JSON; {inferred}")
        return {}
    trial_data = state.get("trial_data") if isinstance(state, dict) else None
    if not isinstance(trial_data, list):
        notes.append(f"{state_uri}: no list of trials (trial_data); {inferred}")
        return {}
    out = {}
    for number, entry in enumerate(trial_data, 1):
        read = _trial_state(entry)
        if read is None:
            notes.append(f"{state_uri}: trial {number} of trial_data unreadable; its status is inferred")
        else:
            out[read[0]] = read[1]
    return out


def _trial_state(entry) -> tuple[str, dict] | None:
    """``(trial_id, state)`` of one ``trial_data`` entry (a pair of JSON
    texts: the trial, its run-time facts), or None when it is damaged."""
    if not isinstance(entry, list) or len(entry) != 2 or not all(isinstance(part, str) for part in entry):
        return None
    try:
        trial, runtime = _parse_json(entry[0]), _parse_json(entry[1])
    except ValueError:
        return None
    if not isinstance(trial, dict) or not isinstance(runtime, dict) or not isinstance(trial.get("trial_id"), str):
        return None

    def typed(tree: dict, key: str, kind, default=None):
        value = tree.get(key)
        return value if isinstance(value, kind) and not isinstance(value, bool) else default

    started, last = typed(runtime, "start_time", numbers.Real), typed(runtime, "last_result_time", numbers.Real)
    wall = last - started if started and last else None
    return trial["trial_id"], {"tune_status": typed(trial, "status", str),
                               "failures": typed(runtime, "num_failures", int, 0),
                               "error_file": typed(runtime, "error_filename", str),
                               "wall_time_s": wall if wall is not None and math.isfinite(wall) else None,
                               "dir": typed(trial, "relative_logdir", str)}


def _status(tune_status: str | None, has_error: bool, epochs: int, planned: int | None) -> str:
    if tune_status == "ERROR" or (tune_status is None and has_error):
        return "errored"
    if tune_status in (None, "TERMINATED"):
        if planned is not None and epochs < planned:
            return "stopped" if tune_status else "incomplete"
        return "completed"
    return TUNE_STATUS.get(tune_status, tune_status.lower())


def _planned_epochs(config: dict, scheduler: dict) -> int | None:
    """What a trial would run unstopped: its ``epochs``, capped by ASHA's
    ``max_t``; None when unknown (no ``epochs``, or not a whole number)."""
    planned = config.get("epochs")
    if isinstance(planned, bool) or not isinstance(planned, int) or planned < 0:
        return None
    if scheduler.get("name") in ("asha", "hyperband") and scheduler.get("max_t"):
        planned = min(planned, int(scheduler["max_t"]))
    return planned


def _stopped_at(status: str, epochs: int, rungs: list[int]) -> int | None:
    """The rung a stopped trial reached last: ASHA and HyperBand decide at a rung's epoch."""
    reached = [r for r in rungs if r <= epochs]
    return reached[-1] if status == "stopped" and reached else None


def load_experiment(uri: str) -> Experiment:
    """Read every trial of the experiment at ``uri`` (a path or ``s3://`` URI)."""
    uri = storage.normalize(uri)
    if not storage.is_dir(uri):
        raise ExperimentError(f"{uri}: no such experiment directory")
    notes: list[str] = []
    spec_uri = storage.join(uri, SPEC_FILE)
    spec = (yaml.safe_load(storage.read_text(spec_uri)) if storage.exists(spec_uri) else {}) or {}
    scheduler = spec.get("scheduler") or {}
    rungs = scheduler_rungs(scheduler)
    states = _trial_states(uri, notes)
    by_dir = {state["dir"]: trial_id for trial_id, state in states.items() if state.get("dir")}
    trial_rows, epoch_rows, configs, resolved = [], [], {}, {}
    for name, is_dir in storage.list_dir(uri):
        if not is_dir or name.startswith(".") or name in OWN_DIRS:
            continue
        trial_uri = storage.join(uri, name)
        entries = {n for n, _ in storage.list_dir(trial_uri)}
        if not entries & {"params.json", "result.json", "progress.csv"}:
            if not entries:
                notes.append(f"{trial_uri}: empty trial directory; skipped")
            continue
        results = _read_results(trial_uri, entries, notes)
        config = _read_config(trial_uri, entries, results, notes)
        if config is None:
            notes.append(f"{trial_uri}: no readable config or result yet (a trial just starting?); skipped")
            continue
        trial_id = _trial_id(name, results, by_dir)
        if trial_id in configs:
            notes.append(f"{trial_uri}: trial id {trial_id!r} already read from another trial directory; left out")
            continue
        if states and trial_id not in states and name not in by_dir:
            notes.append(f"{trial_uri}: not in Ray Tune's saved state (started after its last save, which a "
                         "running sweep makes every few seconds; after a killed driver, --resume does not "
                         "continue it); left out")
            continue
        configs[trial_id] = config
        if RESOLVED_CONFIG_FILE in entries:
            resolved_uri = storage.join(trial_uri, RESOLVED_CONFIG_FILE)
            try:
                resolved_config = _parse_json(storage.read_bytes(resolved_uri).decode("utf-8"))
            except ValueError:  # UnicodeDecodeError is one
                resolved_config = None
            if isinstance(resolved_config, dict):
                resolved[trial_id] = resolved_config
            else:
                notes.append(f"{resolved_uri}: not a valid JSON object; the trial's defaults are unknown")
        state = states.get(trial_id, {})
        for r in results:  # one frame at the end: far faster than a frame per trial
            row = {k: v for k, v in r.items() if k not in IGNORED_RESULT_KEYS}
            row["trial_id"] = trial_id
            epoch_rows.append(row)
        status = _status(state.get("tune_status"), "error.txt" in entries, len(results),
                         _planned_epochs(config, scheduler))
        row = {"trial_id": trial_id, "trial_dir": name, "status": status, "epochs": len(results),
               "planned_epochs": _planned_epochs(config, scheduler),
               "stopped_at_rung": _stopped_at(status, len(results), rungs),
               "failures": state.get("failures", 0),
               "error": _first_error_line(trial_uri) if "error.txt" in entries else None,
               "wall_time_s": state.get("wall_time_s")}
        row.update({f"config/{k}": v for k, v in _flatten(config).items() if not k.startswith("data.")})
        if results:
            last = results[-1]
            for key in ("time_total_s", "train_time_s"):
                row[key] = last.get(key) if _is_number(last.get(key)) else None  # not a number: noted below
            if row["wall_time_s"] is None:
                row["wall_time_s"] = row["time_total_s"]
        trial_rows.append(row)
    if not trial_rows:
        notes.append(f"{uri}: no trials found")
    trials = pd.DataFrame(trial_rows)
    epochs = pd.DataFrame(epoch_rows)
    if "trial_id" in epochs:
        epochs["trial_id"] = epochs["trial_id"].astype(str)
        dirs = {row["trial_id"]: storage.join(uri, row["trial_dir"]) for row in trial_rows}
        epochs = _numbers_where_numbers_are(epochs, dirs, notes)
    experiment = Experiment(uri, trials, epochs, configs, spec, notes, resolved=resolved)
    check_uri = storage.join(uri, DATA_CHECK_FILE)
    if storage.exists(check_uri):
        try:
            check = _parse_json(storage.read_bytes(check_uri).decode("utf-8"))
        except ValueError:
            check = None
        if isinstance(check, dict):
            experiment.data_check = check
        else:
            notes.append(f"{check_uri}: not a valid JSON object; the data check is not shown")
    _add_metric_summaries(experiment)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return experiment


def _numbers_where_numbers_are(epochs: pd.DataFrame, dirs: dict[str, str], notes: list[str]) -> pd.DataFrame:
    """A metric that some epochs report as numbers is a number: any other
    value of it (text, true/false) reads as missing, noted with its trial
    and epoch. Columns of text only (such as GAN's ``fid_extractor``) stay."""
    for column in epochs.columns:
        if column == "trial_id" or epochs[column].dtype != object:
            continue
        values = epochs[column]
        numeric = values.map(_is_number).astype(bool)
        if not numeric.any():
            continue
        odd = values.notna() & ~numeric
        for trial_id, epoch, value in zip(epochs.loc[odd, "trial_id"], epochs.loc[odd, "training_iteration"],
                                          values[odd]):
            notes.append(f"{dirs.get(trial_id, trial_id)}: {column} at epoch {epoch} is {_short(value)}, "
                         "not a number; read as missing")
        epochs[column] = pd.to_numeric(values.where(numeric), errors="coerce")
    return epochs


def _trial_id(name: str, results: list[dict], by_dir: dict[str, str]) -> str:
    """The trial's id: its first result's, else the saved state's for its
    directory, else one from its directory's name."""
    if results and results[0].get("trial_id"):
        return results[0]["trial_id"]
    return by_dir.get(name) or _id_from_dirname(name)


def _id_from_dirname(name: str) -> str:
    """``<trainable>_<id>_...`` -> ``<id>``: a guess for a trial the state file does not list."""
    parts = name.split("_")
    return parts[1] if len(parts) > 1 else name


def _first_error_line(trial_uri: str) -> str:
    text = storage.read_bytes(storage.join(trial_uri, "error.txt")).decode("utf-8", "replace").strip().splitlines()
    return text[-1][:300] if text else "error"


def _add_metric_summaries(exp: Experiment) -> None:
    """``last_<metric>`` and ``best_<metric>`` for every numeric metric."""
    if exp.trials.empty or exp.epochs.empty:
        return
    numeric = exp.epochs.select_dtypes("number").columns.drop("trial_id", errors="ignore")
    grouped = exp.epochs.sort_values("training_iteration").groupby("trial_id")[list(numeric)]
    last = grouped.last().add_prefix("last_")
    best = (grouped.max() if exp.mode == "max" else grouped.min())[[exp.metric]].add_prefix("best_") \
        if exp.metric in numeric else pd.DataFrame()
    exp.trials = exp.trials.join(last, on="trial_id").join(best, on="trial_id")
