"""The experiment folder uploaded by what changed (search/incremental_upload.py),
with Ray Tune 2.60's own syncer (``_FilesystemSyncer``) to a local folder and
to S3 (moto's server on loopback), and in a real Ray Tune sweep.

What shows which files an upload copied: a file changed in storage by hand
after the first upload. Ray copies the whole folder again, so its second
upload puts the staged file back; with the patch, a file that did not change
in the staging folder is not copied again."""

from __future__ import annotations

import copy
import logging
import os
import pickle
import uuid

import pyarrow.fs as pafs
import pytest
from ray import tune
from ray.train._internal.storage import _FilesystemSyncer

from scenetune.search import ray_compat
from scenetune.search.incremental_upload import upload_changed_files
from tests.search.test_ray_compat import installed_once, one_warning_line, ray_s_own

EDITED = b"changed in storage by hand"


@pytest.fixture
def ray_alone(monkeypatch):
    """Ray's own upload command for this test (a sweep earlier in the session patched it)."""
    monkeypatch.setattr(_FilesystemSyncer, "_sync_up_command", ray_s_own(_FilesystemSyncer._sync_up_command))


@pytest.fixture(params=["local", "s3"])
def destination(request, tmp_path):
    """(pyarrow filesystem, path in it) of an empty experiment folder in storage."""
    if request.param == "local":
        return pafs.LocalFileSystem(), str(tmp_path / "storage" / "exp")
    bucket, _ = request.getfixturevalue("s3")
    fs, path = pafs.FileSystem.from_uri(f"{bucket}/incremental/{uuid.uuid4().hex}")
    return fs, path


def write(path, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def read(fs, path: str) -> bytes:
    with fs.open_input_stream(path) as f:
        return f.read()


def upload(syncer, staged, fs, path, exclude=None) -> None:
    assert syncer.sync_up(str(staged), path, exclude=exclude)
    syncer.wait()


STAGED = {"experiment_state.json": b'{"trial_data": []}', "trial_a/result.json": b'{"epoch": 1}\n',
          "trial_b/result.json": b'{"epoch": 1}\n', "trial_b/params.json": b"{}"}


def stage(tmp_path):
    staged = tmp_path / "staged"
    for name, data in STAGED.items():
        write(staged / name, data)
    return staged


@pytest.mark.parametrize("patched", [False, True], ids=["ray-alone", "scenetune"])
def test_a_second_upload_copies_only_what_changed(ray_alone, destination, tmp_path, patched):
    if patched:
        assert upload_changed_files()
    fs, path = destination
    staged, syncer = stage(tmp_path), _FilesystemSyncer(storage_filesystem=fs, sync_period=0)
    upload(syncer, staged, fs, path)
    assert {name: read(fs, f"{path}/{name}") for name in STAGED} == STAGED  # the first upload copies everything

    with fs.open_output_stream(f"{path}/trial_a/result.json") as f:
        f.write(EDITED)
    write(staged / "trial_b/result.json", STAGED["trial_b/result.json"] + b'{"epoch": 2}\n')  # a trial goes on
    write(staged / "trial_c/params.json", b'{"new": 1}')  # a new trial
    upload(syncer, staged, fs, path)

    assert read(fs, f"{path}/trial_b/result.json") == b'{"epoch": 1}\n{"epoch": 2}\n'
    assert read(fs, f"{path}/trial_c/params.json") == b'{"new": 1}'
    assert read(fs, f"{path}/experiment_state.json") == STAGED["experiment_state.json"]
    unchanged = read(fs, f"{path}/trial_a/result.json")
    assert unchanged == (EDITED if patched else STAGED["trial_a/result.json"])


def test_where_most_files_changed_the_upload_is_ray_s_copy_of_the_whole_folder(ray_alone, tmp_path):
    assert upload_changed_files()
    fs, path = pafs.LocalFileSystem(), str(tmp_path / "storage" / "exp")
    staged, syncer = stage(tmp_path), _FilesystemSyncer(storage_filesystem=fs, sync_period=0)
    upload(syncer, staged, fs, path)
    with fs.open_output_stream(f"{path}/trial_a/result.json") as f:
        f.write(EDITED)
    for name in ("experiment_state.json", "trial_b/result.json", "trial_b/params.json"):  # 3 of 4 changed
        write(staged / name, STAGED[name] + b" ")
    upload(syncer, staged, fs, path)
    assert read(fs, f"{path}/trial_a/result.json") == STAGED["trial_a/result.json"]  # copied again with the rest
    assert read(fs, f"{path}/trial_b/params.json") == STAGED["trial_b/params.json"] + b" "
    write(staged / "trial_b/result.json", b"3")  # then one of 4: that one alone
    with fs.open_output_stream(f"{path}/trial_a/result.json") as f:
        f.write(EDITED)
    upload(syncer, staged, fs, path)
    assert read(fs, f"{path}/trial_b/result.json") == b"3" and read(fs, f"{path}/trial_a/result.json") == EDITED


def test_a_syncer_copies_and_pickles_without_what_it_uploaded(ray_alone, tmp_path):
    """Ray deep-copies and pickles the experiment's syncer with every trial's
    storage context, its last upload command included, while that upload runs."""
    assert upload_changed_files()
    fs, path = pafs.LocalFileSystem(), str(tmp_path / "storage" / "exp")
    staged, syncer = stage(tmp_path), _FilesystemSyncer(storage_filesystem=fs, sync_period=0)
    for i in range(2000):
        write(staged / f"trial_{i:04d}" / "result.json", b"{}")
    upload(syncer, staged, fs, path)  # most files new: Ray's own copy of the folder
    for i in range(0, 2000, 4):  # a quarter of them changed: copied one by one
        write(staged / f"trial_{i:04d}" / "result.json", b'{"epoch": 2}')
    assert syncer.sync_up(str(staged), path)
    copies = 0
    while syncer._should_continue_existing_sync():  # the upload thread records what it copies meanwhile
        copy.deepcopy(syncer)
        copies += 1
    syncer.wait()
    assert copies and len(list((tmp_path / "storage" / "exp").glob("trial_[0-9]*/result.json"))) == 2000
    assert (tmp_path / "storage" / "exp" / "trial_0004" / "result.json").read_bytes() == b'{"epoch": 2}'
    pickled = pickle.dumps(syncer)
    assert b"trial_0001" not in pickled and len(pickled) < 4000, len(pickled)


def test_an_upload_with_exclusions_is_ray_s_own(ray_alone, tmp_path):
    assert upload_changed_files()
    fs, path = pafs.LocalFileSystem(), str(tmp_path / "storage" / "exp")
    staged, syncer = stage(tmp_path), _FilesystemSyncer(storage_filesystem=fs, sync_period=0)
    write(staged / "trial_a/checkpoint_000000/model.keras", b"weights")
    upload(syncer, staged, fs, path, exclude=["*/checkpoint_*"])
    with fs.open_output_stream(f"{path}/trial_a/result.json") as f:
        f.write(EDITED)
    upload(syncer, staged, fs, path, exclude=["*/checkpoint_*"])
    assert read(fs, f"{path}/trial_a/result.json") == STAGED["trial_a/result.json"]  # copied again, as Ray does
    assert not os.path.exists(f"{path}/trial_a/checkpoint_000000")


def one_epoch(config):
    tune.report({"score": config["i"]})


class StagingFolder(tune.Callback):
    def on_experiment_end(self, trials, **info):
        self.path = trials[0].storage.experiment_driver_staging_path


@pytest.mark.slow
def test_a_sweep_s_storage_holds_every_staged_file(ray_local, ray_alone, tmp_path):
    """Under real Ray Tune: after the sweep, what the driver staged is in storage, byte for byte."""
    assert upload_changed_files()
    staging = StagingFolder()
    results = tune.Tuner(one_epoch, param_space={"i": tune.grid_search(list(range(4)))},
                         run_config=tune.RunConfig(storage_path=str(tmp_path / "storage"), name="exp", verbose=0,
                                                   callbacks=[staging])).fit()
    assert not results.errors
    stored = tmp_path / "storage" / "exp"
    assert len(list(stored.glob("*/result.json"))) == 4
    staged = [os.path.join(root, name) for root, _, names in os.walk(staging.path) for name in names]
    assert len([p for p in staged if p.endswith("result.json")]) == 4
    for local in staged:
        with open(local, "rb") as f:
            assert (stored / os.path.relpath(local, staging.path)).read_bytes() == f.read(), local


def test_it_is_installed_once(ray_alone):
    installed_once(upload_changed_files, _FilesystemSyncer, "_sync_up_command")


def test_a_part_this_ray_lacks_leaves_it_out_with_one_warning_line(ray_alone, monkeypatch, caplog):
    monkeypatch.delattr(_FilesystemSyncer, "_sync_up_command")
    with caplog.at_level(logging.WARNING, logger=ray_compat.__name__):
        assert upload_changed_files() is False
    one_warning_line(caplog, "_FilesystemSyncer._sync_up_command")
