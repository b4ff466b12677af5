"""A trainable with known learning curves whose first-rung accuracy ties at
chance (tests/search/test_early_stopping.py): importable by Ray's workers."""

from ray import tune

EPOCHS = 9
# 10 classes: chance is 0.10. At epoch 1 every trial's accuracy is noise around
# chance, the good ones' a little below the bad ones'; their loss is already
# lower (the predictions moved toward the right classes before the argmax did).
BAD = {f"bad{i}": (acc, 0.30 + 0.03 * i) for i, acc in enumerate([0.16, 0.15, 0.14, 0.13, 0.12, 0.12])}
GOOD = {"good1": (0.10, 0.90), "good2": (0.11, 0.92), "good3": (0.10, 0.95)}
ORDER = ["bad0", "bad1", "bad2", "good1", "bad3", "good2", "bad4", "bad5", "good3"]


def curve(name: str, epoch: int) -> dict:
    first, final = {**BAD, **GOOD}[name]
    accuracy = first + (final - first) * (epoch - 1) / (EPOCHS - 1)
    loss = (2.15 if name in GOOD else 2.30) - 1.9 * (accuracy - first)  # lower for the good ones from epoch 1
    return {"val_accuracy": accuracy, "val_loss": loss, "epoch": epoch}


def known_curves(config):
    report_with_checkpoints(curve, config["curve"])


def report_with_checkpoints(curve_of, name: str) -> None:
    """Report ``curve_of(name, epoch)`` for each epoch with a checkpoint
    holding the epoch, resuming after the epoch of ``tune.get_checkpoint()``
    (a trial ASHA held at a rung and resumed, or HyperBand paused)."""
    import os
    import tempfile

    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            start = int(open(os.path.join(folder, "epoch")).read())
    for epoch in range(start + 1, EPOCHS + 1):
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "epoch"), "w") as f:
                f.write(str(epoch))
            tune.report(curve_of(name, epoch), checkpoint=tune.Checkpoint.from_directory(folder))


# Curves for ASHA's held trials (tests/search/test_rung_holds.py): each trial's
# val_accuracy rises linearly from its first epoch to its ninth; val_loss
# mirrors it. Trials run one at a time in this order.
LINES = {"A": (0.20, 0.20), "B": (0.50, 0.90), "C": (0.30, 0.30), "D": (0.45, 0.60), "E": (0.10, 0.10),
         "F": (0.55, 0.80)}


def line(name: str, epoch: int) -> dict:
    first, last = LINES[name]
    accuracy = first + (last - first) * (epoch - 1) / (EPOCHS - 1)
    return {"val_accuracy": accuracy, "val_loss": 2.5 - 2 * accuracy, "epoch": epoch}


def checkpointed_lines(config):
    report_with_checkpoints(line, config["curve"])
