import hashlib
import os

import numpy as np
import pytest
from PIL import Image

from scenetune.trainables.data.synth import SCENES, SynthError, write_synthetic


def digest(root):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            h.update(name.encode())
            h.update(open(os.path.join(dirpath, name), "rb").read())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    for name, seed in [("a", 3), ("b", 3), ("c", 4)]:
        write_synthetic(str(tmp_path / name), classes=4, per_class=3, size=48, seed=seed)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_layout_sizes_and_jpeg(tmp_path):
    labels = write_synthetic(str(tmp_path), classes=5, per_class=2, size=64, seed=0, aspect_jitter=0.2)
    assert labels == list(SCENES)[:5]
    for label in labels:
        files = sorted(os.listdir(tmp_path / "Images" / label))
        assert len(files) == 2
        with Image.open(tmp_path / "Images" / label / files[0]) as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            assert all(51 <= side <= 77 for side in im.size)


def test_classes_differ_in_structure_more_than_within(tmp_path):
    """Mean images of two classes are further apart than two halves of one."""
    write_synthetic(str(tmp_path), classes=2, per_class=40, size=32, seed=0)
    def mean(label, part):
        files = sorted(os.listdir(tmp_path / "Images" / label))[part::2]
        return np.mean([np.asarray(Image.open(tmp_path / "Images" / label / f), np.float32) for f in files], 0)
    a, b = list(SCENES)[:2]
    within = np.abs(mean(a, 0) - mean(a, 1)).mean()
    between = np.abs(mean(a, 0) - mean(b, 0)).mean()
    assert between > 2 * within


def test_refuses_to_overwrite_and_bad_arguments(tmp_path):
    write_synthetic(str(tmp_path), classes=1, per_class=1, size=16)
    with pytest.raises(SynthError, match="already holds files"):
        write_synthetic(str(tmp_path), classes=1, per_class=1, size=16)
    with pytest.raises(SynthError, match="--classes must be between 1 and"):
        write_synthetic(str(tmp_path / "x"), classes=99)
