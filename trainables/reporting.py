"""One epoch's report to Ray Tune, with a checkpoint when the schedule asks
for one. Shared by the classifier and the GAN.

Checkpoints are written at the epochs the sweep names in the trial's
``checkpoint_epochs`` (ASHA's rungs by default: where ASHA stops a trial,
so a stopped trial's model is there for ``evaluate``) and always at the
trial's last epoch; ``checkpoint_epochs`` unset (a trial run outside a sweep)
checkpoints every epoch. A retried trial resumes from its latest checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable

from ray import tune

from scenetune.core.layout import RESOLVED_CONFIG_FILE


def wants_checkpoint(epoch: int, last_epoch: int, checkpoint_epochs: list[int] | None) -> bool:
    """Whether ``epoch`` (1-based) of a trial of ``last_epoch`` epochs checkpoints."""
    return checkpoint_epochs is None or epoch >= last_epoch or epoch in checkpoint_epochs


def process_rss_mb() -> float:
    """Resident memory of this process (Linux ``/proc``; elsewhere its peak),
    reported each epoch: a warm process runs many trials, and this shows
    whether it grows."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_mb(folder: str) -> float:
    return sum(entry.stat().st_size for entry in os.scandir(folder) if entry.is_file()) / 2**20


def report_epoch(metrics: dict, epoch: int, last_epoch: int, checkpoint_epochs: list[int] | None,
                 save: Callable[[str], None]) -> None:
    """Report ``metrics`` for ``epoch``; when it checkpoints, ``save(folder)``
    writes the checkpoint's files first. Adds ``checkpoint_s`` (seconds spent
    writing the files, 0 without a checkpoint), ``checkpoint_mb`` and
    ``process_rss_mb``."""
    metrics = {**metrics, "process_rss_mb": process_rss_mb()}
    if not wants_checkpoint(epoch, last_epoch, checkpoint_epochs):
        tune.report({**metrics, "checkpoint_s": 0.0, "checkpoint_mb": 0.0})
        return
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        save(tmp)
        written = {"checkpoint_s": time.perf_counter() - started, "checkpoint_mb": folder_mb(tmp)}
        tune.report({**metrics, **written}, checkpoint=tune.Checkpoint.from_directory(tmp))


def write_resolved_config(cfg, **facts) -> str:
    """Write the trial's config with every default filled in (and ``facts``
    the trainable derives from it) to its working directory, which Ray Tune
    syncs to the trial's folder: the report reads values from there instead
    of importing the trainable's defaults. Returns the file's path."""
    resolved = {**cfg.model_dump(mode="json", exclude={"data"}), **facts}
    with open(RESOLVED_CONFIG_FILE, "w") as f:
        json.dump(resolved, f, indent=2, default=str)
    return os.path.abspath(RESOLVED_CONFIG_FILE)
