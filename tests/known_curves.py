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
    for epoch in range(1, EPOCHS + 1):
        tune.report(curve(config["curve"], epoch))
