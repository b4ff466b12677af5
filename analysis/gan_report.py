"""The GAN's part of the report: what the seed report's Figures 3-5 tried to
show, measured. No TensorFlow: it reads the trials' logs and sample PNGs.

Sections:
1. the sample grids of the best trials at their last epoch (the fixed latents
   of each trial, ``samples/latest.png``);
2. the same latents through the epochs: for each best trial, a strip of the
   first grid cells at up to ``strip_epochs`` epochs, first to last, so a
   collapse (every column turning into the same image) shows as it happens;
3. FID and diversity by epoch for every trial, collapsed epochs marked, the
   collapse threshold drawn;
4. the best widths: the top trials' networks and metrics, and the best FID of
   each generator x discriminator width pair.
Figures go to ``out_dir/figures/``.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator
from PIL import Image

from scenetune.analysis import style
from scenetune.analysis.best import best_trials
from scenetune.analysis.experiment import Experiment
from scenetune.analysis.section import Section
from scenetune.core import storage
from scenetune.core.layout import SAMPLES_DIR

WIDTH_KEYS = ["gen_filters", "disc_filters", "latent_dim", "image_size", "gen_learning_rate",
              "disc_learning_rate", "batch_size", "d_steps", "grayscale", "conditional"]
METRIC_KEYS = ["fid", "kid", "diversity", "collapsed", "d_acc_real", "d_acc_fake"]


def _samples_uri(exp: Experiment, trial_id: str, name: str) -> str:
    trial_dir = exp.trials.set_index("trial_id").loc[trial_id, "trial_dir"]
    return storage.join(exp.uri, trial_dir, SAMPLES_DIR, name)


def _read_image(uri: str) -> Image.Image | None:
    return Image.open(io.BytesIO(storage.read_bytes(uri))) if storage.exists(uri) else None


def _cell(pixels: np.ndarray, layout: dict, i: int) -> np.ndarray:
    """Cell ``i`` of a grid written by ``scenetune.trainables.gan.samples`` (layout from its grid.json)."""
    size, pad, cols = layout["cell"], layout["pad"], layout["cols"]
    top, left = pad + (i // cols) * (size + pad), pad + (i % cols) * (size + pad)
    return pixels[top:top + size, left:left + size]


def _epoch_strip(exp: Experiment, trial_id: str, epochs: list[int], cells: int) -> tuple[np.ndarray, list[int]]:
    """The first ``cells`` grid cells of each epoch's grid, one row an epoch."""
    layout = json.loads(storage.read_text(_samples_uri(exp, trial_id, "grid.json")))
    rows, shown = [], []
    for epoch in epochs:
        grid = _read_image(_samples_uri(exp, trial_id, f"epoch_{epoch:04d}.png"))
        if grid is None:  # an epoch whose files did not reach storage
            continue
        pixels = np.asarray(grid.convert("RGB"))
        row = [np.pad(_cell(pixels, layout, i), ((1, 1), (1, 1), (0, 0)), constant_values=255)
               for i in range(min(cells, layout["count"]))]
        rows.append(np.concatenate(row, axis=1))
        shown.append(epoch)
    return (np.concatenate(rows, axis=0) if rows else np.zeros((0, 0, 3), np.uint8)), shown


def _pick_epochs(last: int, count: int) -> list[int]:
    return sorted({int(round(e)) for e in np.linspace(1, last, min(count, last))})


def _curves(exp: Experiment, path: str) -> str:
    fig, axes = style.figure(11, 4, ncols=2)
    epochs = exp.epochs.sort_values("training_iteration")
    order = exp.trials.sort_values(f"last_{exp.metric}" if f"last_{exp.metric}" in exp.trials else "trial_id")
    for i, trial_id in enumerate(order["trial_id"]):
        rows = epochs[epochs["trial_id"] == trial_id]
        if rows.empty:
            continue
        color, marker = style.PALETTE[i % len(style.PALETTE)], style.MARKERS[i % len(style.MARKERS)]
        collapsed = (rows["collapsed"].fillna(False).astype(bool) if "collapsed" in rows
                     else pd.Series(False, index=rows.index))
        for ax, metric in zip(axes[0], ("fid", "diversity")):
            ax.plot(rows["training_iteration"], rows[metric], color=color, marker=marker, markersize=4,
                    label=trial_id if i < 8 else None)
            ax.plot(rows.loc[collapsed, "training_iteration"], rows.loc[collapsed, metric], "x", color="#D55E00",
                    markersize=9, label="collapsed" if i == 0 else None)
    for ax in axes[0]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].set(xlabel="epoch", ylabel="FID (lower is better)", title="FID by epoch")
    for threshold in exp.resolved_values("collapse_diversity"):  # what the trials ran with
        axes[0][1].axhline(threshold, color="#000000", linestyle="--", linewidth=1,
                           label=f"collapse threshold ({threshold:g})")
    axes[0][1].set(xlabel="epoch", ylabel="diversity (generated / real spread)", title="Diversity by epoch")
    axes[0][1].legend(loc="best")
    return style.save(fig, path)


def _strip_figure(strip: np.ndarray, epochs: list[int], title: str, path: str) -> str:
    fig, ax = style.figure(8, 1.0 + 0.9 * len(epochs))
    ax.imshow(strip, interpolation="nearest")
    row = strip.shape[0] / len(epochs)
    ax.set_yticks([row * (i + 0.5) for i in range(len(epochs))], [f"epoch {e}" for e in epochs])
    ax.set_xticks([])
    ax.grid(False)
    ax.set_title(title)
    return style.save(fig, path)


def width_tables(exp: Experiment, entries: list[dict]) -> dict[str, pd.DataFrame]:
    rows = []
    for rank, entry in enumerate(entries, 1):
        row = {"rank": rank, "trial": entry["trial_id"], "status": entry["status"], "epoch": entry["epoch"]}
        row.update({k: entry["config"].get(k) for k in WIDTH_KEYS if k in entry["config"]})
        row.update({k: entry["metrics"].get(k) for k in METRIC_KEYS})
        rows.append(row)
    tables = {"gan_best_trials": pd.DataFrame(rows)}
    columns = {"config/gen_filters", "config/disc_filters", f"last_{exp.metric}"}
    if columns <= set(exp.trials.columns):
        agg = "min" if exp.mode == "min" else "max"
        pivot = exp.trials.pivot_table(index="config/gen_filters", columns="config/disc_filters",
                                       values=f"last_{exp.metric}", aggfunc=agg)
        pivot.columns = [f"disc_filters {int(c)}" for c in pivot.columns]
        pivot.index = pivot.index.astype(int)
        pivot.index.name = "gen_filters"
        tables["gan_best_by_width"] = pivot.reset_index()
    return tables


def gan_sections(exp: Experiment, out_dir: str, top: int = 3, strip_epochs: int = 6,
                 strip_cells: int = 8) -> list[Section]:
    fig_dir = os.path.join(out_dir, "figures")
    os.makedirs(fig_dir, exist_ok=True)
    entries = best_trials(exp, top=min(top, exp.trials["trial_id"].nunique()))
    last_epochs = exp.epochs.groupby("trial_id")["training_iteration"].max()

    grids = {}
    for entry in entries:
        trial_id = entry["trial_id"]
        image = _read_image(_samples_uri(exp, trial_id, "latest.png"))
        if image is None:
            continue
        path = os.path.join(fig_dir, f"gan_samples_{trial_id}.png")
        image.save(path)
        m = entry["metrics"]
        grids[f"{trial_id}: epoch {entry['epoch']}, {exp.metric} {entry[exp.metric]:.4g}, "
              f"diversity {m.get('diversity', float('nan')):.2f}"] = path
    strips = {}
    for entry in entries:
        trial_id = entry["trial_id"]
        if not storage.exists(_samples_uri(exp, trial_id, "grid.json")):
            continue
        strip, shown = _epoch_strip(exp, trial_id, _pick_epochs(int(last_epochs[trial_id]), strip_epochs),
                                    strip_cells)
        if shown:
            title = f"{trial_id}: the same latents, epoch by epoch"
            strips[title] = _strip_figure(strip, shown, title, os.path.join(fig_dir, f"gan_epochs_{trial_id}.png"))
    curves = _curves(exp, os.path.join(fig_dir, "gan_fid_diversity.png"))
    thresholds = " or ".join(f"{v:g}" for v in exp.resolved_values("collapse_diversity")) or "the trials' threshold"

    extractors = sorted(exp.epochs["fid_extractor"].dropna().unique()) if "fid_extractor" in exp.epochs else []
    note = (f"FID and KID are measured in the features of `{extractors[0]}`." if len(extractors) == 1 else
            f"Warning: trials measured FID with different extractors ({', '.join(extractors)}); "
            "their values are not comparable." if extractors else "")
    collapsed = int(exp.epochs.groupby("trial_id")["collapsed"].any().sum()) if "collapsed" in exp.epochs else 0
    return [
        Section("GAN: samples of the best trials",
                f"Each grid is drawn from the trial's fixed latent batch (the same latents all training long) at "
                f"its last epoch; trials ranked by `{exp.metric}` ({exp.mode}) at their last epoch.",
                figures=grids),
        Section("GAN: the same latents over the epochs",
                "The first cells of each epoch's grid, top to bottom: how the images for fixed latents evolve. "
                "Columns that turn into one image are the mode collapse of the seed report's Figure 3.",
                figures=strips),
        Section("GAN: FID and diversity by epoch",
                f"Every trial; crosses mark epochs flagged `collapsed` (diversity below {thresholds} or "
                f"a saturated discriminator for several epochs in a row). {collapsed} of "
                f"{exp.trials['trial_id'].nunique()} trials collapsed at some epoch. {note}",
                figures={"FID (left) and diversity (right) of every trial, by epoch": curves}),
        Section("GAN: the best widths",
                f"The best {len(entries)} trials' networks and last-epoch metrics; then the best last-epoch "
                f"`{exp.metric}` for each generator x discriminator base width.",
                tables=width_tables(exp, entries)),
    ]
