"""Connecting to Ray: a cluster when an address is given, else an embedded local Ray.

Joining a cluster is checked before Ray is asked to join it (`check_cluster`), because
`ray.init` reports a wrong address by retrying for minutes and a refused token by twenty
log lines and a last one that blames the network. The check answers within seconds with one
line: nothing listens there, something that is not a Ray cluster does, or the cluster wants
a token. Token authentication follows Ray's own rules (RAY_AUTH_MODE, and the token from
RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token), with one convenience Ray keeps
for `address="auto"` only: when RAY_AUTH_MODE is not set and the cluster asks for a token,
the token found is used.
"""
from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from evolve.errors import EvolveError

CONNECT_TIMEOUT = 10.0  # seconds for the whole check: a TCP connect, then one GCS request
AUTH_MODE = "RAY_AUTH_MODE"
# An HTTP/2 client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS) answers with
# its own SETTINGS frame at once; anything else (the dashboard's HTTP/1, ssh) answers otherwise.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_H2_SETTINGS = 0x04


@dataclass(frozen=True)
class ClusterInfo:
    mode: str  # "embedded" | "cluster" | "attached" (Ray already initialised by the caller)
    address: str | None
    cpus: int
    gpus: int
    nodes: list[str] = field(default_factory=list)


def choose_address(flag: str | None, configured: str | None) -> str | None:
    """`--address` wins over RAY_ADDRESS, which wins over the config's `ray.address`."""
    return flag or os.environ.get("RAY_ADDRESS") or configured or None


def check_cluster(address: str, *, timeout: float = CONNECT_TIMEOUT) -> str:
    """That a Ray cluster answers at `address` and lets this process in; returns how it was
    let in ("no authentication" or "token authentication (token from ...)"). Raises
    EvolveError with one line naming the problem otherwise. May set RAY_AUTH_MODE=token
    for this process (see the module's note)."""
    if address.startswith(("http://", "https://")):
        raise EvolveError(f"{address} is a Ray dashboard address (what `ray job submit` takes); "
                          "--address / RAY_ADDRESS take the cluster's GCS address, host:6379 by default")
    target = _canonical(address)
    host, _, port_text = target.rpartition(":")
    where = f"the Ray cluster at {address}" + (f" ({target})" if target != address else "")
    try:
        port = int(port_text)
        with socket.create_connection((host.strip("[]"), port), timeout=timeout) as sock:
            if not address.startswith("ray://"):  # Ray Client's server speaks gRPC too, but not the GCS
                _expect_grpc(sock, where)
    except ValueError:
        raise EvolveError(f"bad Ray address {address!r}: expected host:port, e.g. 127.0.0.1:6379") from None
    except socket.gaierror:
        raise EvolveError(f"bad Ray address {address!r}: cannot resolve {host}") from None
    except ConnectionRefusedError:
        raise EvolveError(f"no Ray cluster at {address}: nothing listens on {target} (start one with "
                          f"`ray start --head --port {port_text}`, or fix --address / RAY_ADDRESS)") from None
    except TimeoutError:
        raise EvolveError(f"no Ray cluster at {address}: no answer from {target} within {timeout:g}s") from None
    except OSError as exc:
        raise EvolveError(f"cannot reach {where}: {exc.strerror or exc}") from None
    if address.startswith("ray://"):
        return _auth_description()
    error = _ask_gcs(target, timeout)
    if error == "auth" and os.environ.get(AUTH_MODE) is None and _token_source() is not None:
        _enable_token_auth()  # what Ray itself does for address="auto"
        error = _ask_gcs(target, timeout)
    if error == "auth":
        raise EvolveError(_auth_problem(where))
    if error:
        raise EvolveError(f"cannot join {where}: {error}")
    return _auth_description()


@contextmanager
def connect(address: str | None, *, num_cpus: int | None = None) -> Iterator[ClusterInfo]:
    """Join the cluster at `address`, or start an embedded Ray; disconnect afterwards.

    When Ray is already initialised in this process (a test session, a notebook) it is
    used as it is and left running.
    """
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        yield _info("attached", address)
        return
    try:
        if address:
            check_cluster(address)
            ray.init(address=address, log_to_driver=False, configure_logging=False)
            mode = "cluster"
        else:
            # "local" never attaches to a `ray start` cluster that happens to run on this host
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
            mode = "embedded"
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {address}" if address else "an embedded Ray"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EvolveError(f"cannot start or reach {where}: {first}") from None
    try:
        yield _info(mode, address)
    finally:
        ray.shutdown()


def _info(mode: str, address: str | None) -> ClusterInfo:
    import ray

    res = ray.cluster_resources()
    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    return ClusterInfo(mode, address, int(res.get("CPU", 0)), int(res.get("GPU", 0)), nodes)


# --- the check's parts -------------------------------------------------------------------------
def _canonical(address: str) -> str:
    """host:port for `address` ("auto": the cluster `ray start` left on this machine)."""
    if address.startswith("ray://"):
        return address.removeprefix("ray://")
    from ray._private.services import canonicalize_bootstrap_address

    try:
        target = canonicalize_bootstrap_address(address)
    except ConnectionError:
        raise EvolveError(f"--address {address}: no running Ray cluster found on this machine "
                          "(start one with `ray start --head`)") from None
    except ValueError:
        raise EvolveError(f"bad Ray address {address!r}: expected host:port, e.g. 127.0.0.1:6379") from None
    if target is None:  # "local": nothing to join
        raise EvolveError(f"--address {address}: names no cluster to join (leave it out for an embedded Ray)")
    return str(target)


def _expect_grpc(sock: socket.socket, where: str) -> None:
    sock.sendall(_H2_PREFACE)
    head = b""
    while len(head) < 9:
        chunk = sock.recv(9 - len(head))
        if not chunk:
            break
        head += chunk
    if len(head) < 9 or head[3] != _H2_SETTINGS:
        raise EvolveError(f"{where} is no Ray cluster: what answers there does not speak gRPC (the GCS "
                          "port is 6379 unless `ray start --port` said otherwise)")


def _ask_gcs(target: str, timeout: float) -> str | None:
    """None when the GCS at `target` answers this process; "auth" when it refuses its token
    (or the lack of one); else what went wrong. Ray's C++ client logs each refusal on file
    descriptor 2: silenced here, the caller says it in one line."""
    from ray._raylet import GcsClient  # type: ignore[attr-defined]  # compiled; ray's stub omits it

    outcome: list[str | None] = []

    def ask() -> None:
        try:
            GcsClient(address=target).internal_kv_get(b"evolve-check", None, timeout=timeout)
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 - sorted below; anything else is one line
            auth = type(exc).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(exc)
            outcome.append("auth" if auth else (str(exc).strip().splitlines() or [type(exc).__name__])[0])

    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        thread = threading.Thread(target=ask, name="ray-check", daemon=True)
        thread.start()
        thread.join(timeout)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return outcome[0] if outcome else f"its GCS did not answer within {timeout:g}s"


def _token_source() -> str | None:
    """Where Ray would read the token from, in Ray's order; None when there is none."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return path if Path(path).is_file() else None
    default = Path.home() / ".ray" / "auth_token"
    return str(default).replace(str(Path.home()), "~", 1) if default.is_file() else None


def _enable_token_auth() -> None:
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]  # as above

    os.environ[AUTH_MODE] = "token"
    Config.initialize("")  # Ray's config cache reads RAY_AUTH_MODE again
    AuthenticationTokenLoader.instance().reset_cache()


def _auth_description() -> str:
    if os.environ.get(AUTH_MODE, "").lower() == "token":
        return f"token authentication (token from {_token_source() or 'nowhere'})"
    return "no authentication"


def _auth_problem(where: str) -> str:
    mode = os.environ.get(AUTH_MODE)
    source = _token_source()
    fix = ("put the head's token (`ray get-auth-token` on the head) in RAY_AUTH_TOKEN, or in a file named by "
           "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token")
    if mode is not None and mode.lower() != "token":
        return (f"{where} requires token authentication but RAY_AUTH_MODE={mode}: set RAY_AUTH_MODE=token "
                f"(or unset it) and {fix}")
    if source is None:
        return f"{where} requires token authentication and no token was found: {fix}"
    return f"{where} refused the token from {source}: {fix}"
