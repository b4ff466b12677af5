"""Every file and folder name of an experiment, in one place.

An experiment folder (``STORAGE/NAME``, local or remote) holds what the
sweep's driver writes (the spec, the split manifest, the data check), one
folder per trial written by Ray Tune (``params.json``, ``result.json``,
``progress.csv``, ``error.txt``, ``checkpoint_NNNNNN/``) plus what the trial
itself writes in its working directory (its resolved configuration, GAN
samples), and the folders of scenetune's own commands (``final/`` from
``evaluate``, ``report/`` from ``report``).
"""

from __future__ import annotations

from scenetune.core import storage

# Written by the sweep's driver.
SPEC_FILE = "scenetune_spec.yaml"
MANIFEST_FILE = "split.csv"
DATA_CHECK_FILE = "data_check.json"
TIMINGS_FILE = "sweep_timings.json"  # where the sweep's time went, each result's arrival (search/clock.py)
WARM_START_FILE = "warm_start.json"  # the experiments a sweep was warm-started from, the trials used

# Written in each trial's folder: by Ray Tune, and by the trial itself.
PARAMS_FILE = "params.json"
RESULT_FILE = "result.json"
PROGRESS_FILE = "progress.csv"
ERROR_FILE = "error.txt"
RESOLVED_CONFIG_FILE = "scenetune_config.json"  # the trial's config with every default filled in
CHECKPOINT_PREFIX = "checkpoint_"
MODEL_FILE = "model.keras"  # in a classifier's checkpoint and in final/
STATE_FILE = "state.json"  # a checkpoint's epoch and training state
SAMPLES_DIR = "samples"  # a GAN trial's sample grids

# Written by scenetune's commands.
FINAL_DIR = "final"
PREDICTIONS_FILE = "test_predictions.csv"
METRICS_FILE = "metrics.json"
GRADCAM_DIR = "gradcam"
REPORT_DIR = "report"
EXPORTS_DIR = "exports"  # the card of each model exported from the experiment (scenetune export --format)
OWN_DIRS = (FINAL_DIR, REPORT_DIR, EXPORTS_DIR)  # in an experiment folder, but not trials


def latest_checkpoint(trial_uri: str) -> str | None:
    """The trial's newest ``checkpoint_NNNNNN`` folder, or None."""
    names = sorted(name for name, is_dir in storage.list_dir(trial_uri)
                   if is_dir and name.startswith(CHECKPOINT_PREFIX))
    return storage.join(trial_uri, names[-1]) if names else None


def model_file(path: str) -> str:
    """``path`` itself when it names a ``.keras`` file, else the model file in that folder."""
    path = str(path).rstrip("/")
    return path if path.endswith(".keras") else storage.join(path, MODEL_FILE)


STATE_PREFIX = "experiment_state-"  # Ray Tune's saved state of an experiment: the newest one counts


def newest_state_file(uri: str) -> str | None:
    """The experiment's newest ``experiment_state-*.json``, or None."""
    names = [name for name, is_dir in storage.list_dir(uri)
             if not is_dir and name.startswith(STATE_PREFIX) and name.endswith(".json")]
    return storage.join(uri, sorted(names)[-1]) if names else None

# User attributes of an earlier experiment's trial in a warm-started Optuna study (docs/spec.md#warm-start)
WARM_START_ATTR = "warm_start"  # the experiment's URI
OTHER_SIZE_ATTR = "warm_start_other_size"  # of one used as a prior from another image size: the size it ran at
