"""`cluster.yaml` passes Ray's own launcher validation (as `ray up` runs it)."""
from __future__ import annotations

import copy

import pytest
import yaml

from tests.evolve.conftest import REPO


def _load() -> dict[str, object]:
    return dict(yaml.safe_load((REPO / "cluster.yaml").read_text()))


def test_cluster_yaml_passes_rays_validation() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(copy.deepcopy(_load()))
    validate_config(config)
    types = config["available_node_types"]
    assert types["cpu_worker"]["resources"]["CPU"] >= 1 and "GPU" not in types["cpu_worker"]["resources"]
    assert types["gpu_worker"]["resources"]["GPU"] >= 1
    setup = " ".join(config["setup_commands"])
    assert "scripts/setup.sh" in setup and "tmux" in setup  # installs the project and its tools
    assert any("accordion" in c for c in types["gpu_worker"]["worker_setup_commands"])
    assert config["file_mounts"] == {"~/harness-evolve": ".", "~/.ray/auth_token": "~/.ray/auth_token"}
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert sum("RAY_AUTH_MODE=token" in c for c in starts) == 2  # token authentication on every node


def test_rays_validation_would_catch_a_broken_file() -> None:
    from jsonschema import ValidationError
    from ray.autoscaler._private.util import prepare_config, validate_config

    broken = _load()
    broken["available_node_types"]["cpu_worker"]["resources"]["CPU"] = "eight"  # type: ignore[index]
    with pytest.raises(ValidationError):
        validate_config(prepare_config(broken))
