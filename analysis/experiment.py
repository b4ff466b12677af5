"""An experiment directory (local or remote) read into tidy DataFrames.

Sources, all written by Ray Tune: each trial directory's ``params.json``
(config) and ``result.json`` (one JSON line per reported epoch; its
``progress.csv`` when ``result.json`` is missing), and the newest
``experiment_state-*.json`` (each trial's status, failures and error file).
Damaged inputs (a truncated last line, a missing file, an empty trial
directory) are skipped with a warning naming the file, never a crash.

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
        lines = storage.read_text(result_uri).splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                notes.append(f"{result_uri}: line {number} is not valid JSON (truncated?); skipped")
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
        try:
            return json.loads(storage.read_text(params_uri))
        except json.JSONDecodeError:
            notes.append(f"{params_uri}: not valid JSON (still being written?)")
    if results and isinstance(results[0].get("config"), dict):
        return results[0]["config"]
    return None if "params.json" in entries else {}


def _read_progress(trial_uri: str, notes: list[str]) -> list[dict]:
    progress_uri = storage.join(trial_uri, "progress.csv")
    try:
        # Trial ids are hex: "50152306" would read as a number, "1e123456" as infinity.
        return pd.read_csv(io.StringIO(storage.read_text(progress_uri)), dtype={"trial_id": str}).to_dict("records")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        notes.append(f"{progress_uri}: unreadable ({e}); skipped")
        return []


def _trial_states(uri: str, notes: list[str]) -> dict[str, dict]:
    """trial_id -> {tune_status, failures, error_file, wall_time_s, dir} from
    the newest state file."""
    names = [name for name, is_dir in storage.list_dir(uri)
             if not is_dir and name.startswith("experiment_state-") and name.endswith(".json")]
    if not names:
        notes.append(f"{uri}: no experiment_state-*.json; statuses inferred from the trial logs")
        return {}
    state_uri = storage.join(uri, sorted(names)[-1])
    try:
        state = json.loads(storage.read_text(state_uri))
    except json.JSONDecodeError:
        notes.append(f"{state_uri}: not valid JSON; statuses inferred from the trial logs")
        return {}
    out = {}
    for trial_json, runtime_json in state.get("trial_data", []):
        trial, runtime = json.loads(trial_json), json.loads(runtime_json)
        started, last = runtime.get("start_time"), runtime.get("last_result_time")
        out[trial["trial_id"]] = {"tune_status": trial.get("status"),
                                  "failures": runtime.get("num_failures", 0),
                                  "error_file": runtime.get("error_filename"),
                                  "wall_time_s": last - started if started and last else None,
                                  "dir": trial.get("relative_logdir")}
    return out


def _status(tune_status: str | None, has_error: bool, epochs: int, planned: int | None) -> str:
    if tune_status == "ERROR" or (tune_status is None and has_error):
        return "errored"
    if tune_status in (None, "TERMINATED"):
        if planned is not None and epochs < planned:
            return "stopped" if tune_status else "incomplete"
        return "completed"
    return TUNE_STATUS.get(tune_status, tune_status.lower())


def _planned_epochs(config: dict, scheduler: dict) -> int | None:
    """What a trial would run unstopped: its ``epochs``, capped by ASHA's ``max_t``."""
    planned = config.get("epochs")
    if planned is not None and scheduler.get("name") in ("asha", "hyperband") and scheduler.get("max_t"):
        planned = min(int(planned), int(scheduler["max_t"]))
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
        trial_id = str(results[0]["trial_id"]) if results else by_dir.get(name) or _id_from_dirname(name)
        if states and trial_id not in states and name not in by_dir:
            notes.append(f"{trial_uri}: not in Ray Tune's saved state (started after its last save, which a "
                         "running sweep makes every few seconds; after a killed driver, --resume does not "
                         "continue it); left out")
            continue
        configs[trial_id] = config
        if RESOLVED_CONFIG_FILE in entries:
            resolved_uri = storage.join(trial_uri, RESOLVED_CONFIG_FILE)
            try:
                resolved[trial_id] = json.loads(storage.read_text(resolved_uri))
            except (json.JSONDecodeError, UnicodeDecodeError):
                notes.append(f"{resolved_uri}: not valid JSON; the trial's defaults are unknown")
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
                row[key] = last.get(key)
            if row["wall_time_s"] is None:
                row["wall_time_s"] = last.get("time_total_s")
        trial_rows.append(row)
    if not trial_rows:
        notes.append(f"{uri}: no trials found")
    trials = pd.DataFrame(trial_rows)
    epochs = pd.DataFrame(epoch_rows)
    if "trial_id" in epochs:
        epochs["trial_id"] = epochs["trial_id"].astype(str)
    experiment = Experiment(uri, trials, epochs, configs, spec, notes, resolved=resolved)
    check_uri = storage.join(uri, DATA_CHECK_FILE)
    if storage.exists(check_uri):
        experiment.data_check = json.loads(storage.read_text(check_uri))
    _add_metric_summaries(experiment)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return experiment


def _id_from_dirname(name: str) -> str:
    """``<trainable>_<id>_...`` -> ``<id>``: a guess for a trial the state file does not list."""
    parts = name.split("_")
    return parts[1] if len(parts) > 1 else name


def _first_error_line(trial_uri: str) -> str:
    text = storage.read_text(storage.join(trial_uri, "error.txt")).strip().splitlines()
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
