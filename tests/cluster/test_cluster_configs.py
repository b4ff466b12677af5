"""Every cluster configuration in the repository passes Ray's own validator
(what `ray up` runs first: ``prepare_config`` then ``validate_config``), so a
typo fails CI rather than a launch; broken copies prove the check bites. Then
what cluster.yaml promises: a head that takes no trials, GPU worker types on
demand and spot, the pinned image, the project's GPU extra, the dataset
synced once, an idle timeout, a dashboard on localhost, no credentials."""

from __future__ import annotations

import copy
import os
import re

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKIP_DIRS = {".git", ".venv", "results", "data", "node_modules", "__pycache__"}


def cluster_configs() -> list[str]:
    """Every YAML file in the repository that is a Ray cluster config."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            if name.endswith((".yaml", ".yml")):
                path = os.path.join(folder, name)
                with open(path) as f:
                    data = yaml.safe_load(f)
                if isinstance(data, dict) and "provider" in data and "cluster_name" in data:
                    found.append(os.path.relpath(path, ROOT))
    return sorted(found)


def ray_validate(config: dict) -> dict:
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def load(name: str) -> dict:
    with open(os.path.join(ROOT, name)) as f:
        return yaml.safe_load(f)


def test_the_repository_has_the_aws_and_on_premises_configs():
    assert {"cluster.yaml", "cluster-local.yaml"} <= set(cluster_configs())


@pytest.mark.parametrize("name", cluster_configs())
def test_ray_accepts_the_config(name):
    ray_validate(load(name))


BREAKAGES = {
    "a misspelt top-level key": lambda c: c.update(idle_timeout_minute=5),
    "a wrong type": lambda c: c.update(max_workers="eight"),
    "a misspelt auth key": lambda c: c["auth"].update(ssh_usr="ubuntu"),
    "a command that is not a string": lambda c: c["setup_commands"].append({"pip": "install"}),
}


@pytest.mark.parametrize("name", cluster_configs())
@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_ray_rejects_a_broken_copy(name, breakage):
    config = load(name)
    BREAKAGES[breakage](config)
    # (the local provider trips over a wrong type before its schema check: TypeError)
    with pytest.raises((jsonschema.ValidationError, ValueError, TypeError)):
        ray_validate(config)


def test_ray_rejects_a_node_type_with_a_misspelt_field():
    config = load("cluster.yaml")
    config["available_node_types"]["g5_spot"]["min_worker"] = 1
    with pytest.raises(jsonschema.ValidationError):
        ray_validate(config)


def test_cluster_yaml_head_takes_no_trials_and_gpu_workers_autoscale():
    config = ray_validate(load("cluster.yaml"))
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0, "GPU": 0} and not head["node_config"]["InstanceType"].startswith("g")
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    kinds = {(t["node_config"]["InstanceType"], "InstanceMarketOptions" in t["node_config"]) for t in workers.values()}
    assert kinds == {("g5.xlarge", False), ("g5.xlarge", True), ("g6e.xlarge", False), ("g6e.xlarge", True)}
    for t in workers.values():
        assert t["min_workers"] == 0 and t["max_workers"] >= 1, "GPU nodes come and go with the trials"
        if "InstanceMarketOptions" in t["node_config"]:
            assert t["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert 0 < config["idle_timeout_minutes"] <= 30
    assert config["docker"]["image"] == "rayproject/ray:2.60.0-py311-gpu"


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-local.yaml"])
def test_nodes_get_the_project_with_its_gpu_extra_and_the_dataset_once(name):
    config = load(name)
    mounted = [remote for remote, local in config["file_mounts"].items() if local == "."]
    assert mounted, "the project is file-mounted"
    commands = " ".join(config["setup_commands"])
    assert re.search(r'pip install --quiet -e "[^"]*scenetune\[gpu\]"', commands)
    assert "datasets/indoor67" in commands and "data/indoor67" in commands
    assert 'test -f "$DEST/.synced" ||' in commands, "the dataset is copied once per node"
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start, "the dashboard is reached through `ray dashboard`"


@pytest.mark.parametrize("name", cluster_configs())
def test_no_credentials_in_the_config(name):
    with open(os.path.join(ROOT, name)) as f:
        text = f.read()
    assert not re.search(r"AKIA[0-9A-Z]{16}", text), "an AWS access key id"
    assert not re.search(r"(?i)(secret|password|token)\s*[:=]", text)
    assert "BEGIN" not in text and "PRIVATE KEY" not in text
