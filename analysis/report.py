"""``scenetune report``: an experiment's report, regenerated from its logs.

Writes into ``out_dir`` (default ``EXPERIMENT/report/``; ``./report-<name>/``
for a remote experiment): each table as ``tables/<stem>.csv``, ``.md`` and
``.tex``, each figure as ``figures/<name>.png``, ``report.md`` and
``report.html`` (one self-contained page, images embedded as data URIs).
Only the report folder's own files are written: an existing ``out_dir``
that holds anything but an earlier report is refused.

The report is built from :class:`~scenetune.analysis.section.Section` lists: first an
account of the experiment (trials, early stops, errors, compute, the best
configuration, warnings), then the part of the experiment's trainable: the function its registry
record names (:mod:`scenetune.core.registry`, ``report``: ``(experiment,
out_dir, **options) -> list[Section]``).

Several experiments (a series of sweeps, warm-started or not):
:func:`write_series_report` writes each one's report into
``out_dir/<name>/`` and a first page ranking every trial of the series
together (:mod:`scenetune.analysis.series`).
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable

from scenetune.analysis.account import overview_section
from scenetune.analysis.anytime import anytime_section
from scenetune.analysis.experiment import Experiment, ExperimentError, load_experiment
from scenetune.analysis.render import render_html, render_markdown, write_tables
from scenetune.analysis.section import Section
from scenetune.analysis.series import folder_names, series_section, warm_start_section
from scenetune.core import registry, storage
from scenetune.core.errors import UserError


class ReportError(UserError):
    """Bad input to ``scenetune report``."""


def default_out_dir(exp_uri: str, name: str) -> str:
    if storage.is_remote(exp_uri):
        return os.path.abspath(f"report-{name}")
    return os.path.join(storage.normalize(exp_uri), "report")


def _check_out_dir(out_dir: str) -> None:
    if storage.is_remote(out_dir):
        raise ReportError(f"--out: {out_dir}: the report is written to a local folder")
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise ReportError(f"--out: {out_dir} is a file, not a folder")
        if os.listdir(out_dir) and not os.path.exists(os.path.join(out_dir, "report.html")):
            raise ReportError(f"--out: {out_dir} holds other files (no earlier report.html); "
                              "choose an empty or new folder")


def build_sections(exp: Experiment, out_dir: str, by: str | None = None) -> list[Section]:
    trainable = exp.spec.get("trainable", "classifier")
    if trainable not in registry.TRAINABLES:
        raise ReportError(f"{exp.uri}: no report for trainable {trainable!r}; "
                          f"known: {', '.join(registry.TRAINABLES)}")
    builder = registry.TRAINABLES[trainable].report_builder()
    options = {}
    if by is not None:
        if "by" not in inspect.signature(builder).parameters:
            raise ReportError(f"--by: the {trainable} report has no table by parameter")
        options["by"] = by
    return ([overview_section(exp)] + warm_start_section(exp) + anytime_section(exp, out_dir)
            + builder(exp, out_dir, **options))


def _read(uri: str, by: str | None, progress: Callable[[str], None]) -> Experiment:
    """The experiment at ``uri``, refused (one line) when it has nothing to report."""
    progress(f"reading {uri}")
    with warnings.catch_warnings():  # the notes are kept in exp.warnings and shown in the report
        warnings.simplefilter("ignore")
        exp = load_experiment(uri)
    if exp.trials.empty:
        raise ExperimentError(f"{exp.uri}: no trials to report on")
    if exp.epochs.empty or f"last_{exp.metric}" not in exp.trials:
        raise ExperimentError(f"{exp.uri}: no trial has reported {exp.metric} yet")
    if by is not None and f"config/{by}" not in exp.trials:
        from scenetune.analysis.tables import parameter_names

        raise ReportError(f"--by: {by!r} is not a parameter of this experiment; "
                          f"known: {', '.join(parameter_names(exp))}")
    return exp


def write_report(uri: str, out_dir: str | None = None, by: str | None = None,
                 progress: Callable[[str], None] = lambda message: None) -> str:
    """Write the report of the experiment at ``uri``; returns ``report.html``'s path."""
    exp = _read(uri, by, progress)
    out_dir = os.path.abspath(out_dir or default_out_dir(exp.uri, exp.name))
    _check_out_dir(out_dir)
    return _write(exp, out_dir, by, progress)


def write_series_report(uris: list[str], out_dir: str | None = None, by: str | None = None,
                        progress: Callable[[str], None] = lambda message: None) -> str:
    """The report of several experiments: each one's in ``out_dir/<name>/``,
    and a first page ranking all their trials together (default ``out_dir``:
    ``./report-<first>-to-<last>``); returns the first page's path."""
    if len(uris) == 1:
        return write_report(uris[0], out_dir, by, progress)
    exps = [_read(uri, by, progress) for uri in uris]
    names = folder_names(exps)
    out_dir = os.path.abspath(out_dir or f"report-{names[0]}-to-{names[-1]}")
    _check_out_dir(out_dir)
    for name in names:
        _check_out_dir(os.path.join(out_dir, name))
    sections = [series_section(exps, names, out_dir)]  # refuses a series ranked by two metrics
    for exp, name in zip(exps, names):
        _write(exp, os.path.join(out_dir, name), by, progress)
    return _render(sections, out_dir, f"scenetune report: {', '.join(names)}", progress)


def _write(exp: Experiment, out_dir: str, by: str | None, progress: Callable[[str], None]) -> str:
    for note in exp.warnings:  # after the checks: bad input stays one line
        progress(f"warning: {note}")
    os.makedirs(out_dir, exist_ok=True)
    progress(f"drawing tables and figures of {len(exp.trials)} trials")
    return _render(build_sections(exp, out_dir, by), out_dir, f"scenetune report: {exp.name}", progress)


def _render(sections: list[Section], out_dir: str, title: str, progress: Callable[[str], None]) -> str:
    os.makedirs(out_dir, exist_ok=True)
    write_tables(sections, os.path.join(out_dir, "tables"))
    with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write(render_markdown(title, sections, out_dir))
    html_path = os.path.join(out_dir, "report.html")
    with open(html_path, "w", encoding="utf-8") as f:
        f.write(render_html(title, sections))
    progress(f"report: {html_path}")
    return html_path


__all__ = ["ReportError", "write_report", "write_series_report", "build_sections", "default_out_dir"]
