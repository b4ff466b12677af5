"""`storage: gs://bucket/prefix` (README, docs/spec.md): a sweep writes its
experiment to Google Cloud Storage, and `load_experiment` and `scenetune
best` read it back from there. Against gcp-storage-emulator (PyPI) on
loopback. pyarrow's GcsFileSystem, which scenetune's storage layer and Ray
Tune both reach through ``FileSystem.from_uri``, goes to the endpoint in
``CLOUD_STORAGE_EMULATOR_ENDPOINT`` (google-cloud-cpp's variable), but still
fetches an OAuth token first: ``GOOGLE_APPLICATION_CREDENTIALS`` names a
made-up user whose token URI is a loopback server that hands out a dummy
token, which the emulator ignores. The driver is a ``scenetune`` process
given that environment, as a user's shell would; this process gets it too.

One gap of the emulator is filled here: real GCS lists, with
``includeTrailingDelimiter=true``, the folder marker objects (``name/``)
that pyarrow writes for each folder among the items of a delimited listing
(objects.list in the GCS JSON API), and pyarrow's one-level listing
(``FileSelector``, not recursive) reads folders only from there; the
emulator (2026.7.19) ignores the parameter and lists them as prefixes only,
so without the fill-in no trial folder would be seen."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import quote
from urllib.request import urlopen

import pytest

from scenetune.analysis import load_experiment
from scenetune.cli import main
from scenetune.core import storage

pytestmark = pytest.mark.slow

SCENETUNE = os.path.join(os.path.dirname(sys.executable), "scenetune")
BUCKET = "scenetune-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DummyToken(BaseHTTPRequestHandler):
    """An OAuth token endpoint that grants any refresh request."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"access_token": "dummy", "expires_in": 3600, "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def listing_folder_markers(apply_list_delimiter):
    """The emulator's delimited listing, also listing the folder marker
    objects one level down among the items, as GCS does with
    includeTrailingDelimiter=true (which pyarrow always sends with a delimiter)."""

    def listing(self, candidates, prefix, delimiter, match_glob):
        objects, prefixes = apply_list_delimiter(self, candidates, prefix, delimiter, match_glob)
        start = len(prefix or "")
        markers = [obj for name, obj in candidates
                   if name[start:].endswith(delimiter) and name[start:].count(delimiter) == 1]
        return objects + markers, prefixes

    return listing


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    """``(bucket_uri, env, port)``: a GCS API on loopback with an empty bucket, and
    the environment that points pyarrow at it (also set in this process)."""
    from gcp_storage_emulator.server import create_server
    from gcp_storage_emulator.storage import Storage

    patch = pytest.MonkeyPatch()
    patch.setattr(Storage, "_apply_list_delimiter", listing_folder_markers(Storage._apply_list_delimiter))
    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    token = HTTPServer(("127.0.0.1", free_port()), DummyToken)
    threading.Thread(target=token.serve_forever, daemon=True).start()
    credentials = tmp_path_factory.mktemp("gcs") / "credentials.json"
    credentials.write_text(json.dumps({"type": "authorized_user", "client_id": "test", "client_secret": "test",
                                       "refresh_token": "test",
                                       "token_uri": f"http://127.0.0.1:{token.server_port}/token"}))
    env = {"CLOUD_STORAGE_EMULATOR_ENDPOINT": f"http://127.0.0.1:{port}",
           "GOOGLE_APPLICATION_CREDENTIALS": str(credentials)}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    yield f"gs://{BUCKET}", env, port
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    token.shutdown()
    server.stop()
    patch.undo()


def test_a_sweep_on_gcs_is_read_back_from_gcs(gcs, make_spec, tmp_path, capsys):
    bucket, env, port = gcs
    spec = make_spec({"name": "on-gcs", "storage": f"{bucket}/runs", "fixed": {"epochs": 1}})
    run = subprocess.run([SCENETUNE, "sweep", spec], env={**os.environ, **env}, cwd=str(tmp_path), check=False,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:]
    uri = f"{bucket}/runs/on-gcs"
    assert f"experiment: {uri}" in run.stdout
    assert not (tmp_path / "results").exists(), "nothing written locally"

    names = {name for name, _ in storage.list_dir(uri)}
    assert {"split.csv", "scenetune_spec.yaml", "data_check.json", "tuner.pkl"} <= names
    exp = load_experiment(uri)
    (trial,) = exp.trials.itertuples()
    assert trial.status == "completed" and trial.epochs == 1
    trial_files = {name for name, _ in storage.list_dir(storage.join(uri, trial.trial_dir))}
    assert {"result.json", "params.json", "val_predictions.csv", "checkpoint_000000"} <= trial_files
    assert storage.exists(storage.join(uri, trial.trial_dir, "checkpoint_000000", "model.keras"))
    marker = quote(f"runs/on-gcs/{trial.trial_dir}/", safe="")  # what a one-level listing finds on real GCS
    with urlopen(f"http://127.0.0.1:{port}/storage/v1/b/{BUCKET}/o/{marker}") as response:
        assert json.load(response)["size"] in ("0", 0), "pyarrow wrote the trial folder's marker object"
    assert main(["best", uri, "--format", "json"]) == 0
    best = json.loads(capsys.readouterr().out)["best"][0]
    assert best["trial_id"] == trial.trial_id and best["val_accuracy"] == trial.last_val_accuracy
