"""An experiment written as an Optuna study, for optuna-dashboard
(``scenetune export EXPERIMENT --optuna sqlite:///study.db``).

Every trial becomes one Optuna trial. Its params are the searched parameters
with the spec's own space declarations as distributions (inferred from the
values without a spec space, as for importance). A value outside its
distribution (a space edited after the sweep) is left out of that trial's
params and kept in its ``outside_space`` user attribute; a missing one (a
parameter the trial did not have) is left out. Values are each objective's
value at the trial's last epoch that reported them finite, as ``scenetune
best`` ranks; intermediate values are the (first) metric per epoch; each
trial's start and end are its first start and last result (Ray Tune's
experiment state), not the moment of the export.

States: ``completed`` -> COMPLETE; ``stopped`` by the scheduler -> PRUNED,
with its last value as Optuna itself gives a pruned trial; ``errored`` ->
FAIL; ``running``, ``pending`` and ``incomplete`` -> FAIL too (a snapshot
would leave RUNNING trials running for ever and WAITING ones to be run by a
later ``optimize``); a ``completed`` trial with no value -> FAIL. Optuna
gives a FAIL trial no value, so every trial also keeps its values in the
``last_<metric>`` user attributes, with ``trial_id``, ``trial_dir``,
``epochs``, ``status`` (the scenetune one) and its error line.
"""

from __future__ import annotations

import datetime
import logging
import math
import warnings

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from scenetune.analysis.experiment import Experiment
from scenetune.analysis.pareto import objectives_of
from scenetune.core.errors import UserError
from scenetune.spaces import optuna_distribution, parse_space

STATES = {"completed": TrialState.COMPLETE, "stopped": TrialState.PRUNED}  # any other status: FAIL


class ExportError(UserError):
    """A storage optuna cannot open, or a study name it already holds."""


def space_distributions(exp: Experiment, trials: pd.DataFrame) -> dict[str, BaseDistribution]:
    """The spec's space as Optuna distributions; without one, inferred from
    the ``config/`` columns of ``trials`` that vary."""
    space = exp.spec.get("space") or {}
    if space:
        out = {}
        for key, param in parse_space(space).items():
            if param.kind == "grid":  # grid axes have no Optuna kind of their own: categorical
                out[key] = CategoricalDistribution(list(param.args))
            else:
                out[key] = optuna_distribution(param)
        return out
    out = {}
    for column in trials.columns:
        if not column.startswith("config/") or trials[column].map(lambda v: isinstance(v, (list, dict))).any():
            continue  # list values (progressive_resize...) are settings, not searched parameters
        if trials[column].nunique(dropna=True) < 2:
            continue
        values = trials[column].dropna()
        key = column.removeprefix("config/")
        if pd.api.types.is_float_dtype(values):
            out[key] = FloatDistribution(float(values.min()), float(values.max()))
        elif pd.api.types.is_integer_dtype(values) and not pd.api.types.is_bool_dtype(values):
            out[key] = IntDistribution(int(values.min()), int(values.max()))
        else:
            out[key] = CategoricalDistribution(sorted(values.unique().tolist(), key=str))
    return out


def trial_params(row: pd.Series, distributions: dict[str, BaseDistribution]) -> tuple[dict, dict]:
    """``(params, outside)`` of a trial row: each parameter's value as its
    distribution holds it, and the values outside their distribution. A
    parameter the row lacks is in neither."""
    params, outside = {}, {}
    for key, distribution in distributions.items():
        value = row.get(f"config/{key}")
        value = value.item() if hasattr(value, "item") else value
        if value is None and isinstance(distribution, CategoricalDistribution) and None in distribution.choices:
            pass  # a declared null choice
        elif value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
            continue
        try:
            internal = distribution.to_internal_repr(value)
            inside = distribution._contains(internal)
        except (ValueError, TypeError):
            inside = False
        if inside:
            params[key] = distribution.to_external_repr(internal)
        else:
            outside[key] = value
    return params, outside


def last_values(exp: Experiment, metrics: list[str]) -> pd.DataFrame:
    """Per trial (the index), ``metrics`` at its last epoch that reported all
    of them finite (``scenetune best``'s scope ``last``)."""
    if exp.epochs.empty or any(m not in exp.epochs for m in metrics):
        return pd.DataFrame(columns=metrics)
    rows = exp.epochs.dropna(subset=metrics)
    rows = rows[np.isfinite(rows[metrics].astype(float)).all(axis=1)]
    return rows.sort_values("training_iteration", kind="stable").groupby("trial_id").tail(1) \
        .set_index("trial_id")[metrics].astype(float)


def _intermediate(exp: Experiment, metric: str) -> dict[str, dict[int, float]]:
    if exp.epochs.empty or metric not in exp.epochs:
        return {}
    rows = exp.epochs.dropna(subset=[metric, "training_iteration"])
    return {trial_id: {int(step): float(value) for step, value in zip(group["training_iteration"], group[metric])}
            for trial_id, group in rows.groupby("trial_id")}


def _frozen_trial(row: pd.Series, distributions: dict, values: list[float] | None, metrics: list[str],
                  steps: dict[int, float]) -> optuna.trial.FrozenTrial:
    params, outside = trial_params(row, distributions)
    state = STATES.get(row["status"], TrialState.FAIL)
    if values is None and state == TrialState.COMPLETE:
        state = TrialState.FAIL  # Optuna's COMPLETE needs a value
    attrs = {"trial_id": str(row["trial_id"]), "trial_dir": str(row["trial_dir"]), "epochs": int(row["epochs"]),
             "status": str(row["status"])}
    attrs.update({f"last_{m}": v for m, v in zip(metrics, values or [])})
    for key in ("wall_time_s", "train_time_s"):
        if isinstance(row.get(key), (int, float)) and math.isfinite(row[key]):
            attrs[key] = float(row[key])
    if isinstance(row.get("error"), str):
        attrs["error"] = row["error"]
    if outside:
        attrs["outside_space"] = outside
    trial = optuna.trial.create_trial(state=state, values=None if state == TrialState.FAIL else values,
                                      params=params, distributions={k: distributions[k] for k in params},
                                      user_attrs=attrs, intermediate_values=steps)
    started, ended = _when(row.get("started_at")), _when(row.get("ended_at"))
    if started is not None and ended is not None:  # create_trial stamps both with now
        trial.datetime_start, trial.datetime_complete = started, ended
    return trial


def _when(seconds) -> datetime.datetime | None:
    """Unix seconds as Optuna keeps its trials' times (local, naive)."""
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return None
    return datetime.datetime.fromtimestamp(float(seconds))


def experiment_trials(exp: Experiment, distributions: dict[str, BaseDistribution],
                      rows: pd.DataFrame | None = None) -> list[optuna.trial.FrozenTrial]:
    """The trials of ``exp`` (or these ``rows`` of its trials) as Optuna
    trials of ``distributions``, each with its real start and end: the one
    reading shared by ``scenetune export --optuna`` and warm start."""
    metrics = [o["metric"] for o in objectives_of(exp)]
    rows = exp.trials if rows is None else rows
    last, steps = last_values(exp, metrics), _intermediate(exp, metrics[0])
    return [_frozen_trial(row, distributions, last.loc[row["trial_id"]].tolist() if row["trial_id"] in last.index
                          else None, metrics, steps.get(row["trial_id"], {})) for _, row in rows.iterrows()]


def _open_storage(url: str) -> optuna.storages.RDBStorage:
    import sqlalchemy

    where = f"--optuna {url}"
    try:
        parsed = sqlalchemy.engine.make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
            raise ExportError(f"{where}: an in-memory database would vanish with this process; "
                              "give a file, e.g. sqlite:///study.db")
        return optuna.storages.RDBStorage(url)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, optuna.exceptions.StorageInternalError) as e:
        # A URL sqlalchemy cannot parse or has no dialect for, a database
        # driver that is not installed, a database that cannot be opened.
        raise ExportError(f"{where}: optuna cannot open this storage ({_first_line(e)}); give a database URL, "
                          "e.g. sqlite:///study.db") from None
    except RuntimeError as e:
        if "table schema" not in str(e):  # Optuna's check of the database's schema version; anything else is a bug
            raise
        raise ExportError(f"{where}: optuna cannot open this storage ({_first_line(e)})") from None


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def export_study(exp: Experiment, storage_url: str, study_name: str | None = None) -> optuna.Study:
    """Write ``exp`` as a new study ``study_name`` (default: the experiment's
    name) in the Optuna storage at ``storage_url``; returns the study. Never
    adds to or replaces a study already there."""
    if exp.trials.empty:
        raise ExportError(f"{exp.uri}: no trials to export")
    study_name = study_name or exp.name
    objectives = objectives_of(exp)
    metrics = [o["metric"] for o in objectives]
    trials = experiment_trials(exp, space_distributions(exp, exp.trials))
    storage = _open_storage(storage_url)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        study = optuna.create_study(storage=storage, study_name=study_name, load_if_exists=False,
                                    directions=["maximize" if o["mode"] == "max" else "minimize" for o in objectives])
    except optuna.exceptions.DuplicatedStudyError:
        raise ExportError(f"--study-name: {storage_url} already holds a study named {study_name!r}; pick another "
                          "--study-name or storage (it was left unchanged)") from None
    except optuna.exceptions.StorageInternalError as e:  # a read-only or locked database
        raise ExportError(f"--optuna {storage_url}: optuna could not write to it ({e.__cause__ or e})") from None
    finally:
        optuna.logging.set_verbosity(verbosity)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(metrics)
        study.set_user_attr("experiment", exp.uri)
        study.add_trials(trials)
    except BaseException:
        optuna.delete_study(study_name=study_name, storage=storage)  # ours, half written
        raise
    return study
