"""``scenetune``: the command line. Thin: each subcommand parses its
arguments and calls one public function. Bad input exits with status 2 and a
one-line message naming what is wrong; nothing is overwritten.
"""

from __future__ import annotations

import argparse
import sys

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        raise UsageError(f"{self.prog}: {message}")


def _bad_input_types():
    """Exceptions that mean the user's input is wrong (imported lazily)."""
    from analysis.experiment import ExperimentError
    from search.spec import SpecError
    from trainables.datasets import DatasetError
    from trainables.gan_generate import GenerateError
    return (UsageError, SpecError, DatasetError, ExperimentError, GenerateError, FileExistsError, ValueError)


def cmd_sweep(args) -> int:
    from analysis import best_trials, format_best, load_experiment
    from search.spec import load_spec
    from search.tuner import run_sweep

    overrides = {"search.num_samples": args.num_samples, "storage": args.storage, "name": args.name}
    spec = load_spec(args.spec, overrides)
    uri = run_sweep(spec, address=args.address, resume=args.resume)
    exp = load_experiment(uri)
    counts = exp.trials["status"].value_counts().to_dict() if not exp.trials.empty else {}
    print(f"\nexperiment: {uri}")
    print("trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if not exp.epochs.empty:
        print(format_best(best_trials(exp), "text", exp.metric, exp.mode, "last"))
    return 0


def cmd_best(args) -> int:
    from analysis import best_trials, format_best, load_experiment

    exp = load_experiment(args.experiment)
    metric, mode = args.metric or exp.metric, args.mode or exp.mode
    entries = best_trials(exp, metric, mode, args.scope, args.top)
    print(format_best(entries, args.format, metric, mode, args.scope))
    return 0


def cmd_data_synth(args) -> int:
    from trainables.synth import write_synthetic

    def progress(done, total):
        print(f"\rwriting classes: {done}/{total}", end="" if done < total else "\n", flush=True)

    labels = write_synthetic(args.out, args.classes, args.per_class, args.size, args.seed,
                             args.aspect_jitter, progress)
    print(f"wrote {len(labels) * args.per_class} images of {len(labels)} classes to {args.out}/Images")
    return 0


def cmd_generate(args) -> int:
    from trainables.gan_generate import generate_images  # imports Keras only after checking the input

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
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except _bad_input_types() as e:
        print(f"scenetune: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("scenetune: interrupted; `scenetune sweep SPEC --resume` continues a sweep", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
