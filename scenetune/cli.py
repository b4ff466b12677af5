"""``scenetune``: the command line. Thin: each subcommand parses its
arguments and calls one public function. Bad input exits with status 2 and a
one-line message naming what is wrong; nothing is overwritten.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from scenetune import api
from scenetune.core.errors import UserError
from scenetune.core.registry import REPLAY_SEARCHERS, SCHEDULERS

EXIT_BAD_INPUT = 2
EXIT_BUG = 1


class UsageError(UserError):
    """A bad flag or argument: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        raise UsageError(f"{self.prog}: {message}")


def cmd_sweep(args) -> int:
    from scenetune.analysis import best_trials, format_best, pareto_trials

    exp = api.sweep(args.spec, name=args.name, storage=args.storage, num_samples=args.num_samples,
                    address=args.address, resume=args.resume).logs
    counts = exp.trials["status"].value_counts().to_dict() if not exp.trials.empty else {}
    print(f"\nexperiment: {exp.uri}")
    print(data_check_line(exp.data_check))
    print("trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if not exp.epochs.empty and exp.spec.get("objectives"):
        print(format_best(pareto_trials(exp), "text", exp.metric, exp.mode, "last", exp.spec["objectives"]))
    elif not exp.epochs.empty:
        print(format_best(best_trials(exp), "text", exp.metric, exp.mode, "last"))
    return 0


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
    """The experiment, its damaged logs named on stderr."""
    exp = api.load_experiment(uri, progress=_progress)
    for note in exp.warnings:
        warn(note)
    return exp


def cmd_best(args) -> int:
    from scenetune.analysis import best_trials, format_best, pareto_trials

    exp = _experiment(args.experiment).logs
    metric, mode = args.metric or exp.metric, args.mode or exp.mode
    if exp.spec.get("objectives") and not args.metric:  # multi-objective: the Pareto set
        entries = pareto_trials(exp, args.scope)
        print(format_best(entries, args.format, metric, mode, args.scope, exp.spec["objectives"]))
        return 0
    entries = best_trials(exp, metric, mode, args.scope, args.top)
    print(format_best(entries, args.format, metric, mode, args.scope))
    return 0


def cmd_export(args) -> int:
    from optuna.trial import TrialState

    study = _experiment(args.experiment).export_optuna(args.optuna, args.study_name)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    counts = [states.count(s) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
    print(f"wrote {len(states)} trials ({counts[0]} complete, {counts[1]} pruned, {counts[2]} failed) to study "
          f"{study.study_name} at {args.optuna}; view it with: optuna-dashboard {args.optuna}")
    return 0


def cmd_report(args) -> int:
    from scenetune.analysis.report import write_report

    write_report(args.experiment, args.out, args.by, progress=_progress)
    return 0


def cmd_evaluate(args) -> int:
    _experiment(args.experiment).evaluate(retrain=args.retrain)  # TensorFlow: imported only by this command
    return 0


def cmd_predict(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from scenetune.commands.predict import PredictError, format_result, predict_images

    result = predict_images(args.model, args.images, args.top, args.gradcam,
                            progress=lambda m: print(m, file=sys.stderr))
    for path, reason in result.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if not result.predictions:
        raise PredictError(f"no readable image among {len(args.images)} input(s)")
    print(format_result(result, args.format))
    return 0


def cmd_replay(args) -> int:
    from scenetune.commands.replay import ReplayError, replay
    from scenetune.search.tuner import connect

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

    source, paths = generate_images(args.experiment, args.n, args.out, args.trial, args.seed, args.category)
    print(f"wrote {len(paths)} images to {args.out} from trial {source.trial_id} (epoch {source.epoch})")
    return 0


def build_parser() -> Parser:
    parser = Parser(prog="scenetune", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("sweep", help="run a sweep (Optuna + ASHA on Ray Tune) from a YAML spec")
    p.add_argument("spec", help="sweep spec (YAML)")
    p.add_argument("--address", help="Ray cluster to join: auto, or ray://HOST:10001 (default: embedded Ray)")
    p.add_argument("--num-samples", type=int, help="override search.num_samples")
    p.add_argument("--storage", help="override storage (a path, s3://bucket/prefix, gs://...)")
    p.add_argument("--name", help="override the experiment name")
    p.add_argument("--resume", action="store_true", help="continue the interrupted experiment of this name")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("best", help="the best trials of an experiment")
    p.add_argument("experiment", help="experiment directory (path or s3://...)")
    p.add_argument("--metric", help="rank by this metric (default: the sweep's)")
    p.add_argument("--mode", choices=["max", "min"], help="default: the sweep's")
    p.add_argument("--scope", choices=["last", "all"], default="last",
                   help="rank by each trial's last epoch, or its best epoch")
    p.add_argument("--top", type=int, default=1, help="how many trials to show")
    p.add_argument("--format", choices=["text", "json", "yaml"], default="text")
    p.set_defaults(func=cmd_best)

    p = sub.add_parser("export", help="write an experiment as an Optuna study (open it in optuna-dashboard)")
    p.add_argument("experiment", help="experiment directory (path or s3://...)")
    p.add_argument("--optuna", required=True, metavar="URL",
                   help="Optuna storage (a database URL, e.g. sqlite:///study.db); never adds to an existing study")
    p.add_argument("--study-name", help="default: the experiment's name")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", help="tables, figures and report.html of an experiment, from its logs")
    p.add_argument("experiment", help="experiment directory (path or s3://...)")
    p.add_argument("--out", help="report folder (default: EXPERIMENT/report, or ./report-NAME for remote ones)")
    p.add_argument("--by", help="Table 1's parameter (default: image_size, else the first searched one)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("evaluate", help="evaluate the best trial once on the test split (writes EXPERIMENT/final)")
    p.add_argument("experiment", help="experiment directory (path or s3://...)")
    p.add_argument("--retrain", action="store_true",
                   help="fit the best config afresh on train + validation instead of using its checkpoint")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="classify new images with a saved model")
    p.add_argument("model", help="model.keras, or a folder holding one (EXPERIMENT/final)")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files or folders of images")
    p.add_argument("--top", type=int, default=3, help="how many classes to show per image")
    p.add_argument("--gradcam", metavar="OUT_DIR", help="write Grad-CAM overlays here")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("replay", help="compare search strategies by replaying a finished experiment's curves")
    p.add_argument("experiment", help="a finished classifier experiment (path or s3://...)")
    p.add_argument("--searcher", default="random,tpe", help=f"comma-separated: {', '.join(REPLAY_SEARCHERS)}")
    p.add_argument("--scheduler", default="none,asha", help=f"comma-separated: {', '.join(SCHEDULERS)}")
    p.add_argument("--repeats", type=int, default=10, help="replayed sweeps per strategy (seeds 0..n-1)")
    p.add_argument("--num-samples", type=int, help="trials per replayed sweep (default: as many as recorded)")
    p.add_argument("--max-concurrent", type=int, default=1, help="replayed trials at once (1: deterministic)")
    p.add_argument("--tolerance", type=float, default=0.01, help="'within 1 point' of the best: 0.01")
    p.add_argument("--rank-by", metavar="METRIC:MODE",
                   help="what the schedulers rank trials by, e.g. val_loss:min (default: as recorded)")
    p.add_argument("--repeat-recorded", action="store_true",
                   help="let one recorded trial answer several replayed trials of a sweep (default: each answers "
                        "one, the nearest not yet used, as a real sweep never runs a configuration twice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--address", help="Ray cluster to join (default: embedded Ray)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("generate", help="write images from a GAN experiment's best (or a chosen) trial")
    p.add_argument("experiment", help="GAN experiment directory (path or s3://...)")
    p.add_argument("--n", type=int, default=64, help="how many images")
    p.add_argument("--trial", help="trial id (default: the best by the experiment's metric)")
    p.add_argument("--out", required=True, help="output folder (files it would overwrite are refused)")
    p.add_argument("--seed", type=int, default=0, help="seeds the latents")
    p.add_argument("--category", help="conditional GANs: generate this class only (default: cycle through all)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("data", help="dataset tools")
    data = p.add_subparsers(dest="data_command", required=True, parser_class=Parser)
    s = data.add_parser("synth", help="write a synthetic indoor-scene dataset in the mit67 layout")
    s.add_argument("out", help="output folder (its Images/ must be empty or absent)")
    s.add_argument("--classes", type=int, default=6)
    s.add_argument("--per-class", type=int, default=60)
    s.add_argument("--size", type=int, default=96, help="image side in pixels")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--aspect-jitter", type=float, default=0.0,
                   help="vary width and height independently by up to this fraction")
    s.set_defaults(func=cmd_data_synth)
    c = data.add_parser("check", help="decode every image once; list bad files (exit 1 if any), conversions, "
                                      "skipped files and empty categories")
    c.add_argument("root", help="dataset root")
    c.add_argument("--layout", choices=["mit67", "folder"], default="mit67",
                   help="mit67: ROOT/Images/<category>/*; folder: ROOT/<class>/*")
    c.add_argument("--categories", default="all", help="all, seed25, or a comma-separated list")
    c.add_argument("--format", choices=["text", "json"], default="text")
    c.set_defaults(func=cmd_data_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Bad input (a :class:`UserError`): one line, exit 2.
    Any other exception is a bug: its traceback, a line saying so, exit 1."""
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UserError as e:
        print(f"scenetune: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("scenetune: interrupted; `scenetune sweep SPEC --resume` continues a sweep", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - a bug: shown whole, and said to be one
        traceback.print_exc()
        print("scenetune: internal error: this is a bug in scenetune, not in your input; the traceback above "
              "shows where", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
