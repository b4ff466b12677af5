"""The real `ray up` / `ray exec` / `ray down` cycle with cluster-local.yaml
against this machine over SSH on loopback, then a sweep submitted to the
cluster it started, read back with `scenetune best`.

Set-up (done here, idempotently): Debian's openssh-server and rsync, a key
made for the test and authorized for root, and one sshd per "machine" (head
and worker, each on its own loopback address, port 22), each in a PID
namespace of its own. That is what makes the cycle safe on a shared machine:
the config's `ray stop` (and the one `ray down` runs) can only see the Ray
processes of its own "machine", never another helper's Ray. In a mount
namespace of their own, the machines' /root is a folder of the test: Ray's
bootstrap files and key, the project copy, the dataset copy, the .bashrc the
setup commands edit and the Ray token live there, never in the real /root.

The config is cluster-local.yaml with only what a different site would change:
addresses, SSH user and key, free ports and a temp dir (so this cluster does
not collide with other Rays here), the dataset's URI (moto's S3 on loopback)
and the install step (the node image already has the project's environment:
installing TensorFlow with CUDA is out of reach here).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest
import yaml

from scenetune.analysis import load_experiment
from scenetune.cli import main
from scenetune.core import storage
from tests.cli.test_cli import NOISE
from tests.cluster.raycluster import free_port

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
RAY = os.path.join(VENV_BIN, "ray")


def ensure_system_packages() -> None:
    """openssh-server and rsync, installed with apt-get when missing."""
    missing = [pkg for pkg, path in (("openssh-server", "/usr/sbin/sshd"), ("rsync", "/usr/bin/rsync"))
               if not os.path.exists(path)]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"cannot install {' '.join(missing)} with apt-get (needed for `ray up` over SSH):\n"
                        f"{done.stderr[-2000:]}")


def loopback_pair() -> tuple[str, str]:
    """Two loopback addresses whose port 22 is free (head, worker)."""
    for _ in range(50):
        a, b = random.randint(16, 250), random.randint(1, 250)
        ips = (f"127.{a}.{b}.1", f"127.{a}.{b}.2")
        try:
            for ip in ips:
                with socket.socket() as s:
                    s.bind((ip, 22))
            return ips
        except OSError:
            continue
    pytest.fail("no loopback address with a free port 22 for the test's sshd")


class Sshd:
    """sshd for one "machine": its address, port 22, a PID namespace."""

    def __init__(self, name: str, ip: str, folder: str, home: str, authorized_keys: str):
        host_key = os.path.join(folder, f"{name}_host_key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key], check=True)
        self.config = os.path.join(folder, f"sshd_{name}.conf")
        with open(self.config, "w") as f:
            f.write(f"ListenAddress {ip}:22\nHostKey {host_key}\nPidFile {folder}/sshd_{name}.pid\n"
                    f"AuthorizedKeysFile {authorized_keys}\nPermitRootLogin prohibit-password\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                    "MaxStartups 50\nMaxSessions 50\n")
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
        self.log = os.path.join(folder, f"sshd_{name}.log")
        # This machine's /root is the test's home folder (a mount namespace),
        # with the real ~/.pyenv inside it, where the venv's Python lives.
        pyenv = os.path.expanduser("~/.pyenv")
        script = (f"mkdir -p {home}/.pyenv && mount --bind {pyenv} {home}/.pyenv && "
                  f"mount --rbind {home} /root && exec /usr/sbin/sshd -D -e -f {self.config}")
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL", "bash", "-c", script],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex((ip, 22)) == 0:
                    break
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"sshd for {name} did not start:\n{open(self.log).read()}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.kill()  # --kill-child: the namespace, with any Ray left in it, goes too
        self.process.wait(30)


def derive_config(folder: str, name: str, head_ip: str, worker_ip: str, key: str, dataset_uri: str) -> dict:
    """cluster-local.yaml with this site's addresses, key, ports and temp dir."""
    with open(os.path.join(ROOT, "cluster-local.yaml")) as f:
        config = yaml.safe_load(f)
    config["cluster_name"] = name
    config["provider"].update(head_ip=head_ip, worker_ips=[worker_ip])
    config["auth"] = {"ssh_user": "root", "ssh_private_key": key}
    config["min_workers"] = config["max_workers"] = 1
    setup = config["setup_commands"]
    assert "python3.11 -m venv" in setup[0] and "pip install" in setup[1]
    setup[0:2] = [f"ln -sfn {os.path.dirname(VENV_BIN)} ~/scenetune-venv"]
    setup[-1] = setup[-1].replace("s3://my-bucket/datasets/indoor67", dataset_uri)
    port = free_port()
    temp = f"--temp-dir={folder}/ray"
    head_ports = (f"--ray-client-server-port={free_port()} --dashboard-port={free_port()} "
                  f"--node-manager-port={free_port(head_ip)} --object-manager-port={free_port(head_ip)}")
    def agent_ports() -> str:  # each "machine" its own: the agents listen on 0.0.0.0, which the two share
        return (f"--dashboard-agent-listen-port={free_port()} --dashboard-agent-grpc-port={free_port()} "
                f"--runtime-env-agent-port={free_port()} --metrics-export-port={free_port()} {temp}")
    head = config["head_start_ray_commands"]
    assert head[0] == "ray stop" and "--port=6379" in head[1]
    head[1] = head[1].replace("--port=6379", f"--port={port} --node-ip-address={head_ip} {head_ports} {agent_ports()}")
    worker = config["worker_start_ray_commands"]
    assert worker[0] == "ray stop" and "$RAY_HEAD_IP:6379" in worker[1]
    worker[1] = worker[1].replace("$RAY_HEAD_IP:6379", f"$RAY_HEAD_IP:{port} --num-cpus=1 "
                                  f"--node-ip-address={worker_ip} --node-manager-port={free_port(worker_ip)} "
                                  f"--object-manager-port={free_port(worker_ip)} {agent_ports()}")
    return config


@pytest.fixture
def onprem(tmp_path_factory, s3, synth_root):
    """The loopback "machines", the derived config, and `ray down` always."""
    import pyarrow.fs as pafs

    ensure_system_packages()
    bucket, s3_env = s3
    folder = str(tmp_path_factory.mktemp("rayup"))
    home = os.path.join(folder, "home")
    os.makedirs(home)
    key = os.path.join(folder, "id_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    authorized = os.path.join(folder, "authorized_keys")
    shutil.copy(key + ".pub", authorized)
    exports = {**s3_env, "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"}
    with open(os.path.join(home, ".bashrc"), "w") as f:  # the nodes' own shell set-up
        f.writelines(f"export {k}={v}\n" for k, v in exports.items())
    dataset_uri = f"{bucket}/datasets/indoor67"
    s3fs, dataset_path = storage.resolve(dataset_uri)
    pafs.copy_files(synth_root, dataset_path, destination_filesystem=s3fs)

    head_ip, worker_ip = loopback_pair()
    sshds = [Sshd("head", head_ip, folder, home, authorized), Sshd("worker", worker_ip, folder, home, authorized)]
    name = f"st-{uuid.uuid4().hex[:8]}"
    config = derive_config(folder, name, head_ip, worker_ip, key, dataset_uri)
    path = os.path.join(folder, "cluster-local.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    env = {**os.environ, **s3_env}
    yield {"config": path, "home": home, "head_ip": head_ip, "worker_ip": worker_ip, "env": env, "bucket": bucket,
           "folder": folder}
    down = subprocess.run([RAY, "down", "-y", path], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    for sshd in sshds:
        sshd.stop()
    for suffix in ("state", "lock"):  # the local provider's record of this cluster
        for path in (f"/tmp/ray/cluster-{name}.{suffix}",):
            if os.path.exists(path):
                os.remove(path)
    assert down.returncode == 0, f"ray down failed:\n{down.stdout[-3000:]}\n{down.stderr[-3000:]}"


def ray_cli(cluster: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([RAY, *args], cwd=ROOT, env=cluster["env"], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"ray {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


NODES = ("python -c \"import ray, json; ray.init(address='auto', logging_level='ERROR', log_to_driver=False); "
         "print('NODES', json.dumps(sorted(n['NodeManagerAddress'] for n in ray.nodes() if n['Alive'])))\"")


def autoscaler_log(cluster: dict, lines: int = 40) -> str:
    """The tail of the head's autoscaler log (monitor.log), for failure messages."""
    text = ""
    for name in ("monitor.log", "monitor.err", "monitor.out"):
        path = os.path.join(cluster["folder"], "ray", "session_latest", "logs", name)
        try:
            with open(path) as f:
                text += f"--- {name} ---\n" + "".join(f.readlines()[-lines:])
        except OSError:
            text += f"--- no {path} ---\n"
    return text


def alive_nodes(cluster: dict) -> list[str]:
    out = ray_cli(cluster, "exec", cluster["config"], NODES).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("NODES "))[6:])


def test_ray_up_exec_and_down_on_loopback_then_a_sweep_on_that_cluster(onprem, make_spec, capsys):
    config = onprem["config"]
    ray_cli(onprem, "up", "-y", "--no-config-cache", config)

    # The head's autoscaler starts the worker over SSH, as on real machines.
    deadline = time.monotonic() + 300
    while True:
        nodes = alive_nodes(onprem)
        if nodes == sorted([onprem["head_ip"], onprem["worker_ip"]]):
            break
        assert time.monotonic() < deadline, f"the worker never joined: {nodes}\n{autoscaler_log(onprem)}"
        time.sleep(5)
    home = onprem["home"]
    assert os.path.isfile(os.path.join(home, "scenetune", "scenetune", "cli.py")), "the project was file-mounted"
    assert not os.path.exists(os.path.join(home, "scenetune", ".venv")), "rsync_filter kept .venv home"
    assert os.path.isfile(os.path.join(home, "data", "indoor67", ".synced")), "the dataset was synced"

    spec = make_spec({"name": "on-the-cluster", "data": {"root": "~/data/indoor67"},
                      "storage": f"{onprem['bucket']}/rayup", "search": {"num_samples": 2, "max_concurrent": 1},
                      "space": {"learning_rate": {"loguniform": [1.0e-4, 3.0e-3]}}})
    ray_cli(onprem, "rsync-up", config, spec, "~/sweep.yaml")
    # the sweep's own output apart from ray exec's: as quiet as on a laptop
    ray_cli(onprem, "exec", config, "scenetune sweep ~/sweep.yaml --address auto > ~/sweep.log 2>&1")
    with open(os.path.join(home, "sweep.log")) as f:
        output = f.read()
    assert len(output.splitlines()) <= 40, output
    assert {what for what, text in NOISE.items() if text in output} == set(), output
    assert "trials: 2 completed" in output, output

    uri = f"{onprem['bucket']}/rayup/on-the-cluster"
    exp = load_experiment(uri)
    assert len(exp.trials) == 2 and set(exp.trials["status"]) == {"completed"}
    node_ips = {json.loads(line)["node_ip"] for trial in exp.trials["trial_dir"]
                for line in storage.read_text(f"{uri}/{trial}/result.json").splitlines()}
    assert node_ips == {onprem["worker_ip"]}, "trials ran on the worker, the head takes none"
    assert main(["best", uri]) == 0
    assert capsys.readouterr().out.startswith("best 1 by val_accuracy (max, scope last):")
