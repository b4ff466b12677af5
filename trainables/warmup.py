"""Ray's ``worker_process_setup_hook`` for the sweep's job: each worker
process imports TensorFlow and Keras as it starts, before a trial is handed
to it. Ray starts a job's first workers while the driver is still setting up
the Tuner, so the import (seconds) overlaps that, instead of delaying each
warm process's first trial. Trials then import nothing heavy."""

from __future__ import annotations

import os

HOOK = "trainables.warmup.import_tensorflow"


def import_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
