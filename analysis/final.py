"""The final evaluation's files (``EXPERIMENT/final/``), named in one place:
``scenetune.commands.evaluate`` writes them, the report reads them.

``metrics.json`` holds at least ``trial_id``, ``accuracy``, ``loss``,
``test_images`` (how many test images were read), ``classes``, ``retrain``,
``epochs`` and ``gradcam``: a list of ``{file, path, true, predicted,
probability, correct}`` for the overlays under ``gradcam/``.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pandas as pd

from scenetune.core import storage
from scenetune.core.layout import FINAL_DIR, GRADCAM_DIR, METRICS_FILE, PREDICTIONS_FILE


@dataclass
class FinalEvaluation:
    uri: str  # EXPERIMENT/final
    metrics: dict
    predictions: pd.DataFrame  # path, true, predicted, prob_<class>...

    @property
    def trial_id(self) -> str:
        return str(self.metrics["trial_id"])

    def gradcam_uri(self, name: str) -> str:
        return storage.join(self.uri, GRADCAM_DIR, name)


def final_uri(experiment_uri: str) -> str:
    return storage.join(experiment_uri, FINAL_DIR)


def read_final(experiment_uri: str) -> FinalEvaluation | None:
    """The experiment's final evaluation, or None when it has not run."""
    uri = final_uri(experiment_uri)
    metrics_uri, predictions_uri = storage.join(uri, METRICS_FILE), storage.join(uri, PREDICTIONS_FILE)
    if not (storage.exists(metrics_uri) and storage.exists(predictions_uri)):
        return None
    metrics = json.loads(storage.read_text(metrics_uri))
    predictions = pd.read_csv(io.StringIO(storage.read_text(predictions_uri)), dtype={"path": str, "true": str,
                                                                                     "predicted": str})
    return FinalEvaluation(uri, metrics, predictions)
