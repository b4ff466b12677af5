"""One figure style for every report figure: readable on a screen and in print.

Use ``figure()`` to make a figure and ``save(fig, path)`` to write it; axes get
labels with units by the caller (``ax.set_xlabel("training time (s)")``).
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only, no display; before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402

# Colour-blind-safe (Okabe-Ito), distinct in grey print too by marker and line style.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
DPI = 150

plt.rcParams.update({
    "figure.dpi": DPI, "savefig.dpi": DPI, "savefig.bbox": "tight",
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8,
    "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
})


def figure(width: float = 6.4, height: float = 4.0, ncols: int = 1, nrows: int = 1):
    """``(fig, axes)`` in the project's style."""
    return plt.subplots(nrows, ncols, figsize=(width, height), squeeze=nrows * ncols == 1)


def save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
