"""The seed report's tables, rebuilt from an experiment's trial logs.

- :func:`table_by` (Table 1, generalised): per value of one parameter, the
  best trial's metric (and its test accuracy when the final evaluation is of
  that trial), its training time, the mean and spread over the trials with
  that value, and how many there were.
- :func:`model_summary` (Table 2): one row per backbone, laid out as the
  report's Table 2 (model, pretrained network, parameters, augmentation,
  accuracy).
- :func:`classification_table` (Table 3): scikit-learn's classification report
  in the report's layout (a row per class, then accuracy, macro and weighted
  averages).

A trial's metric is its value at its last reported epoch (``last_<metric>``),
as ASHA and ``scenetune best`` rank trials. Tables are plain DataFrames with
full precision (the CSV files); ``table.attrs["floatfmt"]`` says how to show
them in Markdown, HTML and LaTeX.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report

from scenetune.analysis.experiment import Experiment, ExperimentError
from scenetune.analysis.final import FinalEvaluation

# Augmentation values that mean "off" (scenetune.trainables.classifier.config.Augment's defaults).
AUGMENT_OFF = {"rotation_range": 0, "zoom_range": 0, "width_shift_range": 0, "height_shift_range": 0,
               "shear_range": 0, "horizontal_flip": False, "brightness_range": None, "fill_mode": "nearest",
               "cval": 0}


def scored_trials(exp: Experiment) -> pd.DataFrame:
    """Trials that reported the experiment's metric, with ``score`` (its last
    value) and ``time_s`` (``train_time_s``, else Ray's ``time_total_s``)."""
    column = f"last_{exp.metric}"
    if exp.trials.empty or column not in exp.trials:
        return pd.DataFrame()
    trials = exp.trials.dropna(subset=[column]).copy()
    trials["score"] = trials[column].astype(float)
    time_column = "train_time_s" if "train_time_s" in trials and trials["train_time_s"].notna().any() \
        else "time_total_s"
    trials["time_s"] = trials[time_column].astype(float)
    return trials


def group_keys(values: pd.Series) -> pd.Series:
    """A ``config/`` column as keys to group or count by: as it is when its
    values can be told apart and sorted (all numbers, or all text), else each
    value as its text: a damaged trial log can put a list, an object or text
    where the other trials have numbers."""
    try:
        sorted(set(values.dropna()))
        return values
    except TypeError:
        return values.map(lambda v: v if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))


def _best_index(values: pd.Series, mode: str):
    return values.idxmax() if mode == "max" else values.idxmin()


def _test_accuracy(final: FinalEvaluation | None, trial_id: str) -> float:
    if final is not None and final.trial_id == trial_id:
        return float(final.metrics["accuracy"])
    return np.nan


def parameter_names(exp: Experiment) -> list[str]:
    return sorted(c.removeprefix("config/") for c in exp.trials.columns if c.startswith("config/"))


def table_by(exp: Experiment, by: str = "image_size", final: FinalEvaluation | None = None) -> pd.DataFrame:
    """Table 1: accuracy vs training time for each value of the parameter ``by``."""
    column = f"config/{by}"
    if column not in exp.trials:
        raise ExperimentError(f"--by: {by!r} is not a parameter of this experiment; "
                         f"known: {', '.join(parameter_names(exp))}")
    trials = scored_trials(exp)
    metric = exp.metric
    rows = []
    for value, group in trials.groupby(group_keys(trials[column]), sort=True, dropna=False):
        best = group.loc[_best_index(group["score"], exp.mode)]
        rows.append({by: value, f"best_{metric}": best["score"],
                     "test_accuracy": _test_accuracy(final, best["trial_id"]),
                     "train_time_s": best["time_s"], f"mean_{metric}": group["score"].mean(),
                     f"std_{metric}": group["score"].std(), "trials": len(group), "best_trial": best["trial_id"]})
    table = pd.DataFrame(rows, columns=[by, f"best_{metric}", "test_accuracy", "train_time_s", f"mean_{metric}",
                                        f"std_{metric}", "trials", "best_trial"])
    table.attrs["floatfmt"] = ".4g"
    return table


def _number(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _parameters(config: dict, epochs_run: int, pretrained: bool) -> str:
    """The report's "PARAMETERS" cell."""
    parts = []
    if pretrained:
        parts.append(f"Base model trainable layers: {config.get('trainable_layers', 0)}")
    else:
        parts.append(f"Blocks: {config.get('cnn_blocks', 3)}, filters: {config.get('cnn_filters', 32)}")
    parts += [f"Activation: {config.get('dense_activation', 'relu')}",
              f"Pooling: {({'avg': 'average'}).get(config.get('pooling', 'avg'), config.get('pooling'))}",
              f"Learning rate: {_number(config.get('learning_rate', 1e-4))}"]
    planned = config.get("epochs")
    parts.append(f"Epochs: {epochs_run}" + (f" of {planned}" if planned and planned != epochs_run else ""))
    parts += [f"Batch size: {config.get('batch_size', 20)}", f"Image size: {config.get('image_size', 224)}"]
    return "; ".join(parts)


def _augmentation(config: dict) -> str:
    augment = config.get("augment") or {}
    if not isinstance(augment, dict):  # a damaged params.json: shown as it is
        return str(augment)
    used = [f"{key} = {_number(value) if not isinstance(value, str) else repr(value)}"
            for key, value in sorted(augment.items())
            if key != "fill_mode" and AUGMENT_OFF.get(key, None) != value and value not in (None, 0, False)]
    if used:  # how shifted-in pixels are filled matters once anything moves (the report lists it)
        used.append(f'fill_mode = "{augment.get("fill_mode", AUGMENT_OFF["fill_mode"])}"')
    return ", ".join(used) or "N/A"


def model_summary(exp: Experiment, final: FinalEvaluation | None = None,
                  networks: dict[str, str] | None = None) -> pd.DataFrame:
    """Table 2: the best trial of each backbone, in the report's layout.
    ``networks`` maps backbone names to the pretrained network's name; by
    default, what the trials recorded in their resolved configs (a backbone
    with none recorded is shown as not pretrained)."""
    if networks is None:
        networks = {c["backbone"]: c["backbone_network"] for c in exp.resolved.values()
                    if c.get("backbone") and c.get("backbone_network")}
    trials = scored_trials(exp)
    if "config/backbone" not in trials:
        trials["config/backbone"] = "(default)"
    metric = exp.metric
    rows = []
    for backbone, group in trials.groupby(group_keys(trials["config/backbone"]), sort=True):
        best = group.loc[_best_index(group["score"], exp.mode)]
        config = exp.configs.get(best["trial_id"], {})
        pretrained = backbone in networks
        rows.append({"model": "CNN_Pretrained" if pretrained else "Basic_CNN" if backbone == "basic_cnn" else backbone,
                     "pretrained network": networks.get(backbone, "N/A"),
                     "parameters": _parameters(config, int(best["epochs"]), pretrained),
                     "data augmentation": _augmentation(config),
                     metric: best["score"], "accuracy test set": _test_accuracy(final, best["trial_id"]),
                     "trial": best["trial_id"], "trials": len(group)})
    table = pd.DataFrame(rows, columns=["model", "pretrained network", "parameters", "data augmentation", metric,
                                        "accuracy test set", "trial", "trials"])
    table.attrs["floatfmt"] = ".2f"
    return table


def classification_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Table 3: precision, recall, F1 and support per class, then accuracy
    and the macro and weighted averages (scikit-learn's numbers, unrounded)."""
    classes = [c.removeprefix("prob_") for c in predictions.columns if c.startswith("prob_")]
    classes = classes or sorted(set(predictions["true"]) | set(predictions["predicted"]))
    report = classification_report(predictions["true"].astype(str), predictions["predicted"].astype(str),
                                   labels=classes, output_dict=True, zero_division=0)
    rows = [{"class": c, **report[c]} for c in classes]
    total = int(sum(report[c]["support"] for c in classes))
    accuracy = report.get("accuracy", report.get("micro avg", {}).get("f1-score"))
    rows.append({"class": "accuracy", "precision": np.nan, "recall": np.nan, "f1-score": accuracy, "support": total})
    rows += [{"class": name, **report[name]} for name in ("macro avg", "weighted avg")]
    table = pd.DataFrame(rows, columns=["class", "precision", "recall", "f1-score", "support"])
    table["support"] = table["support"].astype(int)
    table.attrs["floatfmt"] = ".2f"
    return table
