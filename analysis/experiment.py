"""An experiment directory (local or remote) read into tidy DataFrames.

Sources, all written by Ray Tune: each trial directory's ``params.json``
(config) and ``result.json`` (one JSON line per reported epoch; its
``progress.csv`` when ``result.json`` is missing), and the newest
``experiment_state-*.json`` (each trial's status, failures and error file).
Damaged inputs (a truncated last line, a missing file, an empty trial
directory) are skipped with a warning naming the file, never a crash.

``trials``: one row per trial: ``trial_id``, ``status`` (``completed``,
``stopped`` early by the scheduler, ``errored``, ``running``, ``pending``),
``epochs`` run, ``failures``, ``error``, ``config/<dotted key>`` columns, and
``last_<metric>`` / ``best_<metric>`` columns for the experiment's metric.
``epochs``: one row per trial-epoch with every reported metric.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass, field

import pandas as pd
import yaml

from analysis import storage

SPEC_FILE = "scenetune_spec.yaml"
MANIFEST_FILE = "split.csv"
DATA_CHECK_FILE = "data_check.json"  # written by the sweep's data check (trainables.datacheck)
IGNORED_RESULT_KEYS = ("config", "date", "timestamp", "pid", "hostname", "node_ip", "should_checkpoint",
                       "done", "time_since_restore", "iterations_since_restore", "checkpoint_dir_name")
TUNE_STATUS = {"TERMINATED": "completed", "ERROR": "errored", "RUNNING": "running", "PENDING": "pending",
               "PAUSED": "pending"}


class ExperimentError(ValueError):
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

    @property
    def metric(self) -> str:
        return self.spec.get("metric", "val_accuracy")

    @property
    def mode(self) -> str:
        return self.spec.get("mode", "max")


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            out.update(_flatten(value, path))
        else:
            out[path] = value
    return out


def _read_results(trial_uri: str, notes: list[str]) -> list[dict]:
    result_uri = storage.join(trial_uri, "result.json")
    if storage.exists(result_uri):
        rows = []
        lines = storage.read_text(result_uri).splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                notes.append(f"{result_uri}: line {number} is not valid JSON (truncated?); skipped")
        return rows
    progress_uri = storage.join(trial_uri, "progress.csv")
    if storage.exists(progress_uri):
        notes.append(f"{result_uri}: missing; read {progress_uri} instead")
        try:
            return pd.read_csv(io.StringIO(storage.read_text(progress_uri))).to_dict("records")
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            notes.append(f"{progress_uri}: unreadable ({e}); skipped")
    return []


def _trial_states(uri: str, notes: list[str]) -> dict[str, dict]:
    """trial_id -> {status, failures, error_file} from the newest state file."""
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
        out[trial["trial_id"]] = {"tune_status": trial.get("status"),
                                  "failures": runtime.get("num_failures", 0),
                                  "error_file": runtime.get("error_filename")}
    return out


def _status(tune_status: str | None, has_error: bool, epochs: int, planned: int | None) -> str:
    if tune_status == "ERROR" or (tune_status is None and has_error):
        return "errored"
    if tune_status in (None, "TERMINATED"):
        if planned is not None and epochs < planned:
            return "stopped" if tune_status else "incomplete"
        return "completed"
    return TUNE_STATUS.get(tune_status, tune_status.lower())


def load_experiment(uri: str) -> Experiment:
    """Read every trial of the experiment at ``uri`` (a path or ``s3://`` URI)."""
    uri = storage.normalize(uri)
    if not storage.is_dir(uri):
        raise ExperimentError(f"{uri}: no such experiment directory")
    notes: list[str] = []
    spec_uri = storage.join(uri, SPEC_FILE)
    spec = yaml.safe_load(storage.read_text(spec_uri)) if storage.exists(spec_uri) else {}
    states = _trial_states(uri, notes)
    trial_rows, epoch_frames, configs = [], [], {}
    for name, is_dir in storage.list_dir(uri):
        if not is_dir or name.startswith("."):
            continue
        trial_uri = storage.join(uri, name)
        entries = {n for n, _ in storage.list_dir(trial_uri)}
        if not entries & {"params.json", "result.json", "progress.csv"}:
            if not entries:
                notes.append(f"{trial_uri}: empty trial directory; skipped")
            continue
        results = _read_results(trial_uri, notes)
        config = {}
        if "params.json" in entries:
            config = json.loads(storage.read_text(storage.join(trial_uri, "params.json")))
        elif results and isinstance(results[0].get("config"), dict):
            config = results[0]["config"]
        trial_id = str(results[0]["trial_id"]) if results else name.split("_")[1] if "_" in name else name
        configs[trial_id] = config
        state = states.get(trial_id, {})
        epochs = pd.DataFrame([{k: v for k, v in r.items() if k not in IGNORED_RESULT_KEYS} for r in results])
        if not epochs.empty:
            epochs["trial_id"] = trial_id
            epoch_frames.append(epochs)
        planned = config.get("epochs")
        row = {"trial_id": trial_id, "trial_dir": name,
               "status": _status(state.get("tune_status"), "error.txt" in entries, len(results), planned),
               "epochs": len(results), "failures": state.get("failures", 0),
               "error": _first_error_line(trial_uri) if "error.txt" in entries else None}
        row.update({f"config/{k}": v for k, v in _flatten(config).items() if not k.startswith("data.")})
        if results:
            last = results[-1]
            for key in ("time_total_s", "train_time_s"):
                row[key] = last.get(key)
        trial_rows.append(row)
    if not trial_rows:
        notes.append(f"{uri}: no trials found")
    trials = pd.DataFrame(trial_rows)
    epochs = pd.concat(epoch_frames, ignore_index=True) if epoch_frames else pd.DataFrame()
    experiment = Experiment(uri, trials, epochs, configs, spec or {}, notes)
    check_uri = storage.join(uri, DATA_CHECK_FILE)
    if storage.exists(check_uri):
        experiment.data_check = json.loads(storage.read_text(check_uri))
    _add_metric_summaries(experiment)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return experiment


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
