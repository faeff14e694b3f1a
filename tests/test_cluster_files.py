"""cluster/gpu.yaml and docker/Dockerfile, checked offline: no cloud and no Docker engine here.

The YAML is validated against the schema that ships in the Ray wheel, then cross-checked the
way ``ray up`` would (node types, worker counts) and for what the schema cannot express:
token authentication on every node, nothing but SSH open to the outside, the dashboard on
the head's localhost. The Dockerfile is parsed for its base image, its pins and its COPY
sources."""

from __future__ import annotations

import copy
import json
import re
import shlex
import tomllib
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

ROOT = Path(__file__).resolve().parents[1]
GPU_YAML = ROOT / "cluster" / "gpu.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def schema() -> dict:
    return json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


def cluster_problems(cfg: dict) -> list[str]:
    """What ``ray up`` or our security rules would object to, beyond the schema."""
    problems = []
    types = cfg.get("available_node_types", {})
    head = cfg.get("head_node_type")
    if head not in types:
        problems.append(f"head_node_type {head!r} is not one of available_node_types")
    else:
        if types[head].get("resources", {}).get("awsaa_head") != 1:
            problems.append("the head node type must carry the resource awsaa_head: 1")
        if types[head].get("resources", {}).get("GPU"):
            problems.append("the head must be a CPU node")
    workers = {k: v for k, v in types.items() if k != head}
    if not workers:
        problems.append("no worker node type")
    for name, t in workers.items():
        lo, hi = t.get("min_workers", 0), t.get("max_workers", cfg.get("max_workers", 0))
        if lo > hi:
            problems.append(f"{name}: min_workers {lo} > max_workers {hi}")
        if hi > cfg.get("max_workers", 0):
            problems.append(f"{name}: max_workers {hi} exceeds the cluster's max_workers {cfg.get('max_workers')}")
    if sum(t.get("min_workers", 0) for t in workers.values()) > cfg.get("max_workers", 0):
        problems.append("the node types' min_workers add up to more than the cluster's max_workers")
    if "idle_timeout_minutes" not in cfg:
        problems.append("idle_timeout_minutes is not set: idle GPU nodes would run up costs")
    # security: token auth everywhere, token file on every node, dashboard on localhost, only SSH open
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in cfg.get(key, []) if "ray start" in c]
        if not starts:
            problems.append(f"{key}: no ray start")
        for c in starts:
            if "RAY_AUTH_MODE=token" not in c:
                problems.append(f"{key}: ray start without RAY_AUTH_MODE=token")
    for c in cfg.get("head_start_ray_commands", []):
        if "ray start" in c:
            host = re.search(r"--dashboard-host[= ](\S+)", c)
            if not host or host.group(1) not in ("127.0.0.1", "localhost"):
                problems.append("the dashboard must bind to the head's localhost (--dashboard-host=127.0.0.1)")
    if not any(Path(dst).name == "auth_token" and ".ray" in dst for dst in cfg.get("file_mounts", {})):
        problems.append("file_mounts does not give every node the token (~/.ray/auth_token)")
    for perm in cfg.get("provider", {}).get("security_group", {}).get("IpPermissions", []):
        if (perm.get("FromPort"), perm.get("ToPort")) != (22, 22):
            problems.append(f"the security group opens ports {perm.get('FromPort')}-{perm.get('ToPort')} "
                            f"to the outside; only SSH (22) may be")
    image = cfg.get("docker", {}).get("image", "")
    if not image:
        problems.append("docker.image is not set")
    return problems


@pytest.fixture(scope="module")
def gpu_cfg() -> dict:
    return yaml.safe_load(GPU_YAML.read_text())


def test_gpu_yaml_validates_against_rays_schema(gpu_cfg):
    jsonschema.validate(gpu_cfg, schema())


def test_gpu_yaml_cross_checks(gpu_cfg):
    assert cluster_problems(gpu_cfg) == []
    types = gpu_cfg["available_node_types"]
    markets = {t["node_config"].get("InstanceMarketOptions", {}).get("MarketType", "on-demand")
               for n, t in types.items() if n != gpu_cfg["head_node_type"]}
    assert markets == {"on-demand", "spot"}
    assert gpu_cfg["provider"]["type"] == "aws"


@pytest.mark.parametrize("breakage, complaint", [
    (lambda c: c.update(head_node_type="nope"), "is not one of available_node_types"),
    (lambda c: c["available_node_types"]["head"]["resources"].pop("awsaa_head"), "awsaa_head"),
    (lambda c: c["available_node_types"]["gpu_spot"].update(min_workers=9), "min_workers 9 > max_workers 8"),
    (lambda c: c["available_node_types"]["gpu_spot"].update(max_workers=99), "exceeds the cluster's max_workers"),
    (lambda c: c.pop("idle_timeout_minutes"), "idle_timeout_minutes"),
    (lambda c: c.update(worker_start_ray_commands=["ray start --address=$RAY_HEAD_IP:6379"]),
     "ray start without RAY_AUTH_MODE=token"),
    (lambda c: c.update(head_start_ray_commands=[
        "RAY_AUTH_MODE=token ray start --head --dashboard-host=0.0.0.0"]), "localhost"),
    (lambda c: c.update(file_mounts={}), "does not give every node the token"),
    (lambda c: c["provider"]["security_group"]["IpPermissions"].append(
        {"FromPort": 8265, "ToPort": 8265, "IpProtocol": "tcp", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}),
     "opens ports 8265-8265"),
])
def test_the_cross_checks_catch_each_breakage(gpu_cfg, breakage, complaint):
    broken = copy.deepcopy(gpu_cfg)
    breakage(broken)
    assert any(complaint in p for p in cluster_problems(broken)), cluster_problems(broken)


def test_the_schema_rejects_a_misspelt_key(gpu_cfg):
    broken = copy.deepcopy(gpu_cfg)
    broken["idle_timout_minutes"] = 5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema())


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for d in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^;\s]+)", d.strip())
        if m:
            out[m.group(1).lower()] = m.group(3)
    return out


def test_dockerfile_base_image_is_rays_py311_gpu_at_the_pinned_version():
    base = [rest for word, rest in dockerfile_instructions() if word == "FROM"]
    assert base == [f"rayproject/ray:{pins()['ray']}-py311-gpu"]


def test_dockerfile_installs_exactly_the_pinned_torch_and_torchvision():
    p = pins()
    installed = {}
    for word, rest in dockerfile_instructions():
        if word == "RUN":
            for tok in shlex.split(rest.replace("&&", " ")):
                m = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", tok)
                if m:
                    installed[m.group(1).lower()] = m.group(2)
    assert installed.get("torch") == p["torch"] and installed.get("torchvision") == p["torchvision"]
    assert all(p.get(k) == v for k, v in installed.items()), (installed, p)


def test_every_path_the_dockerfile_copies_exists_and_is_not_dockerignored():
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    copies = [rest for word, rest in dockerfile_instructions() if word in ("COPY", "ADD")]
    assert copies
    for rest in copies:
        args = [a for a in shlex.split(rest) if not a.startswith("--")]
        for src in args[:-1]:
            assert (ROOT / src).exists(), f"COPY {src}: no such path in the repository"
            assert src not in ignored and src.rstrip("/") not in ignored, f"COPY {src} but .dockerignore drops it"
    assert {".git", ".venv", "runs"} <= set(ignored)  # the context stays small and holds no run data
