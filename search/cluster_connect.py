"""Joining Ray: an embedded Ray (no address), the cluster this machine is a
node of (``auto`` or ``HOST:PORT``), or a cluster through Ray Client
(``ray://HOST:PORT``).

A cluster that does not answer is bad input, not a bug: one line naming the
address and what to do, within seconds (Ray Client alone retries for 30 s
and then raises a bare ``ConnectionError``). Where the user has a token
(``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``) and
``RAY_AUTH_MODE`` is unset, Ray Client uses it, as ``ray.init(address="auto")``
and ``ray start`` do; Ray Client alone does not.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from urllib.parse import urlsplit

import ray

from scenetune.core.errors import UserError
from scenetune.trainables.quiet import VERBOSE_ENV  # set in the sweep's processes

WORKER_SETUP_HOOK = "scenetune.trainables.warmup.import_tensorflow"  # trainables/warmup.py (not imported here)
# Ray Client's connection attempts (Ray's defaults: 5 s, then +5 s a try up to
# 30 s, 3 tries): 2 s each, so that a server that refuses us is said so in
# under 10 s. A user's own values win.
CLIENT_TIMEOUTS = {"RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": "2", "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S": "2"}
TOKEN_SETUP_LOGGER = "ray._private.authentication.authentication_token_setup"
CLIENT_SERVER_LOGGER = "ray.util.client.logsclient"  # what Ray Client relays of the server's logs


class ClusterUnreachable(UserError):
    """``--address`` names a cluster that did not answer, or refused us."""


def is_client(address: str | None) -> bool:
    return bool(address) and address.startswith("ray://")


def connect(address: str | None, verbose: bool = False) -> None:
    """Join a running cluster or start an embedded Ray. Quiet unless
    ``verbose``: Ray's libraries log warnings only in the trial processes,
    which start TensorFlow without its start-up lines
    (:mod:`scenetune.trainables.warmup`), and Ray does not announce its
    token authentication."""
    if ray.is_initialized():
        return
    # The sweep's processes: "1" with -v, else "0" (a trial's own progress lines, such as
    # the image cache's, are then left out)
    env_vars = {"TF_CPP_MIN_LOG_LEVEL": "0" if verbose else "2", VERBOSE_ENV: "1" if verbose else "0"}
    if not verbose:
        logging.getLogger(TOKEN_SETUP_LOGGER).setLevel(logging.ERROR)
    options = dict(configure_logging=True, logging_level="WARNING",
                   logging_config=ray.LoggingConfig(log_level="INFO" if verbose else "WARNING"),
                   runtime_env={"worker_process_setup_hook": WORKER_SETUP_HOOK, "env_vars": env_vars})
    if address is None:
        # "local" starts a fresh embedded Ray even when a `ray start` cluster runs
        # on this machine (ray.init() with no address would join that one).
        ray.init(address="local", include_dashboard=False, **options)
        return
    if is_client(address):
        host, port = client_host_port(address)
        reachable(address, host, port)
        use_token_if_the_user_has_one()
        for key, value in CLIENT_TIMEOUTS.items():
            os.environ.setdefault(key, value)
        # Trial processes' lines (TensorFlow's start-up among them) reach the
        # client only with -v, as on an embedded Ray; so do the client server's
        # own warnings ("SIGTERM handler is not set ..."), which Ray Client logs here.
        options["log_to_driver"] = verbose
        if not verbose:
            logging.getLogger(CLIENT_SERVER_LOGGER).addFilter(lambda record: record.levelno >= logging.ERROR)
    for attempt in (1, 2):
        try:
            with warnings.catch_warnings():  # Ray Client's own hint, which the error line replaces
                warnings.filterwarnings("ignore", message="Ray Client connection timed out")
                ray.init(address=address, **options)
            return
        except ConnectionAbortedError as e:
            # The client server took us but could not start our session (its
            # traceback is the message); once seen under load: try again once.
            if attempt == 2:
                raise ClusterUnreachable(f"--address {address}: the Ray Client server could not start this "
                                         f"session ({last_line(e)}); its log on the head: "
                                         "ray_client_server*.err") from None
        except ConnectionError as e:
            raise ClusterUnreachable(refused(address, e)) from None
        except RuntimeError as e:
            if "version" in str(e).lower():  # Ray Client's check of the server's Python and Ray
                raise ClusterUnreachable(f"--address {address}: {first_line(e)}") from None
            raise


def client_host_port(address: str) -> tuple[str, int]:
    parts = urlsplit(address)
    try:
        port = parts.port or 10001
    except ValueError:
        raise ClusterUnreachable(f"--address {address}: the port is not a number (ray://HOST:PORT)") from None
    if not parts.hostname:
        raise ClusterUnreachable(f"--address {address}: no host (ray://HOST:PORT, e.g. ray://127.0.0.1:10001)")
    return parts.hostname, port


def reachable(address: str, host: str, port: int, timeout: float = 3.0) -> None:
    """Refuse at once an address where nothing listens."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise ClusterUnreachable(
            f"--address {address}: nothing answers at {host}:{port} ({e.strerror or e}); start the head with "
            "`ray start --head --ray-client-server-port PORT`, or check the host and port") from None


def refused(address: str, error: Exception) -> str:
    token = ("the token sent (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) must be the head's"
             if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else
             "a head with token authentication needs its token here: RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH")
    return (f"--address {address}: no Ray Client server accepted the connection ({first_line(error)}); check "
            f"that the port is the head's Ray Client port (10001 unless set), and {token} "
            "(`ray get-auth-token` on the head prints it)")


def use_token_if_the_user_has_one() -> bool:
    """Ray's own rule for ``ray start`` and ``ray.init(address=...)`` (a Ray
    2.60 internal; without it, Ray Client runs as Ray would)."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:
        return False
    return maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def last_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
