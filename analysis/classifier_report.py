"""The classifier's part of the report: the seed report's Tables 1-3 and
Figures 1-2, plus the sweep's own figures (accuracy against training time with
the Pareto front, every trial's curve with the scheduler's rungs, hyperparameter
importance).

Table 3 and the confusion matrix come from the final evaluation on the test
split (``EXPERIMENT/final/``) when it exists; otherwise from the best trial's
validation predictions, and the report says so.
"""

from __future__ import annotations

import io
import os

import pandas as pd

from scenetune.analysis import figures
from scenetune.analysis.best import best_in_report
from scenetune.analysis.deploy_report import deployment_section
from scenetune.analysis.experiment import Experiment
from scenetune.analysis.final import read_final
from scenetune.analysis.importance import param_importances
from scenetune.analysis.search_report import pareto_section, progressive_section
from scenetune.analysis.section import Section
from scenetune.analysis.tables import classification_table, model_summary, table_by
from scenetune.core import storage

VAL_PREDICTIONS = "val_predictions.csv"


def best_val_predictions(exp: Experiment, trial_id: str) -> pd.DataFrame | None:
    trial_dir = exp.trials.set_index("trial_id").loc[trial_id, "trial_dir"]
    uri = storage.join(exp.uri, trial_dir, VAL_PREDICTIONS)
    if not storage.exists(uri):
        return None
    return pd.read_csv(io.StringIO(storage.read_text(uri)), dtype={"path": str, "true": str, "predicted": str})


def default_by(exp: Experiment) -> str | None:
    """Table 1's parameter: the image size as in the seed report, else the
    first searched parameter, else the first that varies at all."""
    names = [c.removeprefix("config/") for c in exp.trials.columns if c.startswith("config/")]
    searched = [k for k in (exp.spec.get("space") or {}) if k in names]
    varying = [n for n in names if exp.trials[f"config/{n}"].astype(str).nunique() > 1]
    for candidate in (["image_size"] if "image_size" in names else []) + searched + varying:
        return candidate
    return None


def classifier_sections(exp: Experiment, out_dir: str, by: str | None = None) -> list[Section]:
    final = read_final(exp.uri)
    best = best_in_report(exp)
    best_id = best["trial_id"]
    fig_dir = os.path.join(out_dir, "figures")
    sections = []

    by = by or default_by(exp)
    if by is not None:
        sections.append(Section(
            f"Table 1: {exp.metric} and training time by {by}",
            f"For each value of `{by}`: the best trial's `{exp.metric}` at its last epoch"
            + (" and its accuracy on the test split (for the trial that was evaluated)" if final else "")
            + ", its training time (fit time summed over its epochs, in seconds), the mean and standard deviation "
            f"of `{exp.metric}` over the trials with that value, and how many there were.",
            tables={f"table1_by_{by}": table_by(exp, by, final)}))

    sections.append(Section(
        "Table 2: the best trial of each model",
        "Set-up and accuracy of the best trial of each backbone, laid out as the seed report's Table 2"
        + (". The test-set accuracy is given for the trial that was evaluated on the test split."
           if final else ". No final evaluation yet: the accuracy is on the validation split."),
        tables={"table2_models": model_summary(exp, final)}))

    if final is not None:
        predictions, where = final.predictions, "test split"
        how = "retrained on train + validation" if final.metrics.get("retrain") else "its last checkpoint"
        intro = (f"The final model (trial {final.trial_id}, {how}) on the {len(predictions)} images of the test "
                 "split, evaluated once.")
    else:
        predictions, where = best_val_predictions(exp, best_id), "validation split"
        intro = (f"No final evaluation on the test split yet (`scenetune evaluate {exp.uri}` runs it once): "
                 f"this is the best trial ({best_id}) on the validation split, from its last epoch.")
    if predictions is not None and not predictions.empty:
        matrix = figures.confusion_matrix(predictions, f"Confusion matrix, {where} ({len(predictions)} images)",
                                          os.path.join(fig_dir, "confusion_matrix.png"))
        sections.append(Section(f"Table 3: classification report on the {where}", intro,
                                tables={"table3_classification": classification_table(predictions)},
                                figures={f"Confusion matrix on the {where}: rows are true classes, columns "
                                         "predicted ones.": matrix}))
    else:
        sections.append(Section("Table 3: classification report",
                                f"{intro} The trial wrote no predictions, so there is no table."))

    curves = {f"Figure 1: accuracy and loss on the train and validation splits, per epoch, of the best trial "
              f"({best_id}).": figures.best_trial_curves(exp, best_id, os.path.join(fig_dir, "best_trial_curves.png"))}
    scatter = figures.accuracy_vs_time(exp, os.path.join(fig_dir, "accuracy_vs_time.png"))
    if scatter:
        curves[f"Every trial's {exp.metric} at its last epoch against its training time; the Pareto front "
               "joins the trials no other trial beats on both."] = scatter
    every = figures.all_trial_curves(exp, best_id, os.path.join(fig_dir, "all_trials.png"))
    if every:
        curves[f"Every trial's {exp.metric} by epoch; trials stopped early by the scheduler are grey, the best is "
               "orange" + (", dotted lines mark the scheduler's rungs (the epochs where it may stop a trial)." if exp.rungs else ".")] = every
    sections.append(Section("Training curves", "", figures=curves))

    measured = param_importances(exp)
    if measured is not None:
        scores, evaluator = measured
        path = figures.importance(scores, os.path.join(fig_dir, "importance.png"), evaluator)
        table = scores.rename("importance").rename_axis("parameter").reset_index()
        table.attrs["floatfmt"] = ".3f"
        sections.append(Section(
            "Hyperparameter importance",
            f"Optuna's {evaluator} importance of each searched parameter for `{exp.metric}` (last epoch), on a "
            f"study rebuilt from the trial logs ({int(scored_count(exp))} trials).",
            tables={"importance": table},
            figures={"Hyperparameter importance (fractions sum to 1).": path}))
    else:
        sections.append(Section("Hyperparameter importance",
                                "Too few trials, or no searched parameter that varies, to measure importance."))

    sections += pareto_section(exp, out_dir) + progressive_section(exp, out_dir) + deployment_section(exp, out_dir)

    if final is not None:
        cams = final.metrics.get("gradcam", [])
        images = [(final.gradcam_uri(c["file"]),
                   f"{'right' if c['correct'] else 'WRONG'}: {c['predicted']} ({c['probability']:.2f})"
                   + ("" if c["correct"] else f"\ntrue: {c['true']}")) for c in cams]
        grid = figures.image_grid(images, "Grad-CAM on test images", os.path.join(fig_dir, "gradcam.png"))
        if grid:
            sections.append(Section(
                "Figure 2: where the model looks",
                "Grad-CAM heatmaps (the class score's gradient on the backbone's last feature map) over test "
                "images the final model classified right and wrong; red is where the evidence for the predicted "
                "class lies.", figures={"Figure 2: Grad-CAM heatmaps on test images.": grid}))
    return sections


def scored_count(exp: Experiment) -> int:
    column = f"last_{exp.metric}"
    return int(exp.trials[column].notna().sum()) if column in exp.trials else 0
