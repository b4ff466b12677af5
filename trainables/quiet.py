"""TensorFlow imported without its start-up lines.

TensorFlow 2.21 writes lines like ``WARNING: All log messages before
absl::InitializeLog() is called are written to STDERR`` and ``I0000 ...
port.cc:153] oneDNN custom operations are on ...`` straight to the
process's standard error (file descriptor 2) while it is imported, whatever
``TF_CPP_MIN_LOG_LEVEL`` says. :func:`import_tensorflow_quietly` sends
descriptor 2 to a temporary file during the import and writes back every
line that is not one of those start-up lines, so real errors still show.
TensorFlow's "triggered tf.function retracing" warning is left out too.
With ``SCENETUNE_VERBOSE=1`` (``-v``) nothing is filtered."""

from __future__ import annotations

import os
import re
import sys
import tempfile

VERBOSE_ENV = "SCENETUNE_VERBOSE"
START_UP_LINES = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called|"
    r"^[IW]\d{4} [\d:. ]+\d+ (port|cpu_feature_guard|cuda_\w+)\.cc:\d+\]|"
    r"To enable the following instructions|rebuild TensorFlow with the appropriate compiler flags")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and Keras (a no-op once imported)."""
    if "tensorflow" in sys.modules or os.environ.get(VERBOSE_ENV) == "1":
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not START_UP_LINES.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
    # Keras' predict on a new batch shape retraces its step and TensorFlow warns
    # of it in one line of about 900 characters, which says nothing to a user.
    import tensorflow as tf

    tf.get_logger().addFilter(lambda record: "triggered tf.function retracing" not in record.getMessage())
