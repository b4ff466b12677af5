"""The Python API: what a notebook calls, and what the CLI is a thin table
over. Nothing here calls ``sys.exit``: bad input raises
:class:`scenetune.UserError` (one line naming what is wrong), and progress
goes to ``progress`` (``print`` by default, as the CLI shows it).

    import scenetune
    exp = scenetune.sweep("sweeps/quickstart.yaml", name="nb")
    exp.best(top=3)                       # a pandas DataFrame
    exp.report()                          # the path of report.html
    exp.evaluate()                        # test accuracy of the best trial
    exp.export_optuna("sqlite:///study.db")
    exp.export_model("tflite-int8", "phone/")   # after evaluate: a checked TFLite model
    scenetune.load_experiment("results/nb")
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

Progress = Callable[[str], None]


class Experiment:
    """An experiment folder (local or ``s3://``/``gs://``) read from its trial
    logs. ``trials`` and ``epochs`` are pandas tables (see
    :mod:`scenetune.analysis.experiment`); the methods run scenetune's
    commands on it."""

    def __init__(self, uri: str, progress: Progress = print):
        self.progress = progress
        self._logs = _read(uri)

    def __repr__(self) -> str:
        return f"<scenetune.Experiment {self.name!r}: {len(self.trials)} trials at {self.uri}>"

    @property
    def logs(self):
        """The :class:`scenetune.analysis.Experiment` behind this one."""
        return self._logs

    uri = property(lambda self: self._logs.uri)
    name = property(lambda self: self._logs.name)
    spec = property(lambda self: self._logs.spec)
    metric = property(lambda self: self._logs.metric)
    mode = property(lambda self: self._logs.mode)
    trials = property(lambda self: self._logs.trials)
    epochs = property(lambda self: self._logs.epochs)
    warnings = property(lambda self: self._logs.warnings)
    data_check = property(lambda self: self._logs.data_check)

    def refresh(self) -> Experiment:
        """Read the logs again (a sweep still running, or resumed)."""
        self._logs = _read(self.uri)
        return self

    def best(self, top: int = 1, metric: str | None = None, mode: str | None = None, scope: str = "last"):
        """The best ``top`` trials as a DataFrame, best first: ``trial_id``,
        ``status``, ``epoch``, the metric, then ``config.<key>`` columns.
        A multi-objective experiment gives its Pareto set unless ``metric`` is named."""
        import pandas as pd

        from scenetune.analysis import best_trials, pareto_trials
        from scenetune.core.trees import flatten

        if self.spec.get("objectives") and not metric:
            entries = pareto_trials(self._logs, scope)
        else:
            entries = best_trials(self._logs, metric, mode, scope, top)
        return pd.DataFrame([{k: v for k, v in e.items() if k not in ("metrics", "config")}
                             | {f"config.{k}": v for k, v in flatten(e["config"]).items()} for e in entries])

    def report(self, out: str | None = None, by: str | None = None) -> str:
        """Write the report (tables, figures, report.md and report.html);
        returns report.html's path."""
        from scenetune.analysis.report import write_report

        return write_report(self.uri, out, by, progress=self.progress)

    def evaluate(self, retrain: bool = False) -> dict:
        """Evaluate the best trial once on the test split (writes
        ``EXPERIMENT/final``); returns its metrics. Imports TensorFlow."""
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from scenetune.commands.evaluate import evaluate_experiment

        return evaluate_experiment(self.uri, retrain=retrain, progress=self.progress)

    def export_optuna(self, storage_url: str, study_name: str | None = None):
        """Write the experiment as an Optuna study (``optuna-dashboard
        STORAGE_URL`` shows it); returns the ``optuna.Study``."""
        from scenetune.analysis.study import export_study

        return export_study(self._logs, storage_url, study_name)

    def export_model(self, format: str, out: str, trial: str | None = None, calibration_images: int = 200) -> dict:
        """Write the final model (``EXPERIMENT/final``, from :meth:`evaluate`)
        or ``trial``'s newest checkpoint as ``format`` (``savedmodel``,
        ``tflite`` or ``tflite-int8``, calibrated on ``calibration_images``
        training images) into the new folder ``out``, after checking it on
        the test split; returns its card (``out/card.json``). A float export
        whose top-1 agrees with the Keras model's on under 99% of the test
        images raises :class:`scenetune.commands.export_model.ExportFailed`
        and writes nothing. Imports TensorFlow; docs/deploy.md."""
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from scenetune.commands.export_model import export_experiment

        return export_experiment(self.uri, format, out, trial, calibration_images, progress=self.progress)

    def generate(self, n: int, out: str, trial: str | None = None, seed: int = 0,
                 category: str | None = None) -> list[str]:
        """A GAN experiment: write ``n`` images of its best (or the given)
        trial into ``out``; returns their paths."""
        from scenetune.commands.generate import generate_images

        _, paths = generate_images(self.uri, n, out, trial, seed, category)
        return paths


def _read(uri: str):
    from scenetune.analysis import load_experiment

    with warnings.catch_warnings():  # damaged logs are kept in .warnings, not printed
        warnings.simplefilter("ignore")
        return load_experiment(uri)


def load_experiment(uri: str, progress: Progress = print) -> Experiment:
    """The experiment at ``uri`` (a path, ``s3://...`` or ``gs://...``)."""
    return Experiment(str(uri), progress)


def report(uris: list[str], out: str | None = None, by: str | None = None, progress: Progress = print) -> str:
    """The report of several experiments read as one series (each one's own
    report in ``out/<name>/``, a first page ranking every trial together);
    one URI: that experiment's report. Returns the first page's path."""
    from scenetune.analysis.report import write_series_report

    return write_series_report([str(u) for u in uris], out, by, progress=progress)


def load_sweep_spec(spec: Any, name: str | None = None, storage: str | None = None,
                    num_samples: int | None = None):
    """A checked sweep spec from a YAML path, a dict, or a spec object."""
    from scenetune.search.spec import SweepSpec, load_spec, parse_spec

    overrides = {"search.num_samples": num_samples, "storage": storage, "name": name}
    if isinstance(spec, SweepSpec):
        spec = spec.model_dump(mode="json")
    if isinstance(spec, dict):
        return parse_spec(spec, overrides)
    return load_spec(os.fspath(spec), overrides)


def sweep(spec: Any, name: str | None = None, storage: str | None = None, num_samples: int | None = None,
          address: str | None = None, resume: bool = False, verbose: bool = False,
          progress: Progress = print, warm_start: list[str] | None = None) -> Experiment:
    """Run (or ``resume``) a sweep to the end and return its experiment.
    ``spec``: a YAML path, a dict shaped like one, or a spec object;
    ``name``, ``storage`` and ``num_samples`` override the spec's.
    ``address``: a Ray cluster to join (default: an embedded Ray);
    ``verbose``: Ray Tune's per-trial boxes and TensorFlow's and Ray's own
    log lines too. Ctrl-C raises :class:`scenetune.search.run.SweepInterrupted`
    (a ``KeyboardInterrupt``) once the state is saved: ``resume=True``
    continues it. ``warm_start``: earlier experiments (URIs) whose trials
    the new sweep's Optuna study starts with, added to the spec's
    ``search.warm_start`` (a resumed sweep's study has them already)."""
    from scenetune.search.run import run_sweep

    spec = load_sweep_spec(spec, name, storage, num_samples)
    if warm_start:
        raw = spec.model_dump(mode="json")
        raw["search"]["warm_start"] = [*spec.search.warm_start, *warm_start]
        spec = load_sweep_spec(raw)
    warm = None
    if spec.search.warm_start and not resume:
        from scenetune.analysis.warm_start import read_warm_start

        objectives = [(o.metric, o.mode) for o in spec.objectives] or [(spec.metric, spec.mode)]
        warm = read_warm_start(spec.search.warm_start, spec.trainable, objectives, spec.space, spec.fixed,
                               [c.model_dump() for c in spec.constraints], spec.search.warm_start_other_sizes)
        from scenetune.search.warm_prior import run_first

        first = run_first(warm.trials, spec.search, spec.mode)
        print(warm.line() + (f"; the {len(first)} best of those run first" if first else ""), file=sys.stderr,
              flush=True)
    uri = run_sweep(spec, address=address, resume=resume, verbose=verbose, warm=warm)
    return Experiment(uri, progress)
