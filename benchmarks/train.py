"""Training throughput: awsaa's in-memory, batched path against a torchvision DataLoader.

CPU mode (default), in one run on one machine, images per second of training steps of the
small network (``wrn10_1``, batch 128) on Fashion-MNIST with crop + flip + a sub-policy per
image from the uniform AWS policy + Cutout:

  (a) awsaa: uint8 tensors in memory, the batched tensor ops, no worker processes;
  (b) torchvision: a ``DataLoader`` over PIL images with the same augmentation done by
      PIL (``v2.RandomCrop``, ``v2.RandomHorizontalFlip``, ``awsaa.AWSAugment``'s PIL path,
      ``awsaa.Cutout``, ``v2.ToImage``/``ToDtype``/``Normalize``), with 0 and with 2 workers.

GPU mode (``--device cuda``): images per second of ``wrn40_2`` and ``wrn28_10`` (bf16 autocast,
channels_last, Fashion-MNIST padded to 32x32 and copied to 3 channels, in GPU memory) with
the batched augmentation on the GPU and without any, and the share of step time spent
augmenting. Results go in BENCHMARKS.md.

    .venv/bin/python benchmarks/train.py [--steps 40]
    .venv/bin/python benchmarks/train.py --device cuda --steps 100
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

import awsaa
from awsaa import models
from awsaa.data import load_dataset
from awsaa.train.pipeline import Pipeline

MEAN, STD = 0.2860, 0.3530


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def make_step(model, device, autocast=False):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)

    def step(x, y):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def cpu_benchmark(args) -> None:
    device = torch.device("cpu")
    ds = load_dataset("fashion_mnist")
    images, labels = ds.train.images[:20000], ds.train.labels[:20000]
    g = torch.Generator().manual_seed(0)
    pipeline = Pipeline.from_config("uniform", fill=0, cutout=14, mean_fill=(73,), crop_padding=4, hflip=True)
    mean, std = MEAN * 255, STD * 255

    def awsaa_rate(steps):
        model = models.create("wrn10_1", 10, 1).to(memory_format=torch.channels_last)
        step = make_step(model, device)
        done, start = 0, None
        for i in range(steps + 3):
            if i == 3:
                start = time.perf_counter()
            idx = torch.randint(0, len(images), (args.batch,), generator=g)
            x, y, _ = pipeline(images[idx], labels[idx], g)
            x = ((x.float() - mean) / std).contiguous(memory_format=torch.channels_last)
            step(x, y)
            done += args.batch if i >= 3 else 0
        return done / (time.perf_counter() - start)

    class PILSet(torch.utils.data.Dataset):
        def __init__(self, transform):
            self.transform = transform

        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return self.transform(Image.fromarray(images[i, 0].numpy(), "L")), int(labels[i])

    transform = v2.Compose([
        v2.RandomCrop(28, padding=4), v2.RandomHorizontalFlip(), awsaa.AWSAugment(awsaa.Policy.uniform(), fill=0),
        awsaa.Cutout(14, fill=73), v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize([MEAN], [STD]),
    ])

    def loader_rate(steps, workers):
        model = models.create("wrn10_1", 10, 1).to(memory_format=torch.channels_last)
        step = make_step(model, device)
        loader = torch.utils.data.DataLoader(PILSet(transform), batch_size=args.batch, shuffle=True,
                                             num_workers=workers, drop_last=True, persistent_workers=workers > 0)
        it = iter(loader)
        for _ in range(3):
            x, y = next(it)
            step(x.contiguous(memory_format=torch.channels_last), y)
        start = time.perf_counter()
        for _ in range(steps):
            x, y = next(it)
            step(x.contiguous(memory_format=torch.channels_last), y)
        rate = steps * args.batch / (time.perf_counter() - start)
        del it, loader
        return rate

    cases = {"(a) awsaa in-memory, batched augmentation": lambda: awsaa_rate(args.steps),
             "(b) DataLoader + PIL augmentation, 0 workers": lambda: loader_rate(args.steps, 0),
             "(b) DataLoader + PIL augmentation, 2 workers": lambda: loader_rate(args.steps, 2)}
    results = {k: [] for k in cases}
    for _ in range(args.rounds):
        for k, fn in cases.items():
            results[k].append(fn())
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads; "
          f"torch {torch.__version__}")
    print(f"wrn10_1 on Fashion-MNIST 28x28, batch {args.batch}, {args.steps} steps per measurement, "
          f"median of {args.rounds} rounds; crop+flip+uniform AWS policy+Cutout:")
    for k, v in med.items():
        print(f"  {k:48s} {v:8.0f} img/s")
    a = med["(a) awsaa in-memory, batched augmentation"]
    for k in list(med)[1:]:
        print(f"ratio (a) / {k[4:]}: {a / med[k]:.2f}x")


def gpu_benchmark(args) -> None:
    device = torch.device(args.device)
    ds = load_dataset("fashion_mnist")
    x = ds.train.images[:50000]
    x = F.pad(x, (2, 2, 2, 2)).expand(-1, 3, -1, -1).contiguous().to(device)  # 32x32, 3 channels
    y = ds.train.labels[:50000].to(device)
    g = torch.Generator().manual_seed(0)
    pipeline = Pipeline.from_config("uniform", fill=0, cutout=16, mean_fill=(73,), crop_padding=4, hflip=True)
    mean = torch.tensor([MEAN * 255] * 3, device=device).view(1, 3, 1, 1)
    std = torch.tensor([STD * 255] * 3, device=device).view(1, 3, 1, 1)
    print(f"device: {torch.cuda.get_device_name(device)}; torch {torch.__version__}; bf16 autocast, channels_last")
    for name in ("wrn40_2", "wrn28_10"):
        model = models.create(name, 10, 3).to(device, memory_format=torch.channels_last)
        step = make_step(model, device, autocast=True)
        for augment in (False, True):
            aug_time = 0.0
            torch.cuda.synchronize()
            for i in range(args.steps + 5):
                if i == 5:
                    torch.cuda.synchronize()
                    start, aug_time = time.perf_counter(), 0.0
                idx = torch.randint(0, len(x), (args.batch,), device=device)
                xb, yb = x[idx], y[idx]
                if augment:
                    t0 = time.perf_counter()
                    xb, yb, _ = pipeline(xb, yb, g)
                    torch.cuda.synchronize()
                    aug_time += time.perf_counter() - t0
                xb = ((xb.float() - mean) / std).contiguous(memory_format=torch.channels_last)
                step(xb, yb)
            torch.cuda.synchronize()
            total = time.perf_counter() - start
            rate = args.steps * args.batch / total
            share = f", augmentation {100 * aug_time / total:.1f}% of step time" if augment else ""
            print(f"  {name:9s} batch {args.batch} {'with' if augment else 'without'} augmentation: "
                  f"{rate:8.0f} img/s{share}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    if args.device == "cpu":
        cpu_benchmark(args)
    else:
        if args.batch == 128:
            args.batch = 256
        gpu_benchmark(args)


if __name__ == "__main__":
    main()
