"""The GPU checks of warm trials, in one run of under 5 minutes on one GPU,
printing one table.

    python benchmarks/gpu_check.py          # needs an NVIDIA GPU and the gpu extra (pip install -e ".[gpu]")

1. Warm trials on a GPU: 8 trials of ``resources.gpu: 0.25`` (4 at a time,
   processes reused): every worker process runs two trials or more, and its
   peak GPU memory (nvidia-smi, every half second, by pid) stays under the
   quarter-card cap that scenetune.trainables.device set when the process first touched
   the GPU: the memory plan holds for every trial a process runs.
2. ``benchmarks/gpu_fractional.py``'s comparison: 4 trials sharing the card at
   0.25 each against the same 4 with the whole card one after another.
3. MobileNetV2 at 224 px, images/s of a trial's second epoch, float32
   against ``mixed_precision: bfloat16``.

Without a GPU it says so and exits with status 2.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import gpu_fractional  # noqa: E402  (this folder's benchmark)


def warm_gpu_trials(root: str, storage: str, cap_mb: int) -> list[dict]:
    """Check 1: 8 quarter-GPU trials, 4 at a time, in reused processes."""
    args = SimpleNamespace(backbone="mobilenet_v2", size=128, epochs=2, batch_size=32, precision="float32")
    from scenetune.search.run import run_sweep
    from scenetune.search.spec import parse_spec

    spec = parse_spec({
        "name": "warm-gpu", "trainable": "classifier", "storage": storage, "data": {"dataset": "mit67", "root": root},
        "search": {"algorithm": "grid", "num_samples": 1, "max_concurrent": 4}, "scheduler": {"name": "none"},
        "resources": {"cpu": max((os.cpu_count() or 4) // 4, 1), "gpu": 0.25}, "failure": {"max_failures": 0},
        "space": {"seed": {"grid": list(range(8))}},
        "fixed": {"backbone": args.backbone, "weights": "none", "image_size": args.size, "epochs": args.epochs,
                  "batch_size": args.batch_size}})
    sampler = gpu_fractional.MemorySampler()
    sampler.start()
    uri = run_sweep(spec)
    sampler.stopped.set()
    sampler.join()
    trials_per_pid: dict[int, int] = {}
    for name in os.listdir(uri):
        path = os.path.join(uri, name, "result.json")
        if os.path.isfile(path):
            with open(path) as f:
                pid = json.loads(f.readline())["pid"]
            trials_per_pid[pid] = trials_per_pid.get(pid, 0) + 1
    return [{"check": "warm 0.25-GPU trials", "what": f"pid {pid}: {n} trials",
             "value": sampler.peak.get(pid, 0), "unit": "peak MB",
             "holds": n >= 2 and sampler.peak.get(pid, 0) <= cap_mb + 512}  # + the CUDA context, outside the cap
            for pid, n in sorted(trials_per_pid.items())]


def precision_rate(root: str, storage: str, precision: str) -> float:
    """Check 3: images/s of epoch 2 of one MobileNetV2 trial at 224 px."""
    args = SimpleNamespace(backbone="mobilenet_v2", size=224, epochs=2, batch_size=64, precision=precision)
    rows, _ = gpu_fractional.sweep(f"rate-{precision}", 1, os.cpu_count() or 4, args, root, storage)
    return rows[0]["images_per_s"]


def main() -> int:
    if shutil.which("nvidia-smi") is None or not subprocess.run(["nvidia-smi", "-L"], capture_output=True).stdout:
        print("gpu_check: needs an NVIDIA GPU (nvidia-smi finds none); nothing measured", file=sys.stderr)
        return 2
    from scenetune.trainables.data.synth import write_synthetic
    from scenetune.trainables.device import gpu_memory_plan, gpu_total_mb

    started = time.perf_counter()
    total = gpu_total_mb()[0]
    cap = gpu_memory_plan(0.25, [total])[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        small, large, runs = (os.path.join(tmp, d) for d in ("small", "large", "runs"))
        write_synthetic(small, classes=6, per_class=60, size=128, seed=0)
        write_synthetic(large, classes=6, per_class=120, size=224, seed=0)
        rows += warm_gpu_trials(small, runs, cap)
        args = SimpleNamespace(backbone="mobilenet_v2", size=128, epochs=2, batch_size=32, precision="float32")
        cpus = max((os.cpu_count() or 4) // 4, 1)
        shared, shared_wall = gpu_fractional.sweep("fractional", 0.25, cpus, args, small, runs)
        whole, whole_wall = gpu_fractional.sweep("whole", 1, cpus, args, small, runs)
        rows.append({"check": "gpu_fractional", "what": "wall: 4 x 0.25 at once / 4 x 1 in turn",
                     "value": shared_wall / whole_wall, "unit": "ratio", "holds": shared_wall < whole_wall})
        rows.append({"check": "gpu_fractional", "what": "images/s: 4 shared together / one whole-GPU trial",
                     "value": sum(r["images_per_s"] for r in shared) / (sum(r["images_per_s"] for r in whole) / 4),
                     "unit": "ratio", "holds": None})
        for precision in ("float32", "bfloat16"):
            rows.append({"check": "mobilenet_v2 224 px", "what": precision, "value": precision_rate(large, runs, precision),
                         "unit": "images/s", "holds": None})
    print(f"GPU: {total} MB, quarter cap {cap} MB; {time.perf_counter() - started:.0f} s in all")
    print(f"{'check':<22} {'what':<52} {'value':>10} {'unit':<9} holds")
    for row in rows:
        print(f"{row['check']:<22} {row['what']:<52} {row['value']:>10.2f} {row['unit']:<9} {row['holds']}")
    return 0 if all(r["holds"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
