"""Reading a large experiment directory: ``analysis.load_experiment`` vs Ray
Tune's own ``ray.tune.ExperimentAnalysis``, same directory, same process.

The directory is generated in Ray Tune's real file format: one tiny trial is
first run by a real ``ray.tune.Tuner`` (embedded Ray) to get a template, then
that trial is cloned with Ray's own ``Trial`` class into N trials of E
epochs: ``params.json``, ``params.pkl``, ``result.json`` (one JSON line per
epoch, config included, as Ray's JSON logger writes it), ``progress.csv``,
and an ``experiment_state-*.json`` that lists every trial.

    .venv/bin/python benchmarks/read_experiment.py                 # 500 trials x 50 epochs
    .venv/bin/python benchmarks/read_experiment.py --trials 50 --epochs 10 --repeats 3
"""

from __future__ import annotations

import argparse
import copy
import csv
import glob
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

METRICS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "epoch_time_s", "train_time_s",
           "images_per_s", "trainable_params", "total_params"]


def tiny_trainable(config):
    from ray import tune

    for epoch in range(1, 3):
        tune.report({"epoch": epoch, "loss": 1.0 / epoch, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5,
                     "epoch_time_s": 0.1, "train_time_s": 0.1 * epoch, "images_per_s": 100.0,
                     "trainable_params": 10, "total_params": 10})


def make_template(root: str) -> str:
    """One real Ray Tune trial of 2 epochs; returns its experiment directory."""
    import ray
    from ray import tune

    ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR")
    try:
        config = {"backbone": "mobilenet_v2", "image_size": 224, "learning_rate": 1e-4, "epochs": 50,
                  "batch_size": 20, "augment": {"rotation_range": 20.0, "horizontal_flip": True},
                  "data": {"root": "/data/indoor67", "manifest": "split.csv", "classes": ["a", "b", "c"]}}
        tuner = tune.Tuner(tiny_trainable, param_space=config,
                           tune_config=tune.TuneConfig(metric="val_accuracy", mode="max", reuse_actors=False),
                           run_config=tune.RunConfig(name="template", storage_path=root, verbose=0))
        tuner.fit()
    finally:
        ray.shutdown()
    return os.path.join(root, "template")


def clone(template: str, out: str, trials: int, epochs: int, seed: int = 0) -> None:
    """Write ``trials`` trials of ``epochs`` epochs in the template's format."""
    from ray.cloudpickle import dump as pickle_dump
    from ray.tune.experiment import Trial
    from ray.tune.utils.util import SafeFallbackEncoder

    rng = random.Random(seed)
    state_file = sorted(glob.glob(os.path.join(template, "experiment_state-*.json")))[-1]
    with open(state_file) as f:
        state = json.load(f)
    trial_json, runtime_json = state["trial_data"][0]
    template_trial = Trial.from_json_state(trial_json, stub=True)
    template_trial.restore_run_metadata(runtime_json)
    with open(os.path.join(template, template_trial.storage.trial_dir_name, "result.json")) as f:
        template_row = json.loads(f.readline())
    os.makedirs(out)
    for name in os.listdir(template):  # tuner.pkl, searcher state...: as Ray left them
        path = os.path.join(template, name)
        if os.path.isfile(path) and not name.startswith("experiment_state-"):
            shutil.copy(path, out)
    trial_data, started = [], time.time() - 3600
    for i in range(trials):
        trial_id = f"{i:05d}abc"[:8]
        config = copy.deepcopy(template_trial.config)
        config.update(image_size=rng.choice([50, 150, 224]), learning_rate=10 ** rng.uniform(-5, -2),
                      backbone=rng.choice(["mobilenet_v2", "inception_resnet_v2", "basic_cnn"]))
        dirname = f"tiny_trainable_{trial_id}_{i}_lr={config['learning_rate']:.4g}_2026-01-01_00-00-00"
        trial_dir = os.path.join(out, dirname)
        os.makedirs(trial_dir)
        rows, train_time, acc = [], 0.0, rng.uniform(0.1, 0.3)
        for epoch in range(1, epochs + 1):
            acc = min(0.95, acc + rng.uniform(0, 0.03))
            epoch_time = rng.uniform(5, 30)
            train_time += epoch_time
            row = dict(template_row)
            row.update(epoch=epoch, loss=2.0 / epoch, accuracy=acc + 0.05, val_loss=2.2 / epoch, val_accuracy=acc,
                       epoch_time_s=epoch_time, train_time_s=train_time, images_per_s=3500 / epoch_time,
                       trainable_params=2_000_000, total_params=2_300_000, timestamp=int(started + train_time),
                       training_iteration=epoch, trial_id=trial_id, time_this_iter_s=epoch_time + 0.5,
                       time_total_s=train_time + 0.5 * epoch, done=epoch == epochs, config=config,
                       time_since_restore=train_time + 0.5 * epoch, iterations_since_restore=epoch)
            rows.append(row)
        with open(os.path.join(trial_dir, "result.json"), "w") as f:  # Ray's JsonLoggerCallback
            for row in rows:
                json.dump(row, f, cls=SafeFallbackEncoder)
                f.write("\n")
        with open(os.path.join(trial_dir, "progress.csv"), "w", newline="") as f:  # Ray's CSVLoggerCallback
            flat = [{k: v for k, v in r.items() if k != "config"} for r in rows]
            writer = csv.DictWriter(f, fieldnames=list(flat[0]))
            writer.writeheader()
            writer.writerows(flat)
        with open(os.path.join(trial_dir, "params.json"), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True, cls=SafeFallbackEncoder)
        with open(os.path.join(trial_dir, "params.pkl"), "wb") as f:
            pickle_dump(config, f)
        trial = Trial.from_json_state(trial_json, stub=True)
        trial.trial_id, trial.config, trial.relative_logdir = trial_id, config, dirname
        trial.storage = copy.copy(template_trial.storage)
        trial.storage.trial_dir_name = dirname
        trial.status = Trial.TERMINATED
        trial.invalidate_json_state()
        trial.restore_run_metadata(runtime_json)
        trial.run_metadata.last_result = rows[-1]
        trial.run_metadata.start_time = started
        trial.run_metadata.last_result_time = started + rows[-1]["time_total_s"]
        trial_data.append(list(trial.get_json_state()))
    state["trial_data"] = trial_data
    with open(os.path.join(out, os.path.basename(state_file)), "w") as f:
        json.dump(state, f)
    with open(os.path.join(out, "scenetune_spec.yaml"), "w") as f:
        f.write("name: bench\ntrainable: classifier\nmetric: val_accuracy\nmode: max\n"
                f"scheduler: {{name: asha, max_t: {epochs}, grace_period: 1, reduction_factor: 3}}\n")


def time_it(fn, repeats: int) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", help="write the experiment here and keep it")
    args = parser.parse_args()

    import logging

    logging.getLogger("ray").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        template = make_template(os.path.join(tmp, "template-root"))
        out = args.keep or os.path.join(tmp, "bench")
        clone(template, out, args.trials, args.epochs)
        size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(out, "**"), recursive=True) if os.path.isfile(p))
        print(f"generated {args.trials} trials x {args.epochs} epochs ({size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t0:.1f} s: {out}")

        from ray.tune import ExperimentAnalysis

        from scenetune.analysis import load_experiment

        def ours():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exp = load_experiment(out)
            return len(exp.trials), len(exp.epochs)

        def rays():
            analysis = ExperimentAnalysis(out, default_metric="val_accuracy", default_mode="max")
            return len(analysis.trials), sum(len(df) for df in analysis.trial_dataframes.values())

        ours(), rays()  # warm the page cache for both
        best_ours, median_ours, counts_ours = time_it(ours, args.repeats)
        best_rays, median_rays, counts_rays = time_it(rays, args.repeats)
        assert counts_ours == counts_rays == (args.trials, args.trials * args.epochs), (counts_ours, counts_rays)
        print(f"\nreading {args.trials} trials x {args.epochs} epochs ({counts_ours[1]} rows), "
              f"best / median of {args.repeats}, {os.cpu_count()} CPUs:\n")
        print("| reader | best (s) | median (s) | vs load_experiment |")
        print("|---|---|---|---|")
        print(f"| `analysis.load_experiment` | {best_ours:.2f} | {median_ours:.2f} | 1.00x |")
        print(f"| `ray.tune.ExperimentAnalysis` | {best_rays:.2f} | {median_rays:.2f} | {best_rays / best_ours:.2f}x |")


if __name__ == "__main__":
    main()
