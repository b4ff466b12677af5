import os

import pandas as pd
import pytest
from PIL import Image

from scenetune.trainables.data.datasets import (
    DatasetError,
    SplitSpec,
    build_manifest,
    list_images,
    manifest_from_csv,
    manifest_to_csv,
    seed25_counts,
)


def make_tree(root, counts: dict[str, int], layout="mit67"):
    """Tiny real JPEGs in the given layout; returns the list of relative paths."""
    base = os.path.join(root, "Images") if layout == "mit67" else str(root)
    pixel = Image.new("RGB", (4, 4), (90, 120, 30))
    paths = []
    for category, n in counts.items():
        os.makedirs(os.path.join(base, category), exist_ok=True)
        for i in range(n):
            name = f"{category}_{i:04d}.jpg"
            pixel.save(os.path.join(base, category, name))
            paths.append(f"{category}/{name}")
    return paths


@pytest.fixture(scope="module")
def seed25_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("mit67")
    make_tree(root, {row["category"]: row["images"] for row in seed25_counts()})
    return str(root)


def test_seed25_split_matches_the_reports_test_support(seed25_tree):
    manifest = build_manifest(seed25_tree, "mit67", "seed25", SplitSpec(0.6, 0.2, 0.2, seed=42))
    assert len(manifest) == 5805
    test = manifest[manifest["split"] == "test"]
    assert len(test) == 1161
    support = test["label"].value_counts()
    for row in seed25_counts():
        assert abs(support[row["category"]] - row["seed_test_support"]) <= 1, row["category"]
    counts = manifest["split"].value_counts()
    assert counts["val"] == 1161 and counts["train"] == 5805 - 2 * 1161


def test_split_is_deterministic_for_a_seed_and_changes_with_it(seed25_tree):
    a = build_manifest(seed25_tree, "mit67", "seed25", SplitSpec(seed=7))
    b = build_manifest(seed25_tree, "mit67", "seed25", SplitSpec(seed=7))
    c = build_manifest(seed25_tree, "mit67", "seed25", SplitSpec(seed=8))
    pd.testing.assert_frame_equal(a, b)
    assert (a["split"] != c["split"]).any()


def test_official_lists_give_exactly_the_listed_test_files(tmp_path):
    paths = make_tree(tmp_path, {"bar": 30, "gym": 20})
    test_list = paths[:6] + paths[30:34]
    train_list = paths[6:26] + paths[34:50]  # bar 26..29 listed nowhere
    (tmp_path / "TestImages.txt").write_text("\n".join(test_list) + "\n")
    (tmp_path / "TrainImages.txt").write_text("\n".join(train_list) + "\n")
    manifest = build_manifest(str(tmp_path), "mit67", "all", SplitSpec(val=0.25, official=True))
    by_split = manifest.groupby("split")["path"].apply(set)
    assert by_split["test"] == {f"Images/{p}" for p in test_list}
    assert by_split["train"] | by_split["val"] == {f"Images/{p}" for p in train_list}
    assert len(by_split["val"]) == 9  # 25% of the 36 listed train images, stratified
    assert by_split["unlisted"] == {f"Images/{p}" for p in paths[26:30]}


def test_folder_layout_and_category_lists(tmp_path):
    make_tree(tmp_path, {"a": 5, "b": 5, "c": 5}, layout="folder")
    (tmp_path / "a" / ".DS_Store").write_text("x")
    (tmp_path / "a" / "notes.txt").write_text("x")
    images = list_images(str(tmp_path), "folder", ["a", "c"])
    assert sorted(images["label"].unique()) == ["a", "c"]
    assert len(images) == 10 and all(p.endswith(".jpg") for p in images["path"])


@pytest.mark.parametrize("categories, message", [
    (["bar", "kitchen"], "data.categories: not found under"),
    ("seed25", "airport_inside"),
    ("some", "expected 'all', 'seed25' or a list"),
])
def test_missing_categories_are_named(tmp_path, categories, message):
    make_tree(tmp_path, {"bar": 3})
    with pytest.raises(DatasetError, match=message):
        list_images(str(tmp_path), "mit67", categories)


def test_missing_root_and_empty_root(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        list_images(str(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="no Images/ folder"):
        list_images(str(tmp_path))
    os.makedirs(tmp_path / "Images" / "bar")
    with pytest.raises(DatasetError, match="no images under"):
        list_images(str(tmp_path))


def test_manifest_round_trips_through_csv(tmp_path):
    make_tree(tmp_path, {"bar": 10, "gym": 10})
    manifest = build_manifest(str(tmp_path))
    again = manifest_from_csv(manifest_to_csv(manifest))
    pd.testing.assert_frame_equal(again, manifest[["path", "label", "split"]])
