"""What the classifier's predictions score, computed one way for the
trial's validation (each epoch) and ``evaluate``'s test split (once): the
loss and accuracy of class probabilities, and the predictions table written
beside them. numpy and pandas only."""

from __future__ import annotations

import numpy as np
import pandas as pd


def scores(probs: np.ndarray, labels) -> dict[str, float]:
    """``{"loss": mean cross-entropy, "accuracy": top-1}`` of ``probs`` (one row per image)."""
    labels = np.asarray(labels)
    picked = np.clip(probs[np.arange(len(probs)), labels], 1e-7, 1.0)
    return {"loss": float(-np.log(picked).mean()), "accuracy": float((probs.argmax(axis=1) == labels).mean())}


def predictions_frame(rows: pd.DataFrame, probs: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """path, true, predicted, then one ``prob_<class>`` column per class."""
    frame = pd.DataFrame({"path": rows["path"], "true": rows["label"],
                          "predicted": [classes[i] for i in probs.argmax(axis=1)]})
    for i, name in enumerate(classes):
        frame[f"prob_{name}"] = probs[:, i].round(6)
    return frame
