"""Issue 17: file names that are not valid UTF-8, and the same file reached
through two paths (symlinked folders, hard links)."""

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scenetune.cli import main
from scenetune.trainables.data.cache import open_cache
from scenetune.trainables.data.datacheck import check_dataset
from scenetune.trainables.data.datasets import (
    SplitSpec,
    build_manifest,
    escape_name,
    list_images,
    manifest_from_csv,
    manifest_to_csv,
    scan_images,
    split_rows,
    unescape_name,
)
from scenetune.trainables.data.decode import load_resized
from tests.bad_images import jpeg_bytes

CAFE = "Images/bar/caf\udce9.jpg"  # b"caf\xe9.jpg" (Latin-1), as os.fsdecode gives it
BROKEN = "Images/bar/bad\udcff.jpg"


def write_bytes_name(path: bytes, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


@pytest.fixture
def latin1_tree(tmp_path):
    """Two categories; bar holds a good JPEG named b"caf\\xe9.jpg" and an empty
    file named b"bad\\xff.jpg", neither valid UTF-8."""
    for label in ("bar", "gym"):
        (tmp_path / "Images" / label).mkdir(parents=True)
        for i in range(4):
            (tmp_path / "Images" / label / f"{label}_{i}.jpg").write_bytes(jpeg_bytes((30 * i, 90, 200)))
    root = os.fsencode(tmp_path)
    write_bytes_name(root + b"/Images/bar/caf\xe9.jpg", jpeg_bytes((10, 200, 10)))
    write_bytes_name(root + b"/Images/bar/bad\xff.jpg", b"")
    return str(tmp_path)


def test_non_utf8_names_are_listed_checked_and_shown_escaped(latin1_tree, capsys):
    assert {CAFE, BROKEN} <= set(list_images(latin1_tree)["path"])
    check = check_dataset(latin1_tree)
    assert check.images == 10 and check.bad_reasons() == {BROKEN: "empty file (0 bytes)"}
    text = check.format_text()
    text.encode("utf-8")  # printable: no lone surrogates
    assert "Images/bar/bad\\xff.jpg: empty file (0 bytes)" in text
    document = json.loads(check.to_json().encode("utf-8"))
    assert [e["path"] for e in document["bad"]] == ["Images/bar/bad\\xff.jpg"]

    assert main(["data", "check", latin1_tree]) == 1  # the CLI: no codec error, the bad file named
    assert "Images/bar/bad\\xff.jpg: empty file" in capsys.readouterr().out
    assert main(["data", "check", latin1_tree, "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["bad"][0]["path"] == "Images/bar/bad\\xff.jpg"


def test_the_manifest_round_trips_non_utf8_names_and_trials_open_them(latin1_tree, tmp_path_factory):
    check = check_dataset(latin1_tree)
    manifest = build_manifest(latin1_tree, split=SplitSpec(0.5, 0.25, 0.25), bad=check.bad_reasons())
    text = manifest_to_csv(manifest)
    text.encode("utf-8")  # storage.write_text encodes strictly
    assert "Images/bar/caf\\xe9.jpg," in text and "Images/bar/bad\\xff.jpg,bar,bad,empty file" in text
    again = manifest_from_csv(text)
    assert list(again["path"]) == list(manifest["path"])
    assert CAFE in set(again.loc[again["split"] != "bad", "path"])

    usable = again[again["split"] != "bad"]
    paths = [os.path.join(latin1_tree, p) for p in usable["path"]]  # as the trial does
    assert load_resized(os.path.join(latin1_tree, CAFE), 16)[8, 8].tolist() == pytest.approx([10, 200, 10], abs=4)
    cache_dir = str(tmp_path_factory.mktemp("cache"))
    cache = open_cache(paths, 16, cache_dir)
    assert not cache.failed and cache.built
    reopened = open_cache(paths, 16, cache_dir)  # index.json read back with the same names
    assert not reopened.built and sorted(reopened.paths) == sorted(paths)
    row = reopened.rows([os.path.join(latin1_tree, CAFE)])[0]
    assert np.abs(reopened.images[row][8, 8].astype(int) - (10, 200, 10)).max() <= 4

    split = again.loc[again["path"] == CAFE, "split"].iloc[0]
    opened, _, rows = split_rows(again, latin1_tree, split, ["bar", "gym"])
    assert os.path.join(latin1_tree, CAFE) in opened and all(os.path.isfile(p) for p in opened)
    assert "Images/bar/caf\\xe9.jpg" in set(rows["path"])  # rows are for reports: valid text
    rows.to_csv(index=False).encode("utf-8")


def test_old_manifests_with_backslashes_read_as_they_were():
    assert unescape_name("Images/a\\b.jpg") == "Images/a\\b.jpg"
    assert manifest_from_csv("path,label,split\nImages/bar/a\\b.jpg,bar,train\n")["path"][0] == "Images/bar/a\\b.jpg"


NAME_CHARS = st.one_of(st.characters(codec=None, exclude_categories=()),
                       st.sampled_from(["\\", "x", "u", "d", "c", "e", "9", "f", "\udce9", "\udc80", "\ud800", "\n",
                                        "\x7f", "é"]))


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.text(NAME_CHARS))
def test_escape_name_is_reversible_printable_text(name):
    escaped = escape_name(name)
    escaped.encode("utf-8")
    assert not any(ord(c) < 0x20 or ord(c) == 0x7f for c in escaped)
    assert unescape_name(escaped) == name
    if "\\" not in name and name.isprintable():
        assert escaped == name  # café stays café


def test_escape_name_shows_bytes_in_hex():
    assert escape_name(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg"
    assert escape_name("a\\b\nc") == "a\\\\b\\x0ac"


@pytest.fixture
def linked_tree(tmp_path):
    """bar (3 images), bar_alias -> bar, gym (a.jpg, a hard link to it,
    sub/s.jpg, again -> sub, loop -> gym itself)."""
    images = tmp_path / "Images"
    (images / "bar").mkdir(parents=True)
    for i in range(3):
        (images / "bar" / f"x{i}.jpg").write_bytes(jpeg_bytes((40 * i, 50, 60)))
    os.symlink("bar", images / "bar_alias")
    (images / "gym" / "sub").mkdir(parents=True)
    (images / "gym" / "a.jpg").write_bytes(jpeg_bytes((1, 2, 3)))
    os.link(images / "gym" / "a.jpg", images / "gym" / "hard.jpg")
    (images / "gym" / "sub" / "s.jpg").write_bytes(jpeg_bytes((4, 5, 6)))
    os.symlink("sub", images / "gym" / "again")
    os.symlink(".", images / "gym" / "loop")
    return str(tmp_path)


def test_a_file_reached_twice_is_counted_once_under_the_path_sorting_first(linked_tree):
    scan = scan_images(linked_tree)
    assert sorted(scan.images["path"]) == ["Images/bar/x0.jpg", "Images/bar/x1.jpg", "Images/bar/x2.jpg",
                                           "Images/gym/a.jpg", "Images/gym/again/s.jpg"]
    assert {(d["path"], d["same_as"]) for d in scan.duplicates} == {
        *((f"Images/bar_alias/x{i}.jpg", f"Images/bar/x{i}.jpg") for i in range(3)),
        ("Images/gym/hard.jpg", "Images/gym/a.jpg"),
        ("Images/gym/sub/s.jpg", "Images/gym/again/s.jpg"),  # "again" sorts before "sub": the link is kept
    }
    assert {"path": "Images/gym/loop/", "reason": "link to a folder that contains it (a loop: not followed)"} \
        in scan.skipped
    manifest = build_manifest(linked_tree, split=SplitSpec(0.6, 0.0, 0.4))
    assert len(manifest) == 5  # each file once
    assert len({os.stat(os.path.join(linked_tree, p)).st_ino for p in manifest["path"]}) == 5


def test_the_check_warns_naming_both_paths(linked_tree, capsys):
    check = check_dataset(linked_tree)
    assert check.images == 5 and len(check.duplicates) == 5 and check.empty_categories == ["bar_alias"]
    assert ("Images/bar_alias/x0.jpg is the same file as Images/bar/x0.jpg: counted once, as Images/bar/x0.jpg"
            in check.warnings())
    assert "5 duplicates (counted once)" in check.summary()
    text = check.format_text()
    assert "the same file reached twice (counted once, as the path sorting first): 5" in text
    assert "  Images/gym/hard.jpg: same file as Images/gym/a.jpg (kept)" in text
    document = json.loads(check.to_json())
    assert {"path": "Images/gym/hard.jpg", "label": "gym", "same_as": "Images/gym/a.jpg",
            "same_as_label": "gym"} in document["duplicates"]
    assert len(document["warnings"]) == 5
    assert main(["data", "check", linked_tree]) == 0
    assert "Images/bar_alias/x1.jpg: same file as Images/bar/x1.jpg (kept)" in capsys.readouterr().out


def test_a_symlinked_category_sorting_first_keeps_the_files(tmp_path):
    """The rule is the sorted order of the paths, not which one is the link."""
    (tmp_path / "Images" / "bar").mkdir(parents=True)
    (tmp_path / "Images" / "bar" / "x.jpg").write_bytes(jpeg_bytes())
    os.symlink("bar", tmp_path / "Images" / "aaa")
    scan = scan_images(str(tmp_path))
    assert list(scan.images["path"]) == ["Images/aaa/x.jpg"] and list(scan.images["label"]) == ["aaa"]
    assert scan.duplicates == [{"path": "Images/bar/x.jpg", "label": "bar", "same_as": "Images/aaa/x.jpg",
                                "same_as_label": "aaa"}]
