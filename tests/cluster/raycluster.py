"""A real multi-node Ray cluster on this machine, for the fault tests.

Each node is a ``ray start --block`` process (head, then workers joining it
with ``--address``), started inside its own PID and mount namespaces
(``unshare``) so that:

- killing a node kills exactly its processes: the namespace's first process
  is a bash whose one child is ``ray start`` and which ends with it (reaping
  meanwhile, as a machine's init does, the processes orphaned in the node);
  when it ends the kernel ends everything else in the namespace, so a
  lost node leaves nothing behind and no other Ray on this shared machine is
  touched (``ray stop`` would end every Ray process of the machine);
- a worker node can be given its own memory: a memory cgroup (v1) capped at
  ``memory_cap_mb`` and bind-mounted over ``/sys/fs/cgroup/memory``, so the
  node's Ray memory monitor sees that node's usage against that cap (as on a
  machine of its own) and the kernel stops any allocation past the cap.

Each node has a hostname of its own (UTS namespace) and may lack paths that
the others have (``hidden``: an empty tmpfs mounted over them), as separate
machines would. Worker nodes listen on loopback addresses of their own
(127.0.0.2, .3, ...), every port is picked free and the cluster has a temp
dir of its own: it never collides with another helper's Ray. Set
KEEP_RAY_TEST_CLUSTER=1 to keep the temp dir (the nodes' logs) after shutdown.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

RAY = os.path.join(os.path.dirname(sys.executable), "ray")


_PORTS_GIVEN: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` and never given before by this process.

    Nodes bind on addresses of their own (127.0.0.2, ...), where the kernel may hand out a
    number another node's component holds on 127.0.0.1; Ray refuses a node whose components
    share a number, so every number is given once."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port


def own_memory_cgroup() -> str | None:
    """This process's memory cgroup (v1) directory, or None without one."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.strip().split(":", 2)
            if "memory" in controllers.split(","):
                folder = "/sys/fs/cgroup/memory" + path
                return folder if os.path.isdir(folder) else None
    return None


def descendants(root: int) -> dict[int, str]:
    """``{pid: name}`` of the processes below ``root``, from /proc."""
    parents, names = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        parents[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
        names[int(entry)] = name
    found, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found[child] = names[child]
                frontier.append(child)
    return found


@dataclass
class Node:
    name: str
    ip: str
    process: subprocess.Popen
    log_path: str
    hostname: str
    cgroup: str | None = None
    killed: bool = False  # on purpose, by the test
    options: dict | None = None  # add_worker's arguments

    def processes(self) -> dict[int, str]:
        """``{pid: name}`` of every process of this node (its namespace)."""
        return descendants(self.process.pid)

    def raylet(self) -> int | None:
        return next((pid for pid, name in self.processes().items() if name == "raylet"), None)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


class RayTestCluster:
    """``start_head()``, ``add_worker()``..., then ``address`` for drivers;
    ``kill_raylet(node)`` or ``lose_node(node)`` to lose a node; ``shutdown()`` always."""

    def __init__(self, name: str = "st", env: dict | None = None, object_store_mb: int = 80):
        # Short: Ray's Unix socket paths live under the temp dir (108-byte limit).
        self.temp_dir = tempfile.mkdtemp(prefix=f"{name}-", dir="/tmp")
        # Token authentication (Ray 2.60's default) with the machine's token,
        # ~/.ray/auth_token, which every node and driver here reads. RAY_TMPDIR:
        # the cluster's own default temp dir, where `ray start --head` writes the
        # address that `--address auto` reads (not the machine's /tmp/ray). PATH:
        # scenetune is installed on every node, as a cluster's image has it.
        bin_dir = os.path.dirname(sys.executable)
        self.env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "RAY_DEDUP_LOGS": "0", "RAY_AUTH_MODE": "token",
                    "RAY_TMPDIR": self.temp_dir, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
                    **(env or {})}
        self.ray_dir = os.path.join(self.temp_dir, "ray")  # the nodes' --temp-dir
        self.dashboard_port: int | None = None
        self.object_store_bytes = object_store_mb * 1024 * 1024
        self.port = free_port()
        self.nodes: list[Node] = []
        self._next_ip = 2

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_address(self) -> str:
        """The head's dashboard and job server (``ray job submit --address``)."""
        if self.dashboard_port is None:
            raise RuntimeError("the head was started without its dashboard (start_head(dashboard=True))")
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def client_address(self) -> str:
        """The head's Ray Client server (``ray://``)."""
        return f"ray://127.0.0.1:{self.client_port}"

    def _start(self, name: str, ip: str | None, args: list[str], memory_cap_mb: int | None, env: dict,
               hidden: tuple[str, ...] = ()) -> Node:
        cgroup = None
        hostname = re.sub(r"[^a-z0-9-]", "x", f"{os.path.basename(self.temp_dir)}-{name}".lower())
        # Its own hostname (UTS namespace), as a machine of its own has.
        prelude = f"hostname {shlex.quote(hostname)} && "
        for path in hidden:  # what this "machine" does not have on its disk
            prelude += f"mount -t tmpfs -o size=1m none {shlex.quote(path)} && "
        if memory_cap_mb:
            parent = own_memory_cgroup()
            if parent is None:
                raise RuntimeError("memory_cap_mb needs the cgroup v1 memory controller at /sys/fs/cgroup/memory")
            cgroup = os.path.join(parent, f"{os.path.basename(self.temp_dir)}-{name}")
            os.makedirs(cgroup, exist_ok=True)
            with open(os.path.join(cgroup, "memory.limit_in_bytes"), "w") as f:
                f.write(str(memory_cap_mb * 1024 * 1024))
            prelude += (f"echo $$ > {cgroup}/cgroup.procs && "
                        f"mount --bind {cgroup} /sys/fs/cgroup/memory && ")
        bind = ip or "127.0.0.1"
        ports = ["--node-manager-port", str(free_port(bind)), "--object-manager-port", str(free_port(bind)),
                 "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port",
                 str(free_port()), "--runtime-env-agent-port", str(free_port()),
                 "--metrics-export-port", str(free_port())]
        # Each node's files in a temp dir of its own, as on machines of their own (with one, a
        # node unpacking a job's working dir would delete the head's copy, its driver's cwd).
        node_dir = self.ray_dir if name == "head" else os.path.join(self.temp_dir, name)
        command = [RAY, "start", "--block", *(["--node-ip-address", ip] if ip else []), "--temp-dir", node_dir,
                   "--object-store-memory", str(self.object_store_bytes), "--disable-usage-stats",
                   *ports, *args]
        # bash stays the namespace's first process (init), under `ray start`: as init it reaps the
        # processes orphaned there (a job's driver whose shell ended), as a machine's init does
        script = prelude + shlex.join(command) + "; exit $?"
        log_path = os.path.join(self.temp_dir, f"{name}.log")
        log = open(log_path, "w")
        process = subprocess.Popen(
            ["unshare", "--mount", "--uts", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL",
             "bash", "-c", script],
            stdout=log, stderr=subprocess.STDOUT, env={**self.env, **env}, start_new_session=True)
        log.close()
        node = Node(name, ip or "", process, log_path, hostname, cgroup)
        self.nodes.append(node)
        return node

    def start_head(self, num_cpus: int = 0, env: dict | None = None, timeout: float = 90,
                   dashboard: bool = False) -> Node:
        """The head keeps the machine's own address, so that a driver started
        on this machine attaches to it (as on a cluster's head node): with
        ``self.env`` a driver's ``--address auto`` finds it. ``dashboard``:
        with the dashboard and its job server (``dashboard_address``)."""
        self.client_port = free_port()
        self.dashboard_port = free_port() if dashboard else None
        node = self._start("head", None, [
            "--head", "--port", str(self.port), "--num-cpus", str(num_cpus),
            "--ray-client-server-port", str(self.client_port),
            *(["--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port",
               str(self.dashboard_port)] if dashboard else
              ["--include-dashboard", "false", "--dashboard-port", str(free_port())])], None, env or {})
        self.wait_for_nodes(1, timeout)
        if dashboard:
            self.wait_for_job_server(timeout)
        return node

    def wait_for_job_server(self, timeout: float) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.dashboard_address}/api/version", timeout=5):
                    return
            except urllib.error.HTTPError:  # it answers (401 without the token): up
                return
            except OSError:
                time.sleep(1)
        raise TimeoutError(f"the head's job server not up after {timeout}s:\n{self.log_tail(self.nodes[0])}")

    def add_worker(self, num_cpus: int = 1, memory_cap_mb: int | None = None, env: dict | None = None,
                   hidden: tuple[str, ...] = (), timeout: float = 90) -> Node:
        options = dict(num_cpus=num_cpus, memory_cap_mb=memory_cap_mb, env=env or {}, hidden=tuple(hidden))
        ip = f"127.0.0.{self._next_ip}"
        self._next_ip += 1
        node = self._start(f"worker{self._next_ip - 2}", ip, [
            "--address", self.address, "--num-cpus", str(num_cpus)], memory_cap_mb, env or {}, hidden)
        node.options = options
        self.wait_for_nodes(self.alive_count(), timeout)
        return node

    def workers(self) -> list[Node]:
        return [node for node in self.nodes if node.name != "head" and node.alive]

    def ensure_workers(self, count: int, **kwargs) -> list[Node]:
        """Exactly ``count`` alive worker nodes started with ``kwargs``: keeps
        the matching ones (starting a node costs seconds), replaces the rest."""
        wanted = dict(num_cpus=1, memory_cap_mb=None, env={}, hidden=())
        wanted.update(kwargs)
        wanted["hidden"] = tuple(wanted["hidden"])
        keep = [node for node in self.workers() if node.options == wanted][:count]
        for node in self.workers():
            if node not in keep:
                node.killed = True
                node.process.kill()
                node.process.wait(30)
        self.wait_for_nodes(1 + len(keep), 60, exactly=True)
        return keep + [self.add_worker(**kwargs) for _ in range(count - len(keep))]

    def alive_count(self) -> int:
        return sum(node.alive for node in self.nodes)

    def ray_nodes(self) -> list[dict]:
        """The cluster's nodes as the GCS sees them: ``[{ip, alive}]``."""
        from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
        from ray._raylet import GcsClient

        with socket.socket() as s:  # a GcsClient would wait 30 s for a GCS not up yet
            if s.connect_ex(("127.0.0.1", self.port)) != 0:
                return []
        # Ray 2.60 clusters require the machine's token (~/.ray/auth_token), as drivers do.
        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
        try:
            infos = GcsClient(address=self.address).get_all_node_info(timeout=10)
        except Exception:  # the GCS is not up yet
            return []
        return [{"ip": info.node_manager_address, "alive": info.state == 0} for info in infos.values()]

    def wait_for_nodes(self, count: int, timeout: float, exactly: bool = False) -> None:
        """Wait until ``count`` nodes (at least, or ``exactly``) are ALIVE in the GCS."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                if not node.alive and not node.killed:
                    raise RuntimeError(f"Ray node {node.name} exited:\n{self.log_tail(node)}")
            alive = sum(n["alive"] for n in self.ray_nodes())
            if alive == count or (alive > count and not exactly):
                return
            time.sleep(1)
        raise TimeoutError(f"{count} Ray nodes not alive after {timeout}s:\n"
                           + "\n".join(self.log_tail(n) for n in self.nodes))

    def log_tail(self, node: Node, lines: int = 30) -> str:
        try:
            with open(node.log_path) as f:
                return f"--- {node.name} ---\n" + "".join(f.readlines()[-lines:])
        except OSError:
            return f"--- {node.name}: no log ---"

    def kill_raylet(self, node: Node, timeout: float = 60) -> None:
        """SIGKILL the node's raylet (a lost machine): its workers, then the
        whole node, go with it."""
        raylet = node.raylet()
        if raylet is None:
            raise RuntimeError(f"{node.name} has no raylet")
        node.killed = True
        os.kill(raylet, signal.SIGKILL)
        try:
            node.process.wait(timeout)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait(10)

    def lose_node(self, node: Node, timeout: float = 60) -> None:
        """SIGKILL the whole node at once, as a machine that loses its power:
        ``unshare --kill-child`` takes the namespace's init with it, and the
        kernel ends every process of the namespace in the same instant. After
        :meth:`kill_raylet` a trial's worker, which reports to the driver
        directly, may still finish epochs until it notices its raylet is gone."""
        node.killed = True
        node.process.kill()
        node.process.wait(timeout)

    def shutdown(self) -> None:
        for node in reversed(self.nodes):
            if node.alive:
                node.process.kill()  # --kill-child: SIGKILL to the namespace's init, which ends the node
        for node in self.nodes:
            try:
                node.process.wait(30)
            except subprocess.TimeoutExpired:
                pass
            if node.cgroup:
                for _ in range(20):
                    try:
                        os.rmdir(node.cgroup)
                        break
                    except OSError:
                        time.sleep(0.5)
        if not os.environ.get("KEEP_RAY_TEST_CLUSTER"):
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
