"""The command line's grammar: every command, its arguments, their defaults
and an example, and the exit codes. :mod:`scenetune.cli` runs what it
parses. Imports nothing heavy, so ``--help`` is instant."""

from __future__ import annotations

import argparse

from scenetune import __version__
from scenetune.core.errors import UserError
from scenetune.core.registry import REPLAY_SEARCHERS, SCHEDULERS

EXPORT_FORMATS = ("savedmodel", "tflite", "tflite-int8")  # scenetune.commands.export_model.FORMATS

EXIT_CODES = """exit status:
  0    done
  1    found problems (data check: bad files; export: the exported model
       disagrees with the Keras model), or an internal error: a bug in
       scenetune, shown with its traceback
  2    bad input: one line naming what is wrong; nothing is overwritten
  130  interrupted (Ctrl-C); a sweep prints the command that resumes it"""


class UsageError(UserError):
    """A bad flag or argument: argparse's usage line, then one line; exit status 2."""

    def __init__(self, message: str, usage: str = ""):
        super().__init__(message)
        self.usage = usage


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option that has one (and whose help does not
    already name it); examples and exit codes kept as written."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        command = self.prog.removeprefix("scenetune").strip()
        raise UsageError(f"{command}: {message}" if command else message, self.format_usage())


def _command(sub, name: str, help: str, example: str) -> Parser:
    p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                       epilog=f"example:\n  {example}\n\n{EXIT_CODES}")
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="show everything: Ray Tune's per-trial boxes, TensorFlow's and Ray's own log lines")
    p.set_defaults(command=name)
    return p


def build_parser() -> Parser:
    parser = Parser(prog="scenetune", epilog=f"run `scenetune COMMAND --help` for one command\n\n{EXIT_CODES}",
                    description="Distributed hyperparameter search for Keras scene classifiers and GANs "
                                "(Ray Tune, Optuna, ASHA).")
    parser.add_argument("--version", action="version", version=f"scenetune {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show everything (see COMMAND --help)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")

    p = _command(sub, "sweep", "run a sweep (Optuna + ASHA on Ray Tune) from a YAML spec",
                 "scenetune sweep sweeps/quickstart.yaml --name first")
    p.add_argument("spec", help="sweep spec (YAML)")
    p.add_argument("--address", help="Ray cluster to join: auto, or ray://HOST:10001 (default: an embedded Ray)")
    p.add_argument("--num-samples", type=int, help="override search.num_samples")
    p.add_argument("--storage", help="override storage (a path, s3://bucket/prefix, gs://...)")
    p.add_argument("--name", help="override the experiment name")
    p.add_argument("--resume", action="store_true", help="continue the interrupted experiment of this name")
    p.add_argument("--warm-start", action="append", metavar="EXPERIMENT",
                   help="start the Optuna study from this earlier experiment's trials (repeatable; adds to the "
                        "spec's search.warm_start)")

    p = _command(sub, "best", "the best trials of an experiment, or of several ranked together",
                 "scenetune best results/first results/second --top 3")
    p.add_argument("experiment", nargs="+", help="experiment directory (path or s3://...); several: their trials "
                                                 "ranked together, each row naming its experiment")
    p.add_argument("--metric", help="rank by this metric (default: the sweep's)")
    p.add_argument("--mode", choices=["max", "min"], help="default: the sweep's")
    p.add_argument("--scope", choices=["last", "all"], default="last",
                   help="rank by each trial's last epoch, or its best epoch")
    p.add_argument("--top", type=int, default=1, help="how many trials to show")
    p.add_argument("--format", choices=["text", "json", "yaml"], default="text", help="output format")

    p = _command(sub, "export", "write an experiment as an Optuna study (open it in optuna-dashboard), or its "
                                "model for serving (SavedModel) or phones (TFLite), checked on its test split",
                 "scenetune export results/first --format savedmodel --out served/scenes\n"
                 "  scenetune export results/first --optuna sqlite:///study.db")
    p.add_argument("experiment", help="experiment directory (path or s3://...)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--optuna", metavar="URL",
                      help="Optuna storage (a database URL, e.g. sqlite:///study.db); never adds to an existing study")
    what.add_argument("--format", choices=EXPORT_FORMATS,
                      help="the model (EXPERIMENT/final, from scenetune evaluate) as a TensorFlow SavedModel taking "
                           "image bytes, a float32 TFLite file, or a full-integer (int8) TFLite file calibrated on "
                           "training images; see docs/deploy.md")
    p.add_argument("--study-name", help="with --optuna; default: the experiment's name")
    p.add_argument("--out", metavar="DIR", help="with --format: a new (or empty) folder for the model, "
                                                "class_names.txt and card.json")
    p.add_argument("--trial", metavar="ID", help="with --format: this trial's newest checkpoint instead of the "
                                                 "final model")

    p = _command(sub, "report", "tables, figures and report.html of an experiment, from its logs",
                 "scenetune report results/first")
    p.add_argument("experiment", nargs="+", help="experiment directory (path or s3://...); several: a series, "
                                                 "their trials ranked together and each one's report in a folder")
    p.add_argument("--out", help="report folder (default: EXPERIMENT/report, or ./report-NAME for remote ones; "
                                 "several: ./report-FIRST-to-LAST)")
    p.add_argument("--by", help="Table 1's parameter (default: image_size, else the first searched one)")

    p = _command(sub, "evaluate", "evaluate the best trial once on the test split (writes EXPERIMENT/final)",
                 "scenetune evaluate results/first")
    p.add_argument("experiment", help="experiment directory (path or s3://...)")
    p.add_argument("--retrain", action="store_true",
                   help="fit the best config afresh on train + validation instead of using its checkpoint")

    p = _command(sub, "predict", "classify new images with a saved model",
                 "scenetune predict results/first/final photos/ --top 3")
    p.add_argument("model", help="model.keras, or a folder holding one (EXPERIMENT/final)")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files or folders of images")
    p.add_argument("--top", type=int, default=3, help="how many classes to show per image")
    p.add_argument("--gradcam", metavar="OUT_DIR", help="write Grad-CAM overlays here")
    p.add_argument("--format", choices=["text", "json"], default="text", help="output format")

    p = _command(sub, "replay", "compare search strategies by replaying a finished experiment's curves",
                 "scenetune replay results/first --searcher random,tpe --scheduler none,asha")
    p.add_argument("experiment", help="a finished classifier experiment (path or s3://...)")
    p.add_argument("--searcher", default="random,tpe", help=f"comma-separated: {', '.join(REPLAY_SEARCHERS)}")
    p.add_argument("--scheduler", default="none,asha", help=f"comma-separated: {', '.join(SCHEDULERS)}")
    p.add_argument("--repeats", type=int, default=10, help="replayed sweeps per strategy (seeds 0..n-1)")
    p.add_argument("--num-samples", type=int, help="trials per replayed sweep (default: as many as recorded)")
    p.add_argument("--max-concurrent", type=int, default=1, help="replayed trials at once (1: deterministic)")
    p.add_argument("--tolerance", type=float, default=0.01, help="'within 1 point' of the best")
    p.add_argument("--rank-by", metavar="METRIC:MODE",
                   help="what the schedulers rank trials by, e.g. val_loss:min (default: as recorded)")
    p.add_argument("--repeat-recorded", action="store_true",
                   help="let one recorded trial answer several replayed trials of a sweep (default: each answers "
                        "one, the nearest not yet used, as a real sweep never runs a configuration twice)")
    p.add_argument("--seed", type=int, default=0, help="the first replayed sweep's seed")
    p.add_argument("--address", help="Ray cluster to join (default: an embedded Ray)")
    p.add_argument("--format", choices=["text", "json"], default="text", help="output format")

    p = _command(sub, "generate", "write images from a GAN experiment's best (or a chosen) trial",
                 "scenetune generate results/gan --n 16 --out generated/")
    p.add_argument("experiment", help="GAN experiment directory (path or s3://...)")
    p.add_argument("--n", type=int, default=64, help="how many images")
    p.add_argument("--trial", help="trial id (default: the best by the experiment's metric)")
    p.add_argument("--out", required=True, help="output folder (files it would overwrite are refused)")
    p.add_argument("--seed", type=int, default=0, help="seeds the latents")
    p.add_argument("--category", help="conditional GANs: generate this class only (default: cycle through all)")

    p = sub.add_parser("data", help="dataset tools: synth, check", description="Dataset tools.")
    data = p.add_subparsers(dest="data_command", required=True, parser_class=Parser, metavar="TOOL")
    s = _command(data, "synth", "write a synthetic indoor-scene dataset in the mit67 layout",
                 "scenetune data synth data/synth --classes 6 --per-class 60 --size 64")
    s.add_argument("out", help="output folder (its Images/ must be empty or absent)")
    s.add_argument("--classes", type=int, default=6, help="how many scene classes")
    s.add_argument("--per-class", type=int, default=60, help="images per class")
    s.add_argument("--size", type=int, default=96, help="image side in pixels")
    s.add_argument("--seed", type=int, default=0, help="seeds the scenes")
    s.add_argument("--aspect-jitter", type=float, default=0.0,
                   help="vary width and height independently by up to this fraction")
    s.set_defaults(command="data synth")
    c = _command(data, "check", "decode every image once; list bad files (exit 1 if any), conversions, "
                                "skipped files and empty categories", "scenetune data check data/synth")
    c.add_argument("root", help="dataset root")
    c.add_argument("--layout", choices=["mit67", "folder"], default="mit67",
                   help="mit67: ROOT/Images/<category>/*; folder: ROOT/<class>/*")
    c.add_argument("--categories", default="all", help="all, seed25, or a comma-separated list")
    c.add_argument("--format", choices=["text", "json"], default="text", help="output format")
    c.set_defaults(command="data check")
    return parser
