"""Reading and writing experiment files by URI, local or remote.

A storage location is a local path (``./results``, ``~/runs``), ``file://``,
``s3://bucket/prefix`` or ``gs://bucket/prefix``: the same strings Ray Tune
takes as ``storage_path``, resolved through pyarrow's filesystems as Ray does,
so the driver, the trials and the report read the same files. An S3-compatible
endpoint other than AWS is picked up from ``AWS_ENDPOINT_URL`` by pyarrow's
``FileSystem.from_uri`` (which :func:`resolve` uses; a bare ``S3FileSystem()``
ignores it), as by Ray Tune's storage: tests/search/test_s3_storage.py runs
sweeps against moto's S3 server that way.
"""

from __future__ import annotations

import os
import posixpath
import tempfile

REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", "hdfs://", "abfs://", "abfss://")


def is_remote(uri: str) -> bool:
    return str(uri).startswith(REMOTE_SCHEMES)


def normalize(uri: str) -> str:
    """Remote URIs unchanged; local paths made absolute (Ray needs them so)."""
    uri = str(uri)
    if is_remote(uri):
        return uri.rstrip("/")
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    return os.path.abspath(os.path.expanduser(uri))


def join(uri: str, *parts: str) -> str:
    uri = normalize(uri)
    if is_remote(uri):
        return posixpath.join(uri, *parts)
    return os.path.join(uri, *parts)


def _pafs():
    import pyarrow.fs  # imported on first use: the bottom layer imports nothing heavy
    return pyarrow.fs


def resolve(uri: str):
    """``(pyarrow filesystem, path inside it)`` for a URI or local path."""
    pafs = _pafs()
    uri = normalize(uri)
    if is_remote(uri):
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), uri


def exists(uri: str) -> bool:
    pafs = _pafs()
    fs, path = resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_dir(uri: str) -> bool:
    pafs = _pafs()
    fs, path = resolve(uri)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def write_bytes(uri: str, data: bytes) -> None:
    fs, path = resolve(uri)
    fs.create_dir(posixpath.dirname(path) if is_remote(uri) else os.path.dirname(path), recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(data)


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def list_dir(uri: str) -> list[tuple[str, bool]]:
    """``[(name, is_directory)]`` of the entries directly under ``uri``."""
    pafs = _pafs()
    fs, path = resolve(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted((info.base_name, info.type == pafs.FileType.Directory) for info in infos)


def download_dir(uri: str, local_dir: str) -> str:
    """Copy a remote directory to ``local_dir`` (a no-op returning ``uri`` when local)."""
    pafs = _pafs()
    if not is_remote(uri):
        return normalize(uri)
    fs, path = resolve(uri)
    os.makedirs(local_dir, exist_ok=True)  # pyarrow copies files into it but does not create it
    pafs.copy_files(path, local_dir, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    return local_dir


def delete_file(uri: str) -> None:
    fs, path = resolve(uri)
    fs.delete_file(path)


def unwritable_reason(uri: str) -> str | None:
    """Why files cannot be created under ``uri``, or None when they can.
    Nothing is left behind: a local path's nearest existing ancestor gets a
    probe folder, a remote one a probe object, each deleted at once."""
    uri = normalize(uri)
    if is_remote(uri):
        probe = join(uri, f".scenetune-write-probe-{os.getpid()}")
        try:
            write_bytes(probe, b"")
            delete_file(probe)
        except OSError as e:
            return str(e).splitlines()[0] if str(e) else type(e).__name__
        return None
    path = uri
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return "no part of the path exists"
        path = parent
    if not os.path.isdir(path):
        return f"{path} is a file, not a folder"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".scenetune-write-probe-", dir=path))
    except OSError as e:
        return f"{path} is not writable ({e.strerror or e})"
    return None
