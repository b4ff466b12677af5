"""A GAN checkpoint: everything a retried trial needs to continue exactly.

Files in the checkpoint folder:
- ``generator.keras``, ``discriminator.keras``: both networks, architecture and
  weights (BatchNorm statistics included); ``scenetune generate`` loads the
  generator from here alone;
- ``optimizers.npz``: every variable of both Adam optimizers (step counter,
  first and second moments), in the optimizers' own order;
- ``fixed_latents.npy``, ``fixed_labels.npy``: the sample grid's latents and
  labels, the same all training long;
- ``state.json``: epochs done, cumulative fit time, both optimizers' step
  counts (for the record; the state itself is in ``optimizers.npz``), the per-epoch
  diversities and discriminator-saturation flags the collapse detector
  looks back over.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np

from scenetune.core.layout import STATE_FILE as STATE


def save_checkpoint(folder: str, gan, state: dict) -> None:
    gan.generator.save(os.path.join(folder, "generator.keras"))
    gan.discriminator.save(os.path.join(folder, "discriminator.keras"))
    arrays = {}
    for prefix, optimizer in (("g", gan.g_optimizer), ("d", gan.d_optimizer)):
        for i, variable in enumerate(optimizer.variables):
            arrays[f"{prefix}_{i:04d}"] = np.asarray(variable.numpy())
    np.savez(os.path.join(folder, "optimizers.npz"), **arrays)
    np.save(os.path.join(folder, "fixed_latents.npy"), state["latents"])
    np.save(os.path.join(folder, "fixed_labels.npy"), state["labels"])
    with open(os.path.join(folder, STATE), "w") as f:
        json.dump({"epoch": state["epoch"], "train_time_s": state["train_time_s"],
                   "saturated": [bool(s) for s in state["saturated"]],
                   "diversity": [float(d) for d in state["diversity"]],
                   "optimizer_steps": {"generator": int(gan.g_optimizer.iterations.numpy()),
                                       "discriminator": int(gan.d_optimizer.iterations.numpy())}}, f)


def load_checkpoint(folder: str, gan) -> dict:
    """Load the networks' weights and both optimizers' state into ``gan`` (built
    from the same config); returns the trial state with the fixed latents."""
    for name, model in (("generator", gan.generator), ("discriminator", gan.discriminator)):
        saved = keras.models.load_model(os.path.join(folder, f"{name}.keras"), compile=False)
        model.set_weights(saved.get_weights())
    stored = np.load(os.path.join(folder, "optimizers.npz"))
    for prefix, optimizer, model in (("g", gan.g_optimizer, gan.generator),
                                     ("d", gan.d_optimizer, gan.discriminator)):
        optimizer.build(model.trainable_variables)
        keys = sorted(k for k in stored.files if k.startswith(f"{prefix}_"))
        if len(keys) != len(optimizer.variables):  # Keras would skip silently; a resume must not
            raise ValueError(f"checkpoint {folder}: optimizer {prefix} has {len(keys)} saved variables, "
                             f"the model needs {len(optimizer.variables)}")
        for key, variable in zip(keys, optimizer.variables):
            variable.assign(stored[key])
    with open(os.path.join(folder, STATE)) as f:
        state = json.load(f)
    state["latents"] = np.load(os.path.join(folder, "fixed_latents.npy"))
    state["labels"] = np.load(os.path.join(folder, "fixed_labels.npy"))
    return state
