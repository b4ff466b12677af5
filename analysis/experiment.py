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
``started_at`` and ``ended_at`` (Unix seconds: first start, last result;
None without the experiment state),
``config/<dotted key>`` columns, and ``last_<metric>`` for every numeric
metric and ``best_<metric>`` for the experiment's metric.
``epochs``: one row per trial-epoch with every reported metric.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import pandas as pd
import yaml

from scenetune.analysis.trial_logs import (
    IGNORED_RESULT_KEYS,
    is_number,
    parse_json,
    read_config,
    read_results,
    short,
    trial_states,
)
from scenetune.core import storage
from scenetune.core.errors import UserError
from scenetune.core.layout import DATA_CHECK_FILE, OWN_DIRS, RESOLVED_CONFIG_FILE, SPEC_FILE
from scenetune.core.rungs import scheduler_rungs
from scenetune.core.trees import flatten

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
    states = trial_states(uri, notes)
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
        results = read_results(trial_uri, entries, notes)
        config = read_config(trial_uri, entries, results, notes)
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
                resolved_config = parse_json(storage.read_bytes(resolved_uri).decode("utf-8"))
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
               "wall_time_s": state.get("wall_time_s"), "started_at": state.get("started_at"),
               "ended_at": state.get("ended_at")}
        row.update({f"config/{k}": v for k, v in flatten(config).items() if not k.startswith("data.")})
        if results:
            last = results[-1]
            for key in ("time_total_s", "train_time_s"):
                row[key] = last.get(key) if is_number(last.get(key)) else None  # not a number: noted below
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
            check = parse_json(storage.read_bytes(check_uri).decode("utf-8"))
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
        numeric = values.map(is_number).astype(bool)
        if not numeric.any():
            continue
        odd = values.notna() & ~numeric
        for trial_id, epoch, value in zip(epochs.loc[odd, "trial_id"], epochs.loc[odd, "training_iteration"],
                                          values[odd]):
            notes.append(f"{dirs.get(trial_id, trial_id)}: {column} at epoch {epoch} is {short(value)}, "
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
