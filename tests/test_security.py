"""Security: pickled payloads refused, YAML only safe-loaded, a job carries only what it needs.

The cluster token never reaching logs, job metadata or run directories is checked on a real
token-auth cluster in tests/test_cluster.py (it greps them all)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import torch

from awsaa.config import ConfigError, TrainConfig, load
from awsaa.errors import AWSAAError
from awsaa.search.state import SearchState
from awsaa.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
MARKER = Path("/tmp/awsaa-security-test-marker")


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


@pytest.fixture(autouse=True)
def no_marker():
    MARKER.unlink(missing_ok=True)
    yield
    assert not MARKER.exists(), "a payload ran"


@pytest.mark.parametrize("kind", ["train", "shared", "search-state"])
def test_checkpoints_and_controller_state_with_a_pickled_payload_are_refused(tmp_path, kind):
    path = tmp_path / "x.pt"
    torch.save({"format": "awsaa.checkpoint", "version": 1, "kind": kind, "x": Payload()}, path)
    with pytest.raises(AWSAAError, match="refused: it holds pickled objects"):
        load_checkpoint(path, kind)


def test_the_controller_refuses_a_state_file_with_a_payload(tmp_path):
    from awsaa.config import SearchConfig, from_dict

    cfg = from_dict(SearchConfig, {"model": "wrn10_1", "dataset": "fashion_mnist", "loops": 2,
                                   "finetune": {"epochs": 1, "reward_top_k": 1}})
    run = tmp_path / "run"
    SearchState.create(run, cfg, {"name": "r", "pretrained": "-"})
    torch.save({"format": "awsaa.checkpoint", "version": 1, "kind": "search-state", "x": Payload()},
               run / "state.pt")
    with pytest.raises(AWSAAError, match="refused"):
        SearchState.load(run)


def test_yaml_with_python_tags_is_refused_not_run(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(f"model: !!python/object/apply:os.system ['touch {MARKER}']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(TrainConfig, f)


def test_yaml_is_only_ever_safe_loaded():
    """No yaml.unsafe_load / full_load anywhere in the package; yaml.load only with the config's
    loader, a SafeLoader that constructs nothing SafeLoader would not."""
    import yaml

    from awsaa.config import _Loader

    assert issubclass(_Loader, yaml.SafeLoader)
    assert _Loader.yaml_constructors == yaml.SafeLoader.yaml_constructors
    assert _Loader.yaml_multi_constructors == yaml.SafeLoader.yaml_multi_constructors
    offenders = []
    for py in (ROOT / "awsaa").rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                loader = [k.value for k in node.keywords if k.arg == "Loader"]
                ours = (node.func.attr == "load" and len(loader) == 1 and isinstance(loader[0], ast.Name)
                        and loader[0].id == "_Loader" and py == ROOT / "awsaa" / "config" / "yaml_io.py")
                if (isinstance(owner, ast.Name) and owner.id == "yaml" and not ours
                        and node.func.attr not in ("safe_load", "safe_dump", "safe_load_all", "YAMLError")):
                    offenders.append(f"{py.relative_to(ROOT)}:{node.lineno} yaml.{node.func.attr}")
            unsafe = [k for k in getattr(node, "keywords", []) if k.arg == "weights_only"
                      and getattr(k.value, "value", True) is False]
            if unsafe:
                offenders.append(f"{py.relative_to(ROOT)}:{node.lineno} torch.load(weights_only=False)")
    assert offenders == []


def test_a_job_carries_only_its_files_and_the_auth_mode(tmp_path, monkeypatch, capsys):
    """The runtime environment of a submitted job: a working dir with the config and policy
    files named on the command line, RAY_AUTH_MODE, nothing from the user's environment."""
    import ray.job_submission

    from awsaa.cli.train import main

    seen: dict = {}

    class FakeClient:
        def __init__(self, address):
            seen["address"] = address

        def submit_job(self, entrypoint, runtime_env, metadata):
            wd = Path(runtime_env["working_dir"])
            seen.update(entrypoint=entrypoint, runtime_env=runtime_env, metadata=metadata,
                        files=sorted(p.name for p in wd.rglob("*")))
            return "raysubmit_test"

    monkeypatch.setattr(ray.job_submission, "JobSubmissionClient", FakeClient)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-value-123")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "token-value-456")
    policy = tmp_path / "found.json"
    from awsaa import Policy

    Policy.uniform().save(policy)
    assert main(["-c", "configs/train/quick_fmnist.yaml", "--aug", str(policy), "--address", "http://head:8265",
                 "--no-wait"]) == 0
    env = seen["runtime_env"]
    assert set(env) == {"working_dir", "env_vars"}
    assert env["env_vars"] == {"RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token")}
    assert seen["files"] == ["found.json", "quick_fmnist.yaml"]
    assert seen["metadata"] == {"tool": "awsaa-train"}
    everything = repr(seen) + capsys.readouterr().out
    assert "secret-value-123" not in everything and "token-value-456" not in everything
    assert "--address" not in seen["entrypoint"] and "--no-wait" not in seen["entrypoint"]


@pytest.mark.parametrize("tool", ["train", "search"])
def test_a_job_uploads_its_files_whichever_way_the_options_are_spelled(tmp_path, monkeypatch, tool):
    """``--config=x.yaml``, ``--aug=p.json`` and the spaced spellings give the same job: the
    command is rebuilt from the parsed arguments, not by re-scanning argv."""
    import shlex

    import ray.job_submission

    from awsaa import Policy
    from awsaa.cli import search, train

    seen: list[dict] = []

    class FakeClient:
        def __init__(self, address):
            pass

        def submit_job(self, entrypoint, runtime_env, metadata):
            files = sorted(p.name for p in Path(runtime_env["working_dir"]).rglob("*"))
            seen.append({"command": shlex.split(entrypoint), "files": files})
            return "raysubmit_test"

    monkeypatch.setattr(ray.job_submission, "JobSubmissionClient", FakeClient)
    policy = tmp_path / "found.json"
    Policy.uniform().save(policy)
    if tool == "train":
        main, cfg = train.main, "configs/train/quick_fmnist.yaml"
        spellings = [["-c", cfg, "--aug", str(policy), "none", "--seeds", "1", "2"],
                     [f"--config={cfg}", f"--aug={policy}", "--seeds", "1", "2"],
                     ["--config", cfg, "--seeds", "1", "2", f"--aug={policy}"]]
        expected_files = ["found.json", "quick_fmnist.yaml"]
    else:
        main, cfg = search.main, "configs/search/quick_fmnist.yaml"
        spellings = [["-c", cfg, "--loops", "3", "--set", "seed=2"],
                     [f"--config={cfg}", "--loops=3", "--set", "seed=2"]]
        expected_files = ["quick_fmnist.yaml"]
    for argv in spellings:
        assert main([*argv, "--address=http://head:8265", "--no-wait"]) == 0
    for job in seen:
        assert job["files"] == expected_files
        assert "--address" not in " ".join(job["command"]) and "--no-wait" not in job["command"]
        assert str(tmp_path) not in " ".join(job["command"])  # local paths never reach the head
    commands = [job["command"] for job in seen]
    if tool == "train":
        assert commands[0] == ["awsaa-train", "--config", "quick_fmnist.yaml", "--aug", "found.json", "none",
                               "--seeds", "1", "2"]
        assert commands[1] == commands[2] == ["awsaa-train", "--config", "quick_fmnist.yaml", "--aug", "found.json",
                                              "--seeds", "1", "2"]
    else:
        assert commands[0] == commands[1] == ["awsaa-search", "--config=quick_fmnist.yaml", "--loops=3",
                                              "--set", "seed=2"]
