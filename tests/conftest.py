import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

# Ray 2.60 turns token auth on for new local clusters; tests never want it.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# Under pytest-xdist (``make test``) the workers share the cores.
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))))

# The fault suite's plan (awsaa/faultplan.py): one path for the session, set before any Ray
# cluster starts so that every Ray process inherits it. No file, no faults: only a test that
# asks for the ``fault_plan`` fixture writes one, and it is removed after that test.
FAULT_PLAN = Path(tempfile.mkdtemp(prefix="awsaa-faults-")) / "plan.json"
os.environ["AWSAA_FAULT_PLAN"] = str(FAULT_PLAN)
atexit.register(shutil.rmtree, FAULT_PLAN.parent, True)


@pytest.fixture
def fault_plan():
    """``fault_plan({...})`` writes this test's fault plan; it and its markers go afterwards."""

    def write(plan: dict) -> Path:
        tmp = FAULT_PLAN.with_suffix(".tmp")
        from awsaa import faultplan

        tmp.write_text(json.dumps({"format": faultplan.FORMAT, **plan}))
        tmp.replace(FAULT_PLAN)
        return FAULT_PLAN

    yield write
    FAULT_PLAN.unlink(missing_ok=True)
    shutil.rmtree(f"{FAULT_PLAN}.fired", ignore_errors=True)

def pytest_configure(config):
    import fault_accounting

    config.pluginmanager.register(fault_accounting, "awsaa-fault-accounting")


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
def photo_crops():
    """64 seeded 32x32 crops of a real colour photograph (matplotlib's sample
    ``grace_hopper.jpg``, which ships with a pinned dependency): real colour statistics and
    edges, where Fashion-MNIST's dark backgrounds hide rounding differences."""
    import matplotlib.cbook
    import numpy as np
    from PIL import Image

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as im:
        arr = np.asarray(im.convert("RGB"))
    g = torch.Generator().manual_seed(0)
    ys = torch.randint(0, arr.shape[0] - 32, (64,), generator=g).tolist()
    xs = torch.randint(0, arr.shape[1] - 32, (64,), generator=g).tolist()
    crops = [arr[y:y + 32, x:x + 32].copy() for y, x in zip(ys, xs, strict=True)]
    return torch.stack([torch.from_numpy(c).permute(2, 0, 1) for c in crops])


@pytest.fixture(scope="session")
def tiny_shared(fmnist):
    """Stage 1 of the tiny search (``helpers.TINY_SEARCH``), trained once in this process: the
    shared weights of the tests that start from them instead of testing stage 1."""
    from helpers import tiny_search

    from awsaa.config import SearchConfig, from_dict
    from awsaa.search.stages import pretrain

    return pretrain(from_dict(SearchConfig, tiny_search()), data=fmnist)


@pytest.fixture(scope="session")
def tiny_pretrained(tiny_shared, tmp_path_factory):
    """The same weights as a stage-1 file (``pretrained=``, ``--pretrained``)."""
    from awsaa.train.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("stage1") / "tiny.pt"
    save_checkpoint(path, tiny_shared)
    return path


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the tests that need it (no dashboard, small object store)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2,
                 logging_level="WARNING")
    yield ray
    ray.shutdown()


class RayNodes:
    """Ray nodes on this machine, each ``ray start --block`` in its own process session with
    its own agent ports (two nodes' agents would collide on Ray's default ports)."""

    def __init__(self, env: dict) -> None:
        import sys
        from pathlib import Path

        self.ray = str(Path(sys.executable).with_name("ray"))
        bin_dir = str(Path(sys.executable).parent)
        self.env = {**env, "PATH": bin_dir + os.pathsep + env.get("PATH", "")}
        self.procs: list = []

    def start(self, *args: str):
        """Start a node; returns ``(process, metrics export port)``."""
        import subprocess

        from helpers import free_port

        metrics = free_port()
        ports = [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
                 f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={metrics}"]
        proc = subprocess.Popen([self.ray, "start", "--block", "--disable-usage-stats", *ports, *args], env=self.env,
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc, metrics

    def kill(self, proc, sig=None) -> None:
        import signal
        import subprocess

        if proc.poll() is None:
            os.killpg(proc.pid, sig or signal.SIGKILL)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        """SIGKILL every node's process group: a test's cluster holds nothing worth a clean stop
        (``ray start --block`` takes 30 s to honour SIGTERM)."""
        for p in self.procs:
            self.kill(p)


@pytest.fixture
def ray_nodes():
    nodes = RayNodes({**os.environ, "RAY_AUTH_MODE": "disabled"})
    yield nodes
    nodes.stop_all()


@pytest.fixture
def own_agent():
    """An agent of a user's own, registered as ``still`` for one test (and unregistered after):
    it never moves from the uniform policy and counts its loops. Defined inside the fixture,
    as in a notebook, so Ray must send the class itself to the controller actor."""
    from awsaa.augment.space import SearchSpace
    from awsaa.policy import Policy
    from awsaa.search import AGENTS, UpdateStats, register_agent

    class Still:
        name = "still"

        def __init__(self, space=None, config=None, seed=0):
            self.space = space or SearchSpace.default()
            self.theta = torch.zeros(self.space.num_ops * (1 + self.space.num_ops), dtype=torch.float64)
            self.loops_done, self.baseline, self.told = 0, None, []

        def policy(self, meta=None):
            k = self.space.num_ops
            return Policy.from_params(self.space, self.theta[:k], self.theta[k:].view(k, k), "softmax", meta)

        def ask(self, m):
            return [self.policy()] * m

        def tell(self, rewards, counts, which=None):
            self.loops_done += 1
            self.baseline = sum(rewards) / len(rewards)
            self.told.append(list(rewards))
            return UpdateStats(self.loops_done, self.baseline, self.baseline, [0.0] * len(rewards), 0, 0.0,
                               float(self.policy().entropy()), 0.0)

        def skip(self):
            self.loops_done += 1

        def params(self):
            return self.theta.clone()

        def set_params(self, flat):
            self.theta = flat.clone()

        def state_dict(self):
            return {"agent": self.name, "theta": self.theta.clone(), "loops_done": self.loops_done,
                    "baseline": self.baseline, "told": self.told}

        def load_state_dict(self, state):
            self.theta, self.loops_done = state["theta"].clone(), state["loops_done"]
            self.baseline, self.told = state["baseline"], state["told"]

    register_agent("still")(Still)
    yield Still
    AGENTS.pop("still", None)
