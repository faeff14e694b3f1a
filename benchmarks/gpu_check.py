"""The GPU check (``make gpu-check``): everything awsaa does only on a GPU, in one run of at
most about 5 minutes, ending in one table.

1. The CUDA parity test of the 36 ops (``tests/test_ops_parity.py``, the CUDA cases): the
   batched ops on the GPU give the CPU's results.
2. One epoch of WRN-40-2 on CIFAR-shaped data (random uint8 images in GPU memory, batch 128,
   SGD), images per second with bf16 autocast and channels_last each on and off.
3. A 2-loop search with two fine-tune workers sharing the GPU (``workers.num_gpus: 0.5``) on
   Fashion-MNIST, loops per minute (needs the data: ``--dataroot``, ``$AWSAA_DATA`` or
   Debian's ``dataset-fashion-mnist``; the row says so when it is missing).
4. The NAS + AWS latency table on the GPU (``awsaa.latency``, CIFAR-shaped images, batch 1
   and 128): the predicted range of a network, and the table's error against 5 whole networks.

On a machine without CUDA it says so in one line and exits 0.

    .venv/bin/python benchmarks/gpu_check.py [--epoch-images 10000] [--dataroot DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def throughput(device: str, bf16: bool, channels_last: bool, images: int = 10_000, batch: int = 128,
               model: str = "wrn40_2") -> float:
    """Images per second of training steps over ``images`` CIFAR-shaped images (one epoch)."""
    from awsaa import models

    torch.manual_seed(0)
    net = models.create(model, num_classes=10, in_channels=3).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    data = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 10, (images,), device=device)
    dev = torch.device(device)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        x = (x.float() / 255 - 0.5).contiguous(memory_format=fmt)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(data[:batch], labels[:batch])  # warm-up: kernels chosen, memory allocated
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    done = 0
    for i in range(0, images - batch + 1, batch):
        step(data[i:i + batch], labels[i:i + batch])
        done += batch
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


def parity() -> tuple[str, str]:
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_ops_parity.py",
                        "-k", "cuda"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    last = (r.stdout.strip().splitlines() or ["no output"])[-1]
    return ("passed" if r.returncode == 0 and "skipped" not in last else "FAILED"), last


def search(dataroot: str | None, loops: int = 2) -> tuple[str, str]:
    """A tiny search with two workers on one GPU; (loops per minute or why not, detail)."""
    from awsaa.data.datasets import ensure_dataset
    from awsaa.errors import AWSAAError

    try:
        root, _ = ensure_dataset("fashion_mnist", dataroot, False)
    except AWSAAError as e:
        return "skipped", f"no Fashion-MNIST here ({str(e)[:80]}...); pass --dataroot"
    cfg = {"model": "wrn10_1", "dataset": "fashion_mnist", "train_size": 6000, "val_size": 2000, "cutout": 14,
           "loops": loops, "trajectories": 4, "agent": "es", "dataroot": root,
           "pretrain": {"epochs": 3, "stop_epoch": 2, "batch_size": 128,
                        "optim": {"lr": 0.1, "warmup_epochs": 0, "final_lr": 0.0}},
           "finetune": {"epochs": 2, "batch_size": 128, "common_random_numbers": True},
           "workers": {"count": 2, "num_gpus": 0.5, "num_cpus": 1}}
    with tempfile.TemporaryDirectory(prefix="awsaa-gpu-check-") as d:
        path = Path(d) / "search.yaml"
        path.write_text(json.dumps(cfg))  # JSON is YAML
        env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
        r = subprocess.run([sys.executable, "-m", "awsaa.cli.search", "-c", str(path), "--storage", d,
                            "--name", "gpu-check"], cwd=ROOT, capture_output=True, text=True, timeout=400, env=env)
        if r.returncode != 0:
            return "FAILED", (r.stderr.strip().splitlines() or ["no output"])[-1][:120]
        walls = [json.loads(line)["wall_seconds"] for line in (Path(d) / "gpu-check" / "history.jsonl").open()]
    return f"{60 * len(walls) / sum(walls):.1f} loops/min", f"{loops} loops x 4 trajectories, 2 workers x 0.5 GPU"


def latency(device: str, batch: int, min_run_time: float = 0.2, image_size: int = 32) -> tuple[str, str]:
    """The latency table's prediction range and its error against whole networks."""
    from awsaa.latency import measure

    t = measure(device, batch_size=batch, image_size=image_size, channels=3, check=5, min_run_time=min_run_time)
    lo, hi = t.span()
    return f"{lo:.3f}-{hi:.3f} ms", f"mean relative error {t.error:.1%} over {len(t.check)} networks"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epoch-images", type=int, default=10_000, help="images in the throughput epoch")
    p.add_argument("--dataroot", default=os.environ.get("AWSAA_DATA"), help="where Fashion-MNIST is")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device on this machine; nothing to check here (run `make gpu-check` on a GPU)")
        return 0
    rows = [("device", torch.cuda.get_device_name(0), f"torch {torch.__version__}")]
    rows.append(("CUDA parity of the 36 ops", *parity()))
    base = None
    for bf16 in (False, True):
        for cl in (False, True):
            ips = throughput("cuda", bf16, cl, args.epoch_images)
            base = base or ips
            rows.append((f"WRN-40-2 epoch, bf16 {'on' if bf16 else 'off'}, channels_last {'on' if cl else 'off'}",
                         f"{ips:,.0f} img/s", f"{ips / base:.2f}x fp32 contiguous"))
    rows.append(("search, 2 workers sharing the GPU", *search(args.dataroot)))
    for batch in (1, 128):
        rows.append((f"latency table, batch {batch}", *latency("cuda", batch)))
    width = max(len(r[0]) for r in rows)
    print(f"| {'check'.ljust(width)} | result | detail |")
    print(f"| {'-' * width} | --- | --- |")
    for name, result, detail in rows:
        print(f"| {name.ljust(width)} | {result} | {detail} |")
    return 0 if all("FAILED" not in r[1] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
