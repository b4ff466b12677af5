"""What the report's anytime section must show of a real sweep
(scenetune.analysis.anytime): shared by the classifier's and the GAN's tests."""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from scenetune.analysis.anytime import anytime_section, anytime_table


def check_anytime_section(exp, out_dir: str) -> None:
    """Every epoch on both axes in the order the driver received it, the best
    so far the running best of the metric, the figure drawn."""
    table = anytime_table(exp)
    assert len(table) == len(exp.epochs.dropna(subset=[exp.metric]))
    assert table["at_s"].notna().all(), "every epoch's arrival is in sweep_timings.json"
    assert table["at_s"].is_monotonic_increasing
    timings = json.load(open(os.path.join(exp.uri, "sweep_timings.json")))["runs"][-1]
    assert table["at_s"].max() <= timings["prepare_s"] + timings["ray_start_s"] + timings["trials_s"] + 1
    assert list(table["epochs_trained"]) == list(range(1, len(table) + 1))
    running = np.maximum.accumulate if exp.mode == "max" else np.minimum.accumulate
    assert np.allclose(table["best"], running(table[exp.metric].to_numpy()))
    best = exp.epochs[exp.metric].max() if exp.mode == "max" else exp.epochs[exp.metric].min()
    assert table["best"].iloc[-1] == best
    [section] = anytime_section(exp, out_dir)
    steps = section.tables["anytime"]
    assert steps[f"best {exp.metric}"].iloc[-1] == best and len(steps) >= 1
    [path] = section.figures.values()
    width, height = Image.open(path).size
    assert width > 1000 and height > 700, "the four panels"
