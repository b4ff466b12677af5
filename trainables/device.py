"""Per-trial TensorFlow set-up: threads, seeds, GPU memory and precision.

Trials that share a GPU (fractional ``resources.gpu``) must not starve each
other: TensorFlow would otherwise grab the whole card. A trial with a whole
GPU (or more) grows its memory on demand; a trial with a fraction ``f`` gets a
logical device capped at ``f`` of the card's memory.
"""

from __future__ import annotations

import os
import subprocess
import warnings

PRECISION_POLICIES = {"float32": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


def memory_limit_mb(gpu_fraction: float, total_mb: int, headroom_mb: int = 256) -> int | None:
    """The memory cap for a trial holding ``gpu_fraction`` of a card, or None
    (grow on demand) for a whole card. Leaves the CUDA context some headroom."""
    if gpu_fraction <= 0 or gpu_fraction >= 1:
        return None
    return max(int(total_mb * gpu_fraction) - headroom_mb, 256)


def gpu_memory_plan(gpu_fraction: float, totals_mb: list[int]) -> list[int | None]:
    """Per visible GPU: None (memory growth) or the cap in MB for a trial
    holding ``gpu_fraction`` of a card (``resources.gpu``)."""
    return [memory_limit_mb(gpu_fraction, total) for total in totals_mb]


def gpu_total_mb() -> list[int]:
    """Total memory of each visible GPU, from nvidia-smi (empty without one)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    totals = [int(float(v)) for v in out.split()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        ids = [int(i) for i in visible.split(",") if i.strip().isdigit()]
        totals = [totals[i] for i in ids if i < len(totals)]
    return totals


def trial_resources(context) -> tuple[float, float]:
    """(CPUs, GPUs) this trial was given by Ray Tune, read through Ray's public
    ``ray.tune.get_context().get_trial_resources()`` (a PlacementGroupFactory;
    its ``required_resources`` sums the trial's bundles). Outside a Tune
    session Ray documents that call as warning and returning None: (0, 0)
    then, without Ray's warning. Anything else raises: were Ray's API to
    change, swallowing the error would silently drop the trial's GPU memory
    cap and its in-model augmentation."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is meant to only be called inside a function")
        request = context.get_trial_resources()
    if request is None:  # not in a Tune session
        return 0.0, 0.0
    bundle = request.required_resources
    return float(bundle.get("CPU", 0)), float(bundle.get("GPU", 0))


# The GPU memory plan applied in this process: TensorFlow fixes it when it
# first touches a GPU, for the process's life. Ray reuses a process only for
# trials of the same resources, so every later trial asks for the same plan.
_applied_plan: list[int | None] | None = None


def reset_trial_state() -> None:
    """Start a trial clean in a process that may have run others: drop the
    previous trial's graphs, models, optimizers and dataset iterators
    (Keras' session; ``clear_session`` also collects Python's garbage), and
    switch XLA's auto-clustering off (a model's own ``jit_compile`` is set
    from each trial's config)."""
    import keras
    import tensorflow as tf

    keras.backend.clear_session()
    tf.config.optimizer.set_jit(False)


def apply_gpu_plan(devices, plan: list[int | None]) -> list[int | None]:
    """Memory growth (None) or a logical device capped at ``plan[i]`` MB for
    each GPU; in a process whose GPUs are already set up, check that the plan
    is the one applied (a different one cannot take effect)."""
    global _applied_plan
    import tensorflow as tf

    plan = [plan[i] if i < len(plan) else None for i in range(len(devices))]  # total unknown: grow on demand
    if _applied_plan is not None:
        if plan != _applied_plan:
            raise RuntimeError(f"this worker process's GPUs are set up with memory plan {_applied_plan} (MB caps, "
                               f"None = growth); this trial needs {plan}: run it in a fresh process "
                               "(resources.reuse_processes: false)")
        return plan
    for gpu, limit in zip(devices, plan):
        if limit is None:
            tf.config.experimental.set_memory_growth(gpu, True)
        else:
            tf.config.set_logical_device_configuration(gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=limit)])
    _applied_plan = plan
    return plan


def configure(seed: int, mixed_precision: str = "float32", context=None) -> dict:
    """Apply the trial's device settings after :func:`reset_trial_state`;
    returns what was applied."""
    import keras
    import tensorflow as tf

    reset_trial_state()
    cpus, gpus = trial_resources(context) if context is not None else (0.0, 0.0)
    applied = {"cpus": cpus, "gpus": gpus}
    try:
        if cpus >= 1:
            tf.config.threading.set_intra_op_parallelism_threads(int(cpus))
            tf.config.threading.set_inter_op_parallelism_threads(max(int(cpus), 2))
    except RuntimeError:
        # TensorFlow already ran in this process (an earlier trial of a reused
        # process, an evaluation after a fit): its thread pools are fixed, and
        # Ray reuses a process only for trials of the same resources.
        applied["threads_unchanged"] = True
    devices = tf.config.list_physical_devices("GPU")
    if devices:
        applied["gpu_memory_limit_mb"] = apply_gpu_plan(devices, gpu_memory_plan(gpus, gpu_total_mb()))
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[mixed_precision])
    applied["precision"] = PRECISION_POLICIES[mixed_precision]
    return applied
