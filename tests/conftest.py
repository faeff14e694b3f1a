import os

import pytest
import torch

# Ray 2.60 turns token auth on for new local clusters; tests never want it.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def fmnist():
    """The real Fashion-MNIST (Debian package or ./data)."""
    from awsaa.data import load_dataset

    return load_dataset("fashion_mnist")


@pytest.fixture(scope="session")
def gray_images(fmnist):
    """64 real test images, (64, 1, 28, 28) uint8."""
    return fmnist.test.images[:64].clone()


@pytest.fixture(scope="session")
def rgb_images(fmnist):
    """64 real RGB-like images: three different real test images as the R, G and B planes
    (so the colour ops see genuinely different channels)."""
    x = fmnist.test.images[:, 0]
    return torch.stack([x[64:128], x[128:192], x[192:256].flip(2)], dim=1).contiguous()


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the tests that need it (no dashboard, small object store)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2,
                 logging_level="WARNING")
    yield ray
    ray.shutdown()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head started with ``ray start --head --block`` in its own process session, so that
    teardown stops this cluster alone (``ray stop`` would stop every Ray on the machine).
    Yields ``(gcs_address, metrics_port, env)``."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    port, metrics = free_port(), free_port()
    ray_bin = str(Path(sys.executable).with_name("ray"))
    proc = subprocess.Popen([ray_bin, "start", "--head", "--block", f"--port={port}",
                             f"--metrics-export-port={metrics}", "--num-cpus=2", "--include-dashboard=false",
                             "--disable-usage-stats"],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import socket

    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    time.sleep(2)
    yield f"127.0.0.1:{port}", metrics, env
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
