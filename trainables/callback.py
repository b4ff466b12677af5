"""The one Keras callback that reports a trainable's epochs to Ray Tune:
it times each epoch, asks the trainable for the epoch's metrics, and reports
them with a checkpoint when the schedule asks for one
(:func:`scenetune.trainables.reporting.report_epoch`), injecting the test
faults (``debug_fault``) on either side of the report. The classifier and
the GAN subclass it with their own metrics and checkpoint files."""

from __future__ import annotations

import time

import keras

from scenetune.trainables.faults import inject_fault
from scenetune.trainables.reporting import report_epoch


class TuneCallback(keras.callbacks.Callback):
    """Subclasses define ``epoch_metrics`` and ``save``; ``cfg`` carries
    ``epochs``, ``checkpoint_epochs`` and ``debug_fault``."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.started = time.perf_counter()

    def epoch_metrics(self, epoch: int, logs: dict, epoch_time: float) -> dict:
        """The metrics of 1-based ``epoch``, which took ``epoch_time`` seconds to train."""
        raise NotImplementedError

    def save(self, folder: str) -> None:
        """Write the checkpoint's files into ``folder``."""
        raise NotImplementedError

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        epoch_time = time.perf_counter() - self.started
        done = epoch + 1
        metrics = self.epoch_metrics(done, logs or {}, epoch_time)
        inject_fault(self.cfg.debug_fault, done, before_report=True)
        report_epoch(metrics, done, self.cfg.epochs, self.cfg.checkpoint_epochs, self.save)
        inject_fault(self.cfg.debug_fault, done, before_report=False)
