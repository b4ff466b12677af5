"""The data check and the one decode: every kind of file a real image folder
holds, each a generated fixture (tests/bad_images.py)."""

import json
import os
import re

import cv2
import numpy as np
import pytest
from PIL import Image

from scenetune.cli import main
from scenetune.trainables.data.datacheck import DataCheckError, check_dataset, enforce
from scenetune.trainables.data.datasets import (
    DatasetError,
    SplitSpec,
    build_manifest,
    manifest_from_csv,
    manifest_to_csv,
)
from scenetune.trainables.data.decode import UndecodableImage, _fast_jpeg, load_resized, load_rgb
from tests.bad_images import jpeg_bytes, write_hidden, write_kinds

KINDS_DIR = "Images/mixed kinds"  # a category name with a space


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """A mit67 tree: every kind of file in one category, plain JPEGs in a
    category with a non-ASCII name, an empty category, hidden files."""
    root = tmp_path_factory.mktemp("messy")
    kinds = write_kinds(str(root / KINDS_DIR))
    hidden = write_hidden(str(root / KINDS_DIR))
    (root / "Images" / "café").mkdir(parents=True)
    for i in range(4):
        (root / "Images" / "café" / f"tasse_{i}.jpg").write_bytes(jpeg_bytes((40, 90 + i, 200)))
    (root / "Images" / "empty").mkdir()
    (root / "Images" / ".Trashes").mkdir()  # a hidden category folder: not a category
    return str(root), kinds, hidden


@pytest.fixture(scope="module")
def checked(messy):
    root, _, _ = messy
    return check_dataset(root, "mit67")


def test_every_bad_kind_is_listed_with_its_reason(messy, checked):
    _, kinds, _ = messy
    bad = {os.path.basename(e["path"]): e for e in checked.bad}
    expected = {name: k.reason for name, k in kinds.items() if k.reason}
    assert set(bad) == set(expected)
    for name, pattern in expected.items():
        assert re.search(pattern, bad[name]["reason"], re.I), (name, bad[name]["reason"])
        assert bad[name]["path"] == f"{KINDS_DIR}/{name}" and bad[name]["label"] == "mixed kinds"
    assert checked.images == len(kinds) + 4
    assert checked.bad_fraction == pytest.approx(len(expected) / checked.images)


def test_every_decodable_kind_is_kept_and_its_conversion_noted(messy, checked):
    _, kinds, _ = messy
    converted = {os.path.basename(e["path"]): e["notes"] for e in checked.converted}
    for name, kind in kinds.items():
        if kind.reason:
            continue
        notes = converted.get(name, [])
        for pattern in kind.notes:
            assert any(pattern in note for note in notes), (name, notes)
        if not kind.notes:
            assert name not in converted or name == "rgb16.png", (name, notes)


def test_hidden_files_empty_categories_and_odd_names(messy, checked):
    root, _, hidden = messy
    skipped = {os.path.basename(e["path"].rstrip("/")): e["reason"] for e in checked.skipped}
    for name, pattern in hidden.items():
        assert pattern in skipped[name], (name, skipped.get(name))
    assert checked.empty_categories == ["empty"]
    assert checked.categories == ["café", "empty", "mixed kinds"]  # .Trashes is no category
    manifest = build_manifest(root, "mit67", "all", SplitSpec(0.5, 0.25, 0.25), bad=checked.bad_reasons())
    assert "Images/café/tasse_0.jpg" in set(manifest["path"])


@pytest.mark.parametrize("name", ["png_as.jpg", "gif_as.jpg", "bmp_as.jpg", "webp_as.jpg", "cmyk.jpg", "gray.jpg",
                                  "gray16.png", "rgb16.png", "plain.jpg", "big.jpg"])
def test_decodable_kinds_decode_to_the_right_rgb(messy, name):
    root, kinds, _ = messy
    pixels, _ = load_rgb(os.path.join(root, KINDS_DIR, name), min_side=16)
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
    centre = pixels[pixels.shape[0] // 2, pixels.shape[1] // 2].astype(int)
    assert np.abs(centre - kinds[name].color).max() <= 3, (name, centre)


@pytest.mark.parametrize("name", ["png_as.jpg", "gif_as.jpg", "bmp_as.jpg", "webp_as.jpg", "cmyk.jpg", "gray.jpg",
                                  "gray16.png", "rgb16.png", "plain.jpg", "big.jpg", "rotated.jpg"])
def test_the_training_decode_agrees_with_the_full_decode_for_every_kind(messy, name):
    """``load_resized`` (the cache's decode: libjpeg-turbo's fast path for
    plain JPEGs, PIL for the rest) gives the same picture as the full decode."""
    root, _, _ = messy
    path = os.path.join(root, KINDS_DIR, name)
    full, _ = load_rgb(path)
    expected = cv2.resize(full, (24, 24), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(load_resized(path, 24).astype(int) - expected).mean() <= 4, name


def test_only_plain_jpegs_take_the_fast_decode(messy):
    root, _, _ = messy
    fast = {name for name in ("plain.jpg", "gray.jpg", "big.jpg", "cmyk.jpg", "rotated.jpg", "png_as.jpg",
                              "truncated.jpg") if _fast_jpeg(os.path.join(root, KINDS_DIR, name), 24) is not None}
    assert fast == {"plain.jpg", "gray.jpg", "big.jpg"}


def test_alpha_is_composited_on_white_and_exif_rotation_applied(messy):
    root, kinds, _ = messy
    rgba, _ = load_rgb(os.path.join(root, KINDS_DIR, "rgba.png"))
    assert rgba[15, 5].tolist() == [10, 120, 10] and rgba[15, 35].tolist() == [255, 255, 255]
    upright, info = load_rgb(os.path.join(root, KINDS_DIR, "rotated.jpg"))
    assert (info.width, info.height) == (40, 30) and upright.shape == (40, 30, 3)  # stored landscape, shown portrait
    top, bottom = kinds["rotated.jpg"].color
    assert np.abs(upright[5, 15].astype(int) - top).max() <= 6
    assert np.abs(upright[35, 15].astype(int) - bottom).max() <= 6


def test_a_12000x9000_jpeg_decodes_by_dct_scaling_without_tripping_the_bomb_limit(messy):
    root, _, _ = messy
    path = os.path.join(root, KINDS_DIR, "big.jpg")
    assert 12000 * 9000 > Image.MAX_IMAGE_PIXELS  # PIL would warn (and an unscaled decode needs 324 MB)
    pixels, info = load_rgb(path, min_side=224)
    assert (info.width, info.height) == (12000, 9000)
    assert pixels.shape == (1125, 1500, 3)  # decoded at 1/8 scale
    assert load_resized(path, 64).shape == (64, 64, 3)


@pytest.mark.parametrize("name", ["truncated.jpg", "zero.jpg", "page.jpg", "notes.jpg", "garbage.jpg"])
def test_undecodable_files_raise_with_their_reason(messy, name):
    root, kinds, _ = messy
    with pytest.raises(UndecodableImage, match=re.compile(kinds[name].reason, re.I)):
        load_resized(os.path.join(root, KINDS_DIR, name), 32)


def test_bad_files_go_to_the_manifest_with_split_bad_and_a_reason(messy, checked):
    root, _, _ = messy
    manifest = build_manifest(root, "mit67", "all", SplitSpec(0.5, 0.25, 0.25), bad=checked.bad_reasons())
    again = manifest_from_csv(manifest_to_csv(manifest))
    bad = again[again["split"] == "bad"]
    assert dict(zip(bad["path"], bad["reason"])) == checked.bad_reasons()
    usable = again[again["split"] != "bad"]
    assert (usable["reason"] == "").all() and len(usable) == checked.usable
    assert set(usable["split"]) == {"train", "val", "test"}


def test_enforce_refuses_above_the_fraction_naming_files(checked):
    enforce(checked, 0.5)  # 5 of 21: accepted
    with pytest.raises(DataCheckError) as refused:
        enforce(checked, 0.01, shown=2)
    message = str(refused.value)
    assert message.startswith(f"data.max_bad_fraction: 5 of {checked.images} files are bad")
    assert f"{checked.bad[0]['path']} ({checked.bad[0]['reason']})" in message and "and 3 more" in message
    assert "\n" not in message


def test_cli_text_and_json(messy, capsys):
    root, kinds, _ = messy
    assert main(["data", "check", root]) == 1  # exit 1: bad files found
    out = capsys.readouterr().out
    assert "5 bad (left out)" in out and f"{KINDS_DIR}/zero.jpg: empty file (0 bytes)" in out
    assert "empty categories (no usable image): 1" in out
    assert main(["data", "check", root, "--format", "json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["bad_count"] == 5 and document["images"] == len(kinds) + 4
    assert {os.path.basename(e["path"]) for e in document["bad"]} == {n for n, k in kinds.items() if k.reason}


def test_cli_clean_folder_layout_exits_0(tmp_path, capsys):
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "x.jpg").write_bytes(jpeg_bytes())
    assert main(["data", "check", str(tmp_path), "--layout", "folder"]) == 0
    assert "2 images, 0 bad" in capsys.readouterr().out


@pytest.mark.parametrize("setup, args, message", [
    ("missing", [], "does not exist"),
    ("no_images", [], "no images under"),
    ("only_bad", [], "no usable images under"),
    ("tree", ["--categories", "bar,kitchen"], "not found under .*: kitchen"),
    ("tree", ["--categories", "bar,empty"], "no usable images in empty"),
    ("tree", ["--layout", "mit67"], "has no Images/ folder"),
])
def test_cli_bad_input_exits_2_naming_what_is_missing(tmp_path, capsys, setup, args, message):
    root = tmp_path / "data"
    if setup == "no_images":
        (root / "Images" / "bar").mkdir(parents=True)
        (root / "Images" / "bar" / "notes.txt").write_text("x")
    if setup == "only_bad":
        (root / "Images" / "bar").mkdir(parents=True)
        (root / "Images" / "bar" / "zero.jpg").write_bytes(b"")
    if setup == "tree":
        for label in ("bar", "empty"):
            (root / label).mkdir(parents=True)
        (root / "bar" / "x.jpg").write_bytes(jpeg_bytes())
        args = args if "--layout" in args else args + ["--layout", "folder"]
    assert main(["data", "check", str(root), *args]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after any progress lines
    assert last.startswith("scenetune: error: ") and re.search(message, last) and "Traceback" not in err


def test_check_dataset_raises_dataset_error_for_a_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        check_dataset(str(tmp_path / "nope"))
