"""``scenetune generate``: images from a GAN experiment's generator.

The trial is the best one by the experiment's metric (its last epoch, as
``scenetune best`` ranks them) or the one ``--trial`` names; its generator is
``generator.keras`` in its newest checkpoint. Writes ``image_0000.png`` ...
and ``images.csv`` (file, trial, epoch, category) into OUT.

Every check on the user's input runs before Keras is imported, so bad input
fails in a fraction of a second and writes nothing.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image

from scenetune.analysis import best_trials, load_experiment
from scenetune.core import registry, storage
from scenetune.core.errors import UserError
from scenetune.trainables.gan.samples import to_uint8

MANIFEST = "images.csv"
CHECKPOINT = re.compile(r"^checkpoint_(\d+)$")


class GenerateError(UserError):
    """Bad input to ``scenetune generate``."""


@dataclass
class Source:
    trial_id: str
    generator_uri: str
    epoch: int
    config: dict


def find_source(experiment: str, trial: str | None = None) -> Source:
    """The trial and the generator file to sample from (no TensorFlow)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # damaged logs: the experiment's own warnings, not ours
        exp = load_experiment(experiment)
    trainable = exp.spec.get("trainable")
    if trainable not in registry.TRAINABLES or "generate" not in registry.TRAINABLES[trainable].commands:
        raise GenerateError(f"{exp.uri}: a {trainable or 'non-scenetune'} experiment, not a GAN (trainable gan)")
    if exp.trials.empty:
        raise GenerateError(f"{exp.uri}: no trials")
    if trial is None:
        trial = best_trials(exp)[0]["trial_id"]
    elif trial not in set(exp.trials["trial_id"]):
        raise GenerateError(f"--trial: no trial {trial!r} in {exp.uri}; trials: "
                            f"{', '.join(sorted(exp.trials['trial_id']))}")
    trial_uri = storage.join(exp.uri, exp.trials.set_index("trial_id").loc[trial, "trial_dir"])
    numbered = sorted((int(m.group(1)), name) for name, is_dir in storage.list_dir(trial_uri)
                      if is_dir and (m := CHECKPOINT.match(name)))
    for _, name in reversed(numbered):
        uri = storage.join(trial_uri, name, "generator.keras")
        if storage.exists(uri):
            epochs = exp.epochs[exp.epochs["trial_id"] == trial]
            return Source(trial, uri, int(epochs["training_iteration"].max()) if not epochs.empty else 0,
                          exp.configs.get(trial, {}))
    raise GenerateError(f"trial {trial}: no checkpoint with a generator under {trial_uri}")


def output_names(n: int) -> list[str]:
    return [f"image_{i:04d}.png" for i in range(n)]


def check_out(out: str, n: int) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise GenerateError(f"--out: {out} is a file, not a folder")
    taken = [name for name in output_names(n) + [MANIFEST] if os.path.exists(os.path.join(out, name))]
    if taken:
        raise GenerateError(f"--out: {out} already holds {taken[0]}" + (f" and {len(taken) - 1} more files"
                            if len(taken) > 1 else "") + " that this would overwrite; choose another folder")


def pick_labels(source: Source, n: int, category: str | None) -> tuple[np.ndarray | None, list[str]]:
    """Class labels for a conditional generator: one class, or cycling through all."""
    config = source.config
    classes = config.get("categories") or config.get("data", {}).get("classes", [])
    if not config.get("conditional"):
        if category is not None:
            raise GenerateError(f"--category: trial {source.trial_id}'s generator is not conditional")
        return None, [""] * n
    if category is not None:
        if category not in classes:
            raise GenerateError(f"--category: {category!r} is not one of trial {source.trial_id}'s classes: "
                                f"{', '.join(classes)}")
        labels = np.full(n, classes.index(category), np.int32)
    else:
        labels = (np.arange(n) % len(classes)).astype(np.int32)
    return labels, [classes[i] for i in labels]


def generate_images(experiment: str, n: int, out: str, trial: str | None = None, seed: int = 0,
                    category: str | None = None) -> tuple[Source, list[str]]:
    """Write ``n`` generated images into ``out``; returns the source trial and the paths."""
    if n < 1:
        raise GenerateError(f"--n: must be at least 1, got {n}")
    check_out(out, n)
    source = find_source(experiment, trial)
    labels, names = pick_labels(source, n, category)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # only now: the checks above need no TensorFlow

    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "generator.keras")
        with open(local, "wb") as f:
            f.write(storage.read_bytes(source.generator_uri))
        generator = keras.models.load_model(local, compile=False)
    latent_dim = int(generator.inputs[0].shape[-1])
    latents = np.random.default_rng(seed).normal(size=(n, latent_dim)).astype(np.float32)
    images = to_uint8(generator.predict([latents, labels] if labels is not None else latents,
                                        batch_size=64, verbose=0))
    os.makedirs(out, exist_ok=True)
    paths = []
    for name, pixels in zip(output_names(n), images):
        paths.append(os.path.join(out, name))
        Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(paths[-1])
    pd.DataFrame({"file": output_names(n), "trial": source.trial_id, "epoch": source.epoch,
                  "category": names}).to_csv(os.path.join(out, MANIFEST), index=False)
    return source, paths
