"""Connecting to Ray: a cluster when an address is given, else an embedded local Ray."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from evolve.errors import EvolveError


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
