"""Plain helpers the tests share (fixtures live in conftest.py): the tiny search every search
test starts from and its NAS + AWS twin, a run's history, ports, and what an attacker plants
in a run."""

import copy
import json
import os
import socket
import time
from pathlib import Path

# The tiny search every search test starts from (WRN-10-1 on 400 Fashion-MNIST training and
# 200 validation images, 3 loops of 2 trajectories on 2 workers); each file states only what it
# changes, through tiny_search(**changes).
TINY_SEARCH = {
    "model": "wrn10_1", "dataset": "fashion_mnist", "train_size": 600, "val_size": 200, "cutout": 14,
    "loops": 3, "trajectories": 2, "eval_batch_size": 200,
    "pretrain": {"epochs": 3, "stop_epoch": 2, "batch_size": 64,
                 "optim": {"lr": 0.1, "warmup_epochs": 0, "final_lr": 0.0}},
    "finetune": {"epochs": 2, "batch_size": 64},
    "workers": {"count": 2, "num_cpus": 1},
}


def tiny_search(**changes) -> dict:
    """A fresh copy of TINY_SEARCH with ``changes``; a mapping merges into its section key by key
    (``finetune={"epochs": 1}`` keeps the section's batch size)."""

    def merge(base: dict, more: dict) -> dict:
        out = copy.deepcopy(base)
        for k, v in more.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
        return out

    return merge(TINY_SEARCH, changes)


# the tiny joint search: the supernet on digits (100 images to train on, 100 to validate on),
# 2 architectures x 2 ES policies a loop, a budget that rules out the largest networks
TINY_NAS = tiny_search(
    model="supernet", dataset="digits", train_size=None, val_size=100, cutout=4, crop_padding=2, hflip=False,
    loops=3, trajectories=4, agent="es", eval_batch_size=500,
    nas={"archs": 2, "bn_batches": 2, "max_block_params": 60_000},
    pretrain={"epochs": 3, "stop_epoch": 2, "batch_size": 50},
    finetune={"epochs": 2, "batch_size": 50, "common_random_numbers": True})


def synthetic_latency(image_size: int = 16, channels: int = 1, classes: int = 10):
    """A latency table with made-up, fixed times (an op's parameters / 10,000 ms; ``zero``
    1 us): what a search's latency budget reads, without timing anything."""
    from awsaa.arch import op_params, slots
    from awsaa.latency import LatencyTable

    blocks = tuple({op: (op_params(op, s) / 10_000 if op != "zero" else 0.001) for op in s.choices} for s in slots())
    return LatencyTable("synthetic", 1, image_size, channels, classes, 0.25, blocks)


def history(run: Path) -> list[dict]:
    """A run's history.jsonl, one dict per loop (empty when there is none yet)."""
    f = run / "history.jsonl"
    return [json.loads(x) for x in f.read_text().splitlines()] if f.exists() else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"nothing listens on port {port}")


def plant(kind: str, where, victim) -> None:
    """Put at path ``where`` what an attacker with write access to a run would: a ``symlink``
    or a ``hardlink`` to ``victim``, a ``fifo``, or a link to ``/dev/null`` (``devnull``)."""
    if kind == "symlink":
        where.symlink_to(victim)
    elif kind == "hardlink":
        os.link(victim, where)
    elif kind == "fifo":
        os.mkfifo(where)
    elif kind == "devnull":
        where.symlink_to("/dev/null")
    else:
        raise ValueError(kind)


def tiny_run(run_dir: Path, cfg=None, **changes):
    """A new search run at ``run_dir`` (its state, no stage 1 behind it): the tiny search with
    ``changes``, or ``cfg`` as given. Returns its :class:`~awsaa.search.state.SearchState`."""
    from awsaa.config import SearchConfig, from_dict
    from awsaa.search.state import SearchState

    cfg = cfg if cfg is not None else from_dict(SearchConfig, tiny_search(**changes))
    return SearchState.create(run_dir, cfg, {"name": run_dir.name, "pretrained": "-"})
