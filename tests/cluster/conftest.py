"""A multi-node Ray cluster for the module (head started once; each test
sets the worker nodes it needs), and drivers run as `scenetune` processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.cluster.raycluster import RayTestCluster

SCENETUNE = os.path.join(os.path.dirname(sys.executable), "scenetune")

# Lost nodes are noticed in ~3 s instead of ~30 s; the memory monitor looks
# every 100 ms and acts at 75% of a node's memory (its cgroup's cap).
CLUSTER_ENV = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
    "RAY_memory_monitor_refresh_ms": "100",
    "RAY_memory_usage_threshold": "0.75",
}


@pytest.fixture(scope="module")
def cluster(request):
    """The head (no CPU; with its dashboard and job server where the test
    module sets ``HEAD_DASHBOARD = True``); each test adds the worker nodes it needs."""
    with RayTestCluster("stc", env=CLUSTER_ENV) as c:
        c.start_head(dashboard=getattr(request.module, "HEAD_DASHBOARD", False))
        yield c


class Driver:
    """``scenetune sweep SPEC --address CLUSTER`` as a process of its own."""

    def __init__(self, cluster: RayTestCluster, spec_path: str, log_path: str, *extra: str):
        self.log_path = log_path
        with open(log_path, "a") as log:
            self.process = subprocess.Popen([SCENETUNE, "sweep", spec_path, "--address", cluster.address, *extra],
                                            stdout=log, stderr=subprocess.STDOUT, env=cluster.env)

    def wait(self, timeout: float = 600) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the driver ran past {timeout}s:\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        with open(self.log_path) as f:
            return f.read()[-chars:]


def wait_until(condition, timeout: float, what: str, driver: Driver | None = None, every: float = 0.2):
    """Poll ``condition()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if driver is not None and driver.process.poll() is not None:
            raise AssertionError(f"the driver exited ({driver.process.returncode}) before {what}:\n{driver.tail()}")
        time.sleep(every)
    raise AssertionError(f"no {what} after {timeout}s" + (f":\n{driver.tail()}" if driver else ""))
