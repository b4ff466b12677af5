"""Reads experiment directories (trial logs and artifacts) into tables,
figures and a report. Never imports TensorFlow or Keras."""

from scenetune.analysis.best import best_trials, best_trials_of, format_best, pareto_trials
from scenetune.analysis.experiment import Experiment, ExperimentError, load_experiment

__all__ = ["Experiment", "ExperimentError", "load_experiment", "best_trials", "best_trials_of", "format_best", "pareto_trials"]
