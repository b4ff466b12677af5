"""``scenetune``: the command line, a thin table over the Python API
(:mod:`scenetune.api`) and the commands. The grammar is in
:mod:`scenetune.cli_parser`. Bad input (a :class:`UserError`) exits with
status 2 and one line naming what is wrong; nothing is overwritten. Any
other exception is a bug: its traceback, a line saying so, exit 1. Ctrl-C:
exit 130. Quiet unless ``-v``: one format for warnings, ``scenetune:
warning: ...``, and no terminal colour codes in redirected output."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sys
import traceback

from scenetune import api
from scenetune.cli_parser import UsageError, build_parser
from scenetune.core.errors import UserError

EXIT_BAD_INPUT, EXIT_BUG, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 1, 130, 143
EXIT_FOUND_PROBLEMS = 1


def cmd_sweep(args) -> int:
    from scenetune.analysis import format_best, pareto_trials
    from scenetune.analysis.best import best_in_report

    strip_colours_unless_terminal()
    try:
        exp = api.sweep(args.spec, name=args.name, storage=args.storage, num_samples=args.num_samples,
                        address=args.address, resume=args.resume, verbose=args.verbose,
                        warm_start=args.warm_start).logs
    except KeyboardInterrupt:
        from scenetune.search.run import TERMINATED

        how = "stopped (SIGTERM)" if TERMINATED.is_set() else "interrupted"
        print(f"scenetune: {how}; what was saved is kept. Continue with:\n  {resume_command(args)}",
              file=sys.stderr, flush=True)
        shutdown_ray_uninterrupted()
        return EXIT_TERMINATED if TERMINATED.is_set() else EXIT_INTERRUPTED
    shutdown_ray_uninterrupted()  # the sweep is finished: a Ctrl-C now changes nothing
    counts = exp.trials["status"].value_counts().to_dict() if not exp.trials.empty else {}
    print(f"\nexperiment: {exp.uri}")
    print(data_check_line(exp.data_check))
    print("trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if not exp.epochs.empty and exp.spec.get("objectives"):
        print(format_best(pareto_trials(exp), "text", exp.metric, exp.mode, "last", exp.spec["objectives"],
                          compact=True))
    elif not exp.epochs.empty:
        print(format_best([best_in_report(exp)], "text", exp.metric, exp.mode, "last", compact=True))
    return 0


def shutdown_ray_uninterrupted() -> None:
    """Let Ray stop its processes with Ctrl-C and SIGTERM ignored (no
    traceback from Ray's exit handler), then put them back as they were:
    main() may be called again in this process (a notebook, a test)."""
    import ray

    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        ray.shutdown()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _PlainText:
    """A text stream that drops terminal colour codes (Ray colours its
    workers' lines whatever the output is)."""
    CODES = re.compile(r"\x1b\[[0-9;]*m")

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(self.CODES.sub("", text))
        return len(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def strip_colours_unless_terminal() -> None:
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not stream.isatty() and not isinstance(stream, _PlainText):
            setattr(sys, name, _PlainText(stream))


def resume_command(args) -> str:
    """The exact command that continues the sweep ``args`` started."""
    from scenetune.api import load_sweep_spec

    try:
        name = load_sweep_spec(args.spec, args.name, args.storage).name
    except UserError:
        name = args.name or "NAME"
    words = ["scenetune", "sweep", args.spec, "--name", name]
    for flag, value in (("--storage", args.storage), ("--address", args.address)):
        if value:
            words += [flag, value]
    return shlex.join(words + ["--resume"])


def data_check_line(check: dict) -> str:
    """What the data check left out of an experiment, in one line."""
    if not check:
        return "data check: none recorded"
    bad = check["bad"]
    named = ", ".join(e["path"] for e in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    return (f"data check: {check['images']} images, {len(bad)} bad left out"
            + (f" ({named}; see split.csv and data_check.json)" if bad else ""))


def cmd_data_check(args) -> int:
    from scenetune.trainables.data.datacheck import check_dataset

    def progress(done, total):
        print(f"checked {done}/{total} files", file=sys.stderr, flush=True)

    categories = args.categories if args.categories in ("all", "seed25") else args.categories.split(",")
    result = check_dataset(args.root, args.layout, categories, progress=progress if args.format == "text" else None)
    print(result.to_json() if args.format == "json" else result.format_text())
    return 1 if result.bad else 0


def warn(message: str) -> None:
    print(f"scenetune: warning: {message}", file=sys.stderr, flush=True)


def _progress(message: str) -> None:
    if message.startswith("warning: "):
        warn(message.removeprefix("warning: "))
    else:
        print(message, flush=True)


def _experiment(uri: str) -> api.Experiment:
    """The experiment, its damaged logs named on stderr (when it has trials)."""
    exp = api.load_experiment(uri, progress=_progress)
    if not exp.trials.empty:  # a folder with no trial gets one error line from the command, not notes
        for note in exp.warnings:
            warn(note)
    return exp


def cmd_best(args) -> int:
    from scenetune.analysis import best_trials, best_trials_of, format_best, pareto_trials
    from scenetune.analysis.best import infeasible_trials

    if len(args.experiment) > 1:  # a series: ranked together by one metric (the first's unless --metric)
        exps = [_experiment(uri).logs for uri in args.experiment]
        metric, mode = args.metric or exps[0].metric, args.mode or exps[0].mode
        print(format_best(best_trials_of(exps, metric, mode, args.scope, args.top), args.format, metric, mode,
                          args.scope))
        return 0
    exp = _experiment(args.experiment[0]).logs
    metric, mode = args.metric or exp.metric, args.mode or exp.mode
    if exp.spec.get("objectives") and not args.metric:  # multi-objective: the Pareto set
        entries = pareto_trials(exp, args.scope)
        print(format_best(entries, args.format, metric, mode, args.scope, exp.spec["objectives"]))
        return 0
    entries = best_trials(exp, metric, mode, args.scope, args.top)
    constraints = exp.spec.get("constraints") or None
    print(format_best(entries, args.format, metric, mode, args.scope, constraints=constraints,
                      infeasible=infeasible_trials(exp, args.scope, metric, mode) if constraints else None))
    return 0


def cmd_export(args) -> int:
    if args.format:
        return _export_model(args)
    for flag, value in (("--out", args.out), ("--trial", args.trial)):
        if value is not None:
            raise UserError(f"export: {flag} goes with --format (the model), not with --optuna")
    from optuna.trial import TrialState

    study = _experiment(args.experiment).export_optuna(args.optuna, args.study_name)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    counts = [states.count(s) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
    print(f"wrote {len(states)} trials ({counts[0]} complete, {counts[1]} pruned, {counts[2]} failed) to study "
          f"{study.study_name} at {args.optuna}; view it with: optuna-dashboard {args.optuna}")
    return 0


def _export_model(args) -> int:
    from scenetune.commands.export_model import ExportFailed

    if not args.out:
        raise UserError("export: --format needs --out DIR (a new folder for the model, its class names and card)")
    if args.study_name is not None:
        raise UserError("export: --study-name goes with --optuna, not with --format")
    exp = _experiment(args.experiment)
    _tensorflow(args, now=False)  # imported by the export once the input is checked
    try:
        card = exp.export_model(args.format, args.out, trial=args.trial)
    except ExportFailed as e:
        print(f"scenetune: error: {e}", file=sys.stderr)
        return EXIT_FOUND_PROBLEMS
    drop = f": {card['accuracy_drop'] * 100:.1f} points lower" if args.format == "tflite-int8" else ""
    print(f"wrote {card['out']} ({args.format}, {card['size_mb']:.2f} MB): top-1 agrees with the Keras model on "
          f"{card['agreement']:.1%} of {card['test_images']} test images; accuracy {card['accuracy']:.4f} (Keras "
          f"{card['keras_accuracy']:.4f}{drop}); {card['latency_ms']:.2f} ms per image (batch 1, one thread); "
          f"card: {os.path.join(card['out'], 'card.json')}")
    return 0


def cmd_report(args) -> int:
    from scenetune.api import report

    report(args.experiment, args.out, args.by, progress=_progress)
    return 0


def _tensorflow(args, now: bool = True) -> None:
    """TensorFlow, for the commands that need it: without its start-up lines
    unless -v (``now=False``: set up, for the command to import it later)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if args.verbose else "2")
    if args.verbose:
        os.environ["SCENETUNE_VERBOSE"] = "1"
    if not now:
        return
    from scenetune.trainables.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()


def cmd_evaluate(args) -> int:
    exp = _experiment(args.experiment)
    _tensorflow(args)
    exp.evaluate(retrain=args.retrain)
    return 0


def cmd_predict(args) -> int:
    from scenetune.commands.predict import PredictError, format_result, predict_images

    _tensorflow(args)

    result = predict_images(args.model, args.images, args.top, args.gradcam,
                            progress=lambda m: print(m, file=sys.stderr))
    for path, reason in result.skipped:
        warn(f"skipped {path}: {reason}")
    if not result.predictions:
        raise PredictError(f"no readable image among {len(args.images)} input(s)")
    print(format_result(result, args.format))
    return 0


def cmd_replay(args) -> int:
    from scenetune.commands.replay import ReplayError, replay
    from scenetune.search.run import connect

    def progress(done, total):
        print(f"\rreplayed sweeps: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    searchers, schedulers = args.searcher.split(","), args.scheduler.split(",")
    rank_by = None
    if args.rank_by:
        metric, _, mode = args.rank_by.partition(":")
        if not metric or mode not in ("max", "min"):
            raise ReplayError(f"--rank-by: expected METRIC:max or METRIC:min, got {args.rank_by!r}")
        rank_by = (metric, mode)
    connect(args.address)
    runs, summary = replay(args.experiment, searchers, schedulers, args.repeats, args.num_samples,
                           args.max_concurrent, args.tolerance, args.seed, progress, rank_by, args.repeat_recorded)
    if args.format == "json":
        print(json.dumps({"target": summary.attrs["target"], "best_recorded": summary.attrs["best_recorded"],
                          "summary": summary.to_dict("records"), "runs": runs.to_dict("records")}, indent=2))
        return 0
    attrs = summary.attrs
    print(f"{attrs['metric']}: best recorded {attrs['best_recorded']:.4f}, target {attrs['target']:.4f} "
          f"(compute in recorded seconds of fit time; mean and std over {args.repeats} repeats)")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


def cmd_data_synth(args) -> int:
    from scenetune.trainables.data.synth import write_synthetic

    def progress(done, total):
        print(f"\rwriting classes: {done}/{total}", end="" if done < total else "\n", flush=True)

    labels = write_synthetic(args.out, args.classes, args.per_class, args.size, args.seed,
                             args.aspect_jitter, progress)
    print(f"wrote {len(labels) * args.per_class} images of {len(labels)} classes to {args.out}/Images")
    return 0


def cmd_generate(args) -> int:
    from scenetune.commands.generate import generate_images  # imports Keras only after checking the input

    _tensorflow(args)

    source, paths = generate_images(args.experiment, args.n, args.out, args.trial, args.seed, args.category)
    print(f"wrote {len(paths)} images to {args.out} from trial {source.trial_id} (epoch {source.epoch})")
    return 0


COMMANDS = {"sweep": cmd_sweep, "best": cmd_best, "export": cmd_export, "report": cmd_report,
            "evaluate": cmd_evaluate, "predict": cmd_predict, "replay": cmd_replay, "generate": cmd_generate,
            "data synth": cmd_data_synth, "data check": cmd_data_check}


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status."""
    try:
        args = build_parser().parse_args(argv)
        args.verbose = getattr(args, "verbose", False)
        return COMMANDS[args.command](args)
    except UsageError as e:
        print(e.usage.rstrip(), file=sys.stderr)
        print(f"scenetune: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UserError as e:
        print(f"scenetune: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("scenetune: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # noqa: BLE001 - a bug: shown whole, and said to be one
        traceback.print_exc()
        print("scenetune: internal error: this is a bug in scenetune, not in your input; the traceback above "
              "shows where", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
