"""Fractional GPUs, measured: 4 trials sharing one GPU (``resources.gpu:
0.25``, each capped at a quarter of the card by scenetune.trainables.device) side by
side with the same 4 trials given the whole GPU one after another
(``gpu: 1``). Same data, same configurations, same process.

Per trial it records images/s (the trial's ``images_per_s``, mean over its
epochs after the first, which pays for graph building) and its peak GPU
memory (sampled from ``nvidia-smi --query-compute-apps`` every half second,
matched to the trial's worker by pid); per mode the wall time of the sweep.

    python benchmarks/gpu_fractional.py                     # needs an NVIDIA GPU and the gpu extra
    python benchmarks/gpu_fractional.py --size 96 --epochs 3 --per-class 120

Writes benchmarks/results/gpu_fractional.json and prints a table. Without a
GPU it says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def gpu_processes() -> dict[int, int]:
    """pid -> MB of GPU memory, for every process on a GPU now."""
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=20).stdout
    usage = {}
    for line in out.strip().splitlines():
        pid, used = (part.strip() for part in line.split(","))
        if pid.isdigit() and used.replace(".", "").isdigit():
            usage[int(pid)] = int(float(used))
    return usage


class MemorySampler(threading.Thread):
    """Peak GPU memory per pid while the sweep runs."""

    def __init__(self, every: float = 0.5):
        super().__init__(daemon=True)
        self.every, self.peak, self.stopped = every, {}, threading.Event()

    def run(self):
        while not self.stopped.is_set():
            for pid, used in gpu_processes().items():
                self.peak[pid] = max(self.peak.get(pid, 0), used)
            time.sleep(self.every)


def sweep(name: str, gpu: float, cpu: float, args, root: str, storage: str) -> tuple[list[dict], float]:
    from scenetune.analysis import load_experiment
    from scenetune.search.run import run_sweep
    from scenetune.search.spec import parse_spec

    spec = parse_spec({
        "name": name, "trainable": "classifier", "storage": storage,
        "data": {"dataset": "mit67", "root": root},
        "search": {"algorithm": "grid", "num_samples": 1, "max_concurrent": 4 if gpu < 1 else 1},
        "scheduler": {"name": "none"}, "resources": {"cpu": cpu, "gpu": gpu}, "failure": {"max_failures": 0},
        "space": {"seed": {"grid": [0, 1, 2, 3]}},
        "fixed": {"backbone": args.backbone, "weights": "none", "image_size": args.size, "epochs": args.epochs,
                  "batch_size": args.batch_size, "mixed_precision": args.precision}})
    sampler = MemorySampler()
    sampler.start()
    started = time.perf_counter()
    uri = run_sweep(spec)
    wall = time.perf_counter() - started
    sampler.stopped.set()
    sampler.join()
    exp = load_experiment(uri)
    rows = []
    for trial_id, epochs in exp.epochs.groupby("trial_id"):
        with open(os.path.join(uri, exp.trials.set_index("trial_id").loc[trial_id, "trial_dir"], "result.json")) as f:
            pids = {json.loads(line)["pid"] for line in f if line.strip()}
        later = epochs[epochs["epoch"] > 1] if len(epochs) > 1 else epochs
        rows.append({"mode": f"gpu {gpu:g}", "trial": trial_id, "images_per_s": float(later["images_per_s"].mean()),
                     "peak_gpu_mb": max((sampler.peak.get(pid, 0) for pid in pids), default=0)})
    return rows, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--per-class", type=int, default=120)
    parser.add_argument("--precision", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                      "gpu_fractional.json"))
    args = parser.parse_args()
    if shutil.which("nvidia-smi") is None or not subprocess.run(["nvidia-smi", "-L"], capture_output=True).stdout:
        print("gpu_fractional: needs an NVIDIA GPU (nvidia-smi finds none); nothing measured", file=sys.stderr)
        return 2

    from scenetune.trainables.data.synth import write_synthetic
    from scenetune.trainables.device import gpu_memory_plan, gpu_total_mb

    total = gpu_total_mb()[0]
    cpus = os.cpu_count() or 4
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "data")
        write_synthetic(root, classes=args.classes, per_class=args.per_class, size=args.size, seed=0)
        shared, shared_wall = sweep("fractional", 0.25, max(cpus // 4, 1), args, root, os.path.join(tmp, "runs"))
        whole, whole_wall = sweep("whole", 1, max(cpus // 4, 1), args, root, os.path.join(tmp, "runs"))
    cap = gpu_memory_plan(0.25, [total])[0]
    report = {"gpu_total_mb": total, "cap_per_quarter_trial_mb": cap, "args": vars(args),
              "wall_s": {"gpu 0.25 x4 at once": shared_wall, "gpu 1 one at a time": whole_wall},
              "trials": shared + whole}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)

    print(f"GPU: {total} MB; cap per 0.25 trial: {cap} MB; {args.backbone} {args.size}px, "
          f"{args.classes}x{args.per_class} images, {args.epochs} epochs, batch {args.batch_size}, {args.precision}")
    print(f"{'mode':<10} {'trial':<14} {'images/s':>10} {'peak GPU MB':>12}")
    for row in shared + whole:
        print(f"{row['mode']:<10} {row['trial']:<14} {row['images_per_s']:>10.1f} {row['peak_gpu_mb']:>12}")
    total_shared = sum(r["images_per_s"] for r in shared)
    mean_whole = sum(r["images_per_s"] for r in whole) / len(whole)
    print(f"\nwall time: 4 x gpu 0.25 at once {shared_wall:.1f} s; 4 x gpu 1 one at a time {whole_wall:.1f} s "
          f"(ratio {whole_wall / shared_wall:.2f})")
    print(f"throughput: 4 shared trials together {total_shared:.1f} images/s vs one whole-GPU trial "
          f"{mean_whole:.1f} images/s (ratio {total_shared / mean_whole:.2f})")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
