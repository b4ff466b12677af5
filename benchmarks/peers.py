"""scenetune against the in-process tools a Keras or Optuna user would pick:
same search space, trial budget, data, split, decode cache, input pipeline
and model, so that only the search system differs. One process runs the
methods one after the other, for several seeds, and prints one table.

    .venv/bin/python benchmarks/peers.py --quick            # 2 seeds, 8 trials, 3 epochs: a smoke run
    .venv/bin/python benchmarks/peers.py --csv peers.csv    # 5 seeds, 24 trials, 9 epochs

Methods: scenetune (TPE + ASHA, its defaults: warm trial processes, checkpoints
at ASHA's rungs and every quarter of the epochs); scenetune-cold (a fresh process per trial, a checkpoint every
epoch: the baseline); kerastuner-hyperband (keras_tuner.Hyperband, factor 3, one
iteration; it picks its own number of trials); optuna-hyperband (TPESampler +
HyperbandPruner, factor 3, and a Keras callback that reports and prunes).
Workload: synthetic scenes written once (seed 0), the basic CNN at 32 px. The
seed is the search's and the model's (weights, shuffling), never the data's.
Not timed: the data, the decode cache (built up front, read by all), importing
TensorFlow with a one-epoch warm-up fit, and Ray's start (once, before any
method). scenetune runs two trials at once (1 CPU each); the peers one at a time.

Figures per (seed, method), times in seconds from the method's start:
  wall_s                start to finish;
  best_val_acc          the best val_accuracy of any epoch of any trial (argmax of the
                        predictions on the val split, as the classifier trainable reports it);
  time_to_target_s      when some epoch first reached target - 0.01 (--tolerance), target being
                        the best val_accuracy any method found on that seed; NaN if never;
  epochs, trials        epochs trained (all trials together), trials run;
  fit_s                 the sum of every epoch's training time (its validation excluded);
  overhead_s_per_trial  the mean over trials of (trial wall time - its fit time): start-up,
                        model build, validation, checkpoints, reporting.
The table gives each method's median over seeds (a seed that never reached the
target counts as infinitely slow) and scenetune's median time to target over
the fastest peer's (goal <= 0.8).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

METHODS = ["scenetune", "scenetune-before", "scenetune-cold", "kerastuner-hyperband", "optuna-hyperband"]
PEERS = ["kerastuner-hyperband", "optuna-hyperband"]
SPACE = {"learning_rate": {"loguniform": [1.0e-4, 1.0e-2]}, "cnn_filters": {"choice": [16, 32]},
         "cnn_blocks": {"choice": [2, 3]}, "dense_units": {"choice": [32, 64]},
         "dropout": {"uniform": [0.0, 0.4]}, "augment.horizontal_flip": {"choice": [True, False]}}
FIXED = {"backbone": "basic_cnn", "batch_size": 32, "weights": "none", "pooling": "avg", "image_size": 32}
FACTOR = 3
FIGURES = ["wall_s", "best_val_acc", "time_to_target_s", "epochs", "trials", "fit_s", "overhead_s_per_trial"]
FULL = {"seeds": 5, "trials": 24, "epochs": 9, "classes": 10, "per_class": 60}
QUICK = dict(FULL, seeds=2, trials=8, epochs=3)


@dataclass
class Run:
    """One method on one seed, in seconds from its start. ``epochs``: trial,
    epoch, val_accuracy, epoch_s (training time), at_s (when its val_accuracy
    was known); ``trials``: trial, start_s, end_s."""
    wall_s: float
    epochs: pd.DataFrame
    trials: pd.DataFrame


@dataclass
class Bench:
    """The flags and what a classifier trial reads: the split (absolute paths,
    label indices) and the decode cache."""
    args: argparse.Namespace
    root: str
    workdir: str  # experiments, decode cache, KerasTuner's folders
    classes: list[str]
    train: tuple[list[str], list[int]]
    val: tuple[list[str], list[int]]
    cache: object  # scenetune.trainables.data.cache.ImageCache


def load_bench(args, root: str, workdir: str) -> Bench:
    """The split as ``scenetune.search.tuner.prepare`` computes it; opens (builds) the cache."""
    from scenetune.trainables.data.cache import open_cache
    from scenetune.trainables.data.datasets import SplitSpec, build_manifest

    manifest = build_manifest(root, "mit67", "all", SplitSpec(0.6, 0.2, 0.2, 42))
    classes = sorted(manifest["label"].unique())

    def split(name: str) -> tuple[list[str], list[int]]:
        rows = manifest[manifest["split"] == name]
        return [os.path.join(root, p) for p in rows["path"]], [classes.index(label) for label in rows["label"]]

    train, val = split("train"), split("val")
    return Bench(args, root, workdir, classes, train, val,
                 open_cache(train[0] + val[0], FIXED["image_size"], os.path.join(workdir, "cache")))


def scenetune_times(uri: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``Run.epochs`` and ``Run.trials`` of a finished sweep, timed by its
    driver clock (``sweep_timings.json``, :mod:`scenetune.search.clock`), which counts
    from ``run_sweep``'s start. A trial starts when Ray starts it (a new worker
    once up, a reused one once reset: a new process's spawn is outside its
    span, though inside wall_s and time_to_target_s) and ends at its end; an
    epoch's val_accuracy is known when its result reaches the driver."""
    from scenetune.analysis import load_experiment

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epochs = load_experiment(uri).epochs.rename(columns={"trial_id": "trial", "epoch_time_s": "epoch_s"})
    with open(os.path.join(uri, "sweep_timings.json")) as f:
        clock = json.load(f)["runs"][-1]["trials"]
    arrived = {(trial, i): at for trial, t in clock.items() for i, at in t["results"]}
    epochs["at_s"] = [arrived[key] for key in zip(epochs["trial"], epochs["training_iteration"])]
    trials = pd.DataFrame([(trial, t["starts"][0], t["end"] if t["end"] is not None else t["results"][-1][1])
                           for trial, t in clock.items() if t["starts"]], columns=["trial", "start_s", "end_s"])
    return epochs[["trial", "epoch", "val_accuracy", "epoch_s", "at_s"]], trials


def run_scenetune(method: str, seed: int, bench: Bench) -> Run:
    from scenetune.search.spec import parse_spec
    from scenetune.search.tuner import run_sweep

    args = bench.args
    spec = {"name": f"peers-{seed}-{method}", "trainable": "classifier",
            "data": {"dataset": "mit67", "root": bench.root, "categories": "all",
                     "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 42}},
            "metric": "val_accuracy", "mode": "max",
            "search": {"algorithm": "optuna", "sampler": "tpe", "num_samples": args.trials, "max_concurrent": 2,
                       "seed": seed},
            "scheduler": {"name": "asha", "max_t": args.epochs, "grace_period": 1, "reduction_factor": FACTOR},
            "resources": {"cpu": 1, "gpu": 0}, "failure": {"max_failures": 1}, "checkpoint": {"num_to_keep": 1},
            "storage": os.path.join(bench.workdir, "results"), "space": SPACE,
            "fixed": {**FIXED, "epochs": args.epochs, "seed": seed, "cache_dir": os.path.join(bench.workdir, "cache")}}
    if method == "scenetune-cold":
        spec["resources"]["reuse_processes"] = False
        spec["checkpoint"]["frequency"] = 1
    if method in ("scenetune-cold", "scenetune-before"):  # ASHA's defaults before issue 18: one bracket, by accuracy
        spec["scheduler"].update(metric="val_accuracy", mode="max", brackets=1)
    started = time.perf_counter()
    uri = run_sweep(parse_spec(spec))
    return Run(time.perf_counter() - started, *scenetune_times(uri))


def trial_setup(bench: Bench, params: dict, seed: int):
    """``(model, training batches)`` as ``train_classifier`` builds them for
    ``params`` (SPACE's keys), after clearing Keras' state and seeding."""
    import keras
    from scenetune.spaces import unflatten
    from scenetune.trainables.classifier.config import ClassifierConfig
    from scenetune.trainables.classifier.models import build_classifier
    from scenetune.trainables.data.pipeline import cached_dataset

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    cfg = ClassifierConfig.model_validate(unflatten({**FIXED, "epochs": bench.args.epochs, "seed": seed, **params}))
    model = build_classifier(cfg, len(bench.classes))  # first, as in train_classifier: the same random draws
    return model, cached_dataset(bench.cache, *bench.train, cfg.batch_size, cfg.augment, shuffle=True, seed=cfg.seed)


class Recorder:
    """A peer's clock (``time.perf_counter`` from the method's start): trial spans, epochs."""

    def __init__(self):
        self.origin, self.epochs, self.trials = time.perf_counter(), [], []

    def now(self) -> float:
        return time.perf_counter() - self.origin

    @contextlib.contextmanager
    def trial(self):
        self.trials.append({"trial": len(self.trials), "start_s": self.now(), "end_s": math.nan})
        try:
            yield
        finally:
            self.trials[-1]["end_s"] = self.now()

    def run(self) -> Run:
        return Run(self.now(), pd.DataFrame(self.epochs, columns=["trial", "epoch", "val_accuracy", "epoch_s", "at_s"]),
                   pd.DataFrame(self.trials, columns=["trial", "start_s", "end_s"]))


def epoch_clock(recorder: Recorder, bench: Bench, on_epoch=None):
    """A Keras callback: at each epoch's end, val_accuracy as the classifier's
    reporter computes it goes into ``logs`` (KerasTuner's objective) and into
    ``recorder`` with the epoch's training time; then ``on_epoch(epoch,
    val_accuracy)`` (Optuna's report and prune)."""
    import keras
    from scenetune.trainables.data.pipeline import cached_dataset

    val, labels = cached_dataset(bench.cache, *bench.val, FIXED["batch_size"]), np.asarray(bench.val[1])

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            fit_s = time.perf_counter() - self.began
            accuracy = float((self.model.predict(val, verbose=0).argmax(axis=1) == labels).mean())
            if logs is not None:
                logs["val_accuracy"] = accuracy
            recorder.epochs.append({"trial": recorder.trials[-1]["trial"], "epoch": epoch + 1,
                                    "val_accuracy": accuracy, "epoch_s": fit_s, "at_s": recorder.now()})
            if on_epoch is not None:
                on_epoch(epoch + 1, accuracy)

        def __deepcopy__(self, memo):  # KerasTuner copies the callbacks of every trial: share this one
            return self

    return EpochClock()


def run_kerastuner(method: str, seed: int, bench: Bench) -> Run:
    """A trial spans KerasTuner's ``run_trial``: build (for a trial that goes
    on from another, its weights' load), fit, the best epoch's checkpoint."""
    import keras_tuner as kt

    epochs, recorder = bench.args.epochs, Recorder()

    class SceneModel(kt.HyperModel):
        def build(self, hp):
            params = {"learning_rate": hp.Float("learning_rate", 1e-4, 1e-2, sampling="log"),
                      "cnn_filters": hp.Choice("cnn_filters", [16, 32]), "cnn_blocks": hp.Choice("cnn_blocks", [2, 3]),
                      "dense_units": hp.Choice("dense_units", [32, 64]), "dropout": hp.Float("dropout", 0.0, 0.4),
                      "augment.horizontal_flip": hp.Choice("augment.horizontal_flip", [True, False])}
            model, self.train = trial_setup(bench, params, seed)
            return model

        def fit(self, hp, model, *args, **kwargs):
            return model.fit(self.train, shuffle=False, **kwargs)

    class TimedHyperband(kt.Hyperband):
        def run_trial(self, trial, *args, **kwargs):
            with recorder.trial():
                return super().run_trial(trial, *args, **kwargs)

    tuner = TimedHyperband(SceneModel(), objective="val_accuracy", max_epochs=epochs, factor=FACTOR,
                           hyperband_iterations=1, seed=seed, overwrite=True,
                           directory=os.path.join(bench.workdir, "kerastuner"), project_name=f"seed{seed}")
    tuner.search(epochs=epochs, callbacks=[epoch_clock(recorder, bench)], verbose=0)
    return recorder.run()


def run_optuna(method: str, seed: int, bench: Bench) -> Run:
    """A trial spans the objective from its sampled values to its return or prune."""
    import optuna

    epochs, recorder = bench.args.epochs, Recorder()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs,
                                                                      reduction_factor=FACTOR))

    def objective(trial):
        params = {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
                  "cnn_filters": trial.suggest_categorical("cnn_filters", [16, 32]),
                  "cnn_blocks": trial.suggest_categorical("cnn_blocks", [2, 3]),
                  "dense_units": trial.suggest_categorical("dense_units", [32, 64]),
                  "dropout": trial.suggest_float("dropout", 0.0, 0.4),
                  "augment.horizontal_flip": trial.suggest_categorical("augment.horizontal_flip", [True, False])}

        def report(epoch, accuracy):
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        with recorder.trial():
            model, train = trial_setup(bench, params, seed)
            model.fit(train, epochs=epochs, callbacks=[epoch_clock(recorder, bench, report)], verbose=0, shuffle=False)
            return recorder.epochs[-1]["val_accuracy"]

    study.optimize(objective, n_trials=bench.args.trials)
    return recorder.run()


RUNNERS = {"scenetune": run_scenetune, "scenetune-before": run_scenetune, "scenetune-cold": run_scenetune,
           "kerastuner-hyperband": run_kerastuner, "optuna-hyperband": run_optuna}


def figures(run: Run, target: float, tolerance: float) -> dict:
    """The figures of one run (the module's docstring says what each means)."""
    fit = run.epochs.groupby("trial")["epoch_s"].sum()
    spans = run.trials.set_index("trial")
    overhead = (spans["end_s"] - spans["start_s"] - fit.reindex(spans.index, fill_value=0.0)).mean()
    reached = run.epochs.loc[run.epochs["val_accuracy"] >= target - tolerance - 1e-9, "at_s"]
    return {"wall_s": run.wall_s, "best_val_acc": run.epochs["val_accuracy"].max(), "target": target,
            "time_to_target_s": reached.min() if len(reached) else math.nan, "epochs": len(run.epochs),
            "trials": len(run.trials), "fit_s": fit.sum(), "overhead_s_per_trial": overhead}


def summarize(rows: pd.DataFrame, tolerance: float = 0.01) -> pd.DataFrame:
    """Per method, the median over seeds of each figure, and the seeds that
    reached the target; the spread of the best (10th percentile, worst) and
    the share of seeds whose best came within ``tolerance`` of the best any
    run of any method found (the best configuration known for the task)."""
    by = rows.groupby("method", sort=False)
    table = by[FIGURES].median()
    table["time_to_target_s"] = by["time_to_target_s"].apply(lambda s: s.fillna(math.inf).median())
    table["reached"] = by["time_to_target_s"].apply(lambda s: f"{s.notna().sum()}/{len(s)}")
    table["best_p10"] = by["best_val_acc"].quantile(0.1)
    table["best_worst"] = by["best_val_acc"].min()
    known = rows["best_val_acc"].max()
    table["near_known_best"] = by["best_val_acc"].apply(lambda b: f"{int((b >= known - tolerance - 1e-9).sum())}/{len(b)}")
    return table.reset_index()


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args() -> argparse.Namespace:
    from scenetune.trainables.data.synth import SCENES

    parser = Parser(description=__doc__.split("\n\n")[0])
    for flag, what in (("seeds", "seeds 0..N-1"), ("trials", "trials of scenetune and Optuna"),
                       ("epochs", "a trial's most epochs (ASHA's max_t, Hyperband's max)"),
                       ("classes", "synthetic scene classes"), ("per-class", "synthetic images per class")):
        parser.add_argument(f"--{flag}", type=int, help=f"{what} (default {FULL[flag.replace('-', '_')]})")
    parser.add_argument("--data", help="dataset root: used as is if it holds Images/, else written (default: temp)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, of " + ", ".join(METHODS))
    parser.add_argument("--tolerance", type=float, default=0.01,
                        help="time to target: to within this of the seed's best val_accuracy (default 0.01)")
    parser.add_argument("--csv", help="write the per-seed rows to this CSV file")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 8 trials, 3 epochs (a smoke run)")
    parser.add_argument("--fresh", action="store_true",
                        help="run each method on each seed in its own Python process (a user's fresh start: "
                             "TensorFlow's per-model leak does not build up across methods and seeds)")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "SEED", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for key, value in (QUICK if args.quick else FULL).items():
        setattr(args, key, value if getattr(args, key) is None else getattr(args, key))
    for key in ("seeds", "trials", "epochs"):
        if getattr(args, key) < 1:
            parser.error(f"--{key}: must be at least 1, got {getattr(args, key)}")
    if not 1 <= args.classes <= len(SCENES):
        parser.error(f"--classes: between 1 and {len(SCENES)} (the synthetic scene kinds), got {args.classes}")
    if not 0 <= args.tolerance < 1:
        parser.error(f"--tolerance: between 0 and 1 (a val_accuracy difference), got {args.tolerance}")
    if args.per_class < 5:
        parser.error(f"--per-class: at least 5 (for a 60/20/20 split of each class), got {args.per_class}")
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not args.methods or set(args.methods) - set(METHODS) or len(set(args.methods)) < len(args.methods):
        parser.error(f"--methods: distinct names of {', '.join(METHODS)}, got {','.join(args.methods) or 'none'}")
    if "kerastuner-hyperband" in args.methods and importlib.util.find_spec("keras_tuner") is None:
        parser.error("--methods: kerastuner-hyperband needs keras-tuner (pip install 'scenetune[bench]')")
    return args


def one_run(method: str, seed: int, bench: Bench) -> Run:
    with contextlib.redirect_stdout(sys.stderr):  # Ray's and the tools' chatter; stdout: the table
        return RUNNERS[method](method, seed, bench)


def fresh_run(method: str, seed: int, bench: Bench) -> Run:
    """``method`` on ``seed`` in a new Python process running this script."""
    root, workdir = bench.root, bench.workdir
    out = os.path.join(workdir, f"run-{method}-{seed}.pkl")
    flags = [f"--{k.replace('_', '-')}={getattr(bench.args, k)}" for k in ("trials", "epochs", "classes", "per_class")]
    subprocess.run([sys.executable, os.path.abspath(__file__), "--child", method, str(seed), out, "--data", root,
                    "--workdir", workdir, *flags], check=True, stdout=sys.stderr)
    with open(out, "rb") as f:
        return pickle.load(f)


def warm_up(bench: Bench, ray_too: bool) -> None:
    """TensorFlow's one-time start-up (and Ray's), before any clock."""
    model, train = trial_setup(bench, {}, 0)
    model.fit(train, epochs=1, verbose=0, shuffle=False)
    if ray_too:
        from scenetune.search.tuner import connect

        connect(None)


def main() -> int:
    args = parse_args()
    if args.child:
        method, seed, out = args.child
        bench = load_bench(args, os.path.abspath(args.data), args.workdir)
        warm_up(bench, method.startswith("scenetune"))
        with open(out, "wb") as f:
            pickle.dump(one_run(method, int(seed), bench), f)
        return 0
    workdir = tempfile.mkdtemp(prefix="scenetune-peers-")
    try:
        import ray
        from scenetune.trainables.data.synth import write_synthetic

        root = os.path.abspath(args.data or os.path.join(workdir, "synth"))
        if not os.path.isdir(os.path.join(root, "Images")) or not os.listdir(os.path.join(root, "Images")):
            print(f"writing {args.classes} x {args.per_class} synthetic scenes to {root}", file=sys.stderr, flush=True)
            write_synthetic(root, args.classes, args.per_class, size=64, seed=0)
        bench = load_bench(args, root, workdir)
        if not args.fresh:
            warm_up(bench, ray_too=True)
        rows = []
        for n, seed in enumerate(range(args.seeds), 1):
            runs = {}
            for method in args.methods:
                runs[method] = fresh_run(method, seed, bench) if args.fresh else one_run(method, seed, bench)
                print(f"seed {n}/{args.seeds}: {method} ... {runs[method].wall_s:.1f} s", file=sys.stderr, flush=True)
            target = max(run.epochs["val_accuracy"].max() for run in runs.values())
            rows += [{"seed": seed, "method": m, **figures(run, target, args.tolerance)} for m, run in runs.items()]
            if args.csv:  # as it goes: a long run stopped midway keeps its seeds
                pd.DataFrame(rows).to_csv(args.csv, index=False)
        ray.shutdown()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = pd.DataFrame(rows)
    if args.csv:
        rows.to_csv(args.csv, index=False)
    table = summarize(rows, args.tolerance)
    print(f"\n{len(bench.classes)} classes, {len(bench.train[0])} train / {len(bench.val[0])} val images, "
          f"{args.trials} trials of at most {args.epochs} epochs; medians over {args.seeds} seeds; "
          f"{os.cpu_count()} CPUs\n")
    print(table.round({f: 3 if f.startswith("best") else 1 for f in FIGURES + ["best_p10", "best_worst"]})
          .to_markdown(index=False))
    medians = table.set_index("method")
    peers = [m for m in PEERS if m in medians.index]
    if "scenetune" in medians.index and peers:
        fastest = min(peers, key=lambda m: medians.loc[m, "time_to_target_s"])
        ours, theirs = medians.loc["scenetune", "time_to_target_s"], medians.loc[fastest, "time_to_target_s"]
        if math.isinf(ours) and math.isinf(theirs):
            verdict = "n/a (both medians infinite: see reached)"
        elif math.isinf(theirs):
            verdict = "0 (the peers' median seed never came within reach of the target: goal <= 0.8: met)"
        else:
            verdict = f"{ours / theirs:.2f} (goal <= 0.8: {'met' if ours / theirs <= 0.8 else 'NOT met'})"
        print(f"\nratio_time_to_target: scenetune {ours:.1f} s / {fastest} {theirs:.1f} s = {verdict}")
        floor = medians.loc[peers, "best_val_acc"].max() - 0.01
        print(f"accuracy: the best peer's median best_val_acc - 1 point = {floor:.3f}; "
              f"scenetune's {medians.loc['scenetune', 'best_val_acc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
