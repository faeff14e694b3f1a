"""The cluster path on one machine: a head with the ``awsaa_head`` resource and a node with
logical GPUs, both started with ``ray start``; search and training submitted as Ray jobs.

Marked ``slow``: the default ``make test`` skips it, ``make test-all`` (and CI) runs it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import TINY_NAS, free_port, history, tiny_search, wait_port

from awsaa import faultplan

pytestmark = pytest.mark.slow

TINY = tiny_search(loops=2, workers={"num_gpus": 1})  # only the GPU node can host the workers


def ray_cli(nodes, *args: str) -> str:
    return subprocess.run([nodes.ray, *args], env=nodes.env, capture_output=True, text=True, check=True,
                          timeout=120).stdout


def actors(nodes, gcs: str, class_name: str) -> list[dict]:
    out = ray_cli(nodes, "list", "actors", "--address", gcs, "--filter", f"class_name={class_name}", "--format",
                  "json", "--limit", "1000", "--detail")
    return json.loads(out)


def node_ids(nodes, gcs: str) -> dict[str, dict]:
    out = ray_cli(nodes, "list", "nodes", "--address", gcs, "--format", "json", "--detail")
    return {n["node_id"]: n for n in json.loads(out)}


JOBS_INFO = """
import json, sys
from ray.job_submission import JobSubmissionClient
c = JobSubmissionClient(sys.argv[1])
print(json.dumps({j.submission_id: {"status": str(getattr(j.status, "value", j.status)), "entrypoint": j.entrypoint,
                  "metadata": j.metadata, "runtime_env": j.runtime_env, "message": j.message,
                  "logs": c.get_job_logs(j.submission_id)} for j in c.list_jobs()}, default=str))
"""


def jobs_info(env: dict, address: str) -> dict[str, dict]:
    """Every job of the cluster with its status, metadata, runtime env and logs (in a fresh
    process: this one runs without token auth)."""
    r = subprocess.run([sys.executable, "-c", JOBS_INFO, address], env=env, capture_output=True, text=True,
                       timeout=120, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def cli(tool: str, *args: str, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"awsaa.cli.{tool}", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def submit_search(env: dict, jobs: str, config: Path, storage: Path, name: str, outputs: list[str]) -> str:
    """``awsaa-search --no-wait`` as a job: its id (what it printed goes to ``outputs``)."""
    r = cli("search", "--address", jobs, "-c", str(config), "--storage", str(storage), "--name", name, "--no-wait",
            env=env)
    outputs.append(r.stdout + r.stderr)
    assert r.returncode == 0, r.stderr
    return r.stdout.split("submitted job ")[1].split(":")[0]


def job_status(jobs: str, job_id: str, token: str) -> str:
    """Job ``job_id``'s status from the Jobs REST API, asked here with the token in the header
    (a poll every few seconds; a process importing Ray for each cost a second of CPU)."""
    import urllib.request

    req = urllib.request.Request(f"{jobs}/api/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["status"]


def assert_succeeds(env: dict, jobs: str, job_id: str, deadline: float, late: str) -> None:
    """Job ``job_id`` ends, before ``deadline`` (else ``late``), and succeeds."""
    token = Path(env["RAY_AUTH_TOKEN_PATH"]).read_text()
    while job_status(jobs, job_id, token) not in ("SUCCEEDED", "FAILED", "STOPPED"):
        assert time.time() < deadline, late
        time.sleep(3)
    job = jobs_info(env, jobs)[job_id]
    assert job["status"] == "SUCCEEDED", job["logs"][-3000:]


def controller_gauges(port: int, run: str, deadline: float, need: tuple[str, ...] = ()) -> dict[str, float]:
    """awsaa's ``ray_awsaa_search_*`` gauges of ``run`` as the node's metrics endpoint serves
    them, once loop 1's are there with every gauge in ``need`` (the metrics agent starts a
    little after its node)."""
    import urllib.request

    seen: dict[str, float] = {}
    while time.time() < deadline:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        except OSError:
            text = ""
        for line in text.splitlines():
            if line.startswith("ray_awsaa_search_") and f'run="{run}"' in line:
                seen[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
        if seen.get("ray_awsaa_search_loop", 0) >= 1 and {"ray_awsaa_search_mean_reward", *need} <= set(seen):
            return seen
        time.sleep(1)
    raise AssertionError(f"loop 1's gauges never reached the head's metrics endpoint: {seen}")


def test_search_and_training_as_jobs_on_two_nodes_and_a_lost_node(tmp_path, ray_nodes, fault_plan):
    """On a token-auth cluster, as gpu.yaml makes it: a search job that loses its GPU node (and
    its gauges on the head's metrics endpoint), training jobs, a NAS + AWS search job that loses
    a worker (and its architecture gauges), a failing job; at the end, the token is nowhere to
    be read."""
    import secrets
    import tempfile

    token = secrets.token_hex(32)
    (tmp_path / "token").write_text(token)
    # metrics reported every second (Ray's default: every 10 s), read from the head below
    ray_nodes.env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(tmp_path / "token"),
                         RAY_metrics_report_interval_ms="1000")
    ray_tmp = Path(tempfile.mkdtemp(prefix="awsaa-rt-", dir="/tmp"))  # short: Ray's socket paths must fit
    gcs_port, dash = free_port(), free_port()
    _, head_metrics = ray_nodes.start("--head", f"--port={gcs_port}", "--num-cpus=1", '--resources={"awsaa_head": 1}',
                    "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
                    f"--temp-dir={ray_tmp}")
    wait_port(gcs_port)
    gcs, jobs = f"127.0.0.1:{gcs_port}", f"http://127.0.0.1:{dash}"
    gpu_node, _ = ray_nodes.start(f"--address={gcs}", "--num-cpus=2", "--num-gpus=2")
    wait_port(dash)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    storage = tmp_path / "runs"
    env = ray_nodes.env

    # 1. a search submitted as a job (--no-wait) that loses its GPU node while loop 2 is in
    # flight (a worker holds it there); a fresh node joins; every loop done once
    outputs = []
    fault_plan({"worker": [{"loop": 1, "traj": 0, "at": "start", "do": "hang"}]})
    config.write_text(yaml.safe_dump(dict(TINY, loops=4)))
    job_id = submit_search(env, jobs, config, storage, "b", outputs)
    deadline = time.time() + 600
    while not faultplan.fired("worker-1-0-start") and time.time() < deadline:
        time.sleep(0.5)
    assert len(history(storage / "b")) == 1, "the search did not reach loop 2"
    # loop 1's gauges on the head's Prometheus endpoint (what the dashboard's charts read), from
    # the controller on the head, while loop 2 is held
    gauges = controller_gauges(head_metrics, "b", deadline)
    assert gauges["ray_awsaa_search_loop"] == 1
    assert 0 < gauges["ray_awsaa_search_mean_reward"] <= 100 and 0 < gauges["ray_awsaa_search_baseline"] <= 100
    assert 0 < gauges["ray_awsaa_search_entropy"] <= 7.2
    ray_nodes.kill(gpu_node)
    ray_nodes.start(f"--address={gcs}", "--num-cpus=2", "--num-gpus=2")
    assert_succeeds(env, jobs, job_id, deadline, "the search did not finish after the node was replaced")
    h = history(storage / "b")
    assert [e["loop"] for e in h] == [1, 2, 3, 4]
    for e in h:
        assert e["trajectories"] == 2 and sorted(d["traj"] for d in e["details"]) == [0, 1]
    assert h[1]["details"][0]["node"] != h[0]["details"][0]["node"]  # loop 2 finished on the new node
    assert (storage / "b" / "policy.json").exists()
    # the controller on the head, every fine-tune worker (the lost node's and the new one's) on a GPU node
    nodes = node_ids(ray_nodes, gcs)
    head = next(i for i, n in nodes.items() if n["is_head_node"])
    controllers = actors(ray_nodes, gcs, "_Controller")
    workers = actors(ray_nodes, gcs, "_Worker")
    assert controllers and all(a["node_id"] == head for a in controllers)
    assert workers and all(a["node_id"] != head for a in workers)

    # 2. training submitted as a job (waiting for it), the search's policy file travelling with it
    r = cli("train", "--address", jobs, "-c", "configs/train/quick_fmnist.yaml", "--epochs", "1",
            "--aug", str(storage / "b" / "policy.json"), "--set", "train_size=256", "test_size=200",
            "--storage", str(tmp_path / "train"), env=env)
    outputs.append(r.stdout + r.stderr)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "submitted job raysubmit_" in r.stdout and f"{jobs}/#/jobs/raysubmit_" in r.stdout
    assert "succeeded" in r.stdout and "done       1/1" in r.stdout

    # 2b. the same through Ray's own CLI
    r = subprocess.run([ray_nodes.ray, "job", "submit", "--address", jobs, "--", "awsaa-train", "-c",
                        str(Path("configs/train/quick_fmnist.yaml").resolve()), "--epochs", "1", "--aug", "cutout",
                        "--set", "train_size=256", "test_size=200", "--storage", str(tmp_path / "train2")],
                       env=env, capture_output=True, text=True, timeout=600)
    outputs.append(r.stdout + r.stderr)
    assert r.returncode == 0 and "done       1/1" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
    assert list((tmp_path / "train2").glob("*/summary.json"))

    # 3. a NAS + AWS search as a job on the GPU node's workers: its worker on loop 2's second
    # trajectory hangs; the architecture gauges of loop 1 reach the head; that worker is
    # SIGKILLed and its trajectory runs again; the search ends with its architecture file
    fault_plan({"worker": [{"loop": 1, "traj": 1, "at": "start", "do": "hang"}]})
    config.write_text(yaml.safe_dump({**TINY_NAS, "loops": 2, "workers": TINY["workers"]}))
    nas_job = submit_search(env, jobs, config, storage, "nas", outputs)
    deadline = time.time() + 600
    while not (hung := faultplan.fired("worker-1-1-start")):
        assert time.time() < deadline, "the NAS search did not reach loop 2"
        time.sleep(0.5)
    arch_gauges = ("ray_awsaa_search_arch_entropy", "ray_awsaa_search_arch_block_params")
    gauges = controller_gauges(head_metrics, "nas", deadline, need=arch_gauges)
    loop1 = history(storage / "nas")[0]["nas"]
    assert gauges["ray_awsaa_search_loop"] == 1
    assert gauges["ray_awsaa_search_arch_entropy"] == pytest.approx(loop1["arch_entropy"], rel=1e-6)
    assert gauges["ray_awsaa_search_arch_block_params"] == loop1["result_block_params"] <= 60_000
    os.kill(hung["pid"], signal.SIGKILL)
    assert_succeeds(env, jobs, nas_job, deadline, "the NAS search did not finish after its worker was killed")
    h = history(storage / "nas")
    assert [e["loop"] for e in h] == [1, 2] and all(len(e["nas"]["archs"]) == 2 for e in h)
    assert sorted(d["traj"] for d in h[1]["details"]) == [0, 1, 2, 3]
    assert json.loads((storage / "nas" / "arch.json").read_text())["format"] == "awsaa.arch"

    # 4. a job that fails: one line with the job id, non-zero exit
    bad = dict(TINY, dataroot="/nonexistent")
    config.write_text(yaml.safe_dump(bad))
    r = cli("search", "--address", jobs, "-c", str(config), "--storage", str(storage), "--name", "c", env=env)
    outputs.append(r.stdout + r.stderr)
    assert r.returncode == 1
    assert "error: job raysubmit_" in r.stderr and "failed" in r.stderr and r.stderr.count("\n") == 1
    assert "a fine-tune worker could not start" in r.stderr  # not respawned forever

    # 5. the token is in no output, job log, job metadata or runtime env, run directory or Ray log
    jobs_seen = jobs_info(env, jobs)
    assert len(jobs_seen) >= 3
    outputs += [json.dumps(job) for job in jobs_seen.values()]
    leaks = [i for i, text in enumerate(outputs) if token in text]
    files = [p for p in [*tmp_path.rglob("*"), *ray_tmp.rglob("*")] if p.is_file() and p.name != "token"]
    leaks += [str(p) for p in files if token.encode() in p.read_bytes()]
    assert len(files) > 50 and leaks == []

