"""Augmentation throughput on one machine, in one run: images per second of

  (a) awsaa's batched tensor path: a sub-policy drawn per image from the uniform policy,
      all 36 ops, batches of 1024;
  (b) torchvision's ``v2.AutoAugment`` (CIFAR-10 policy) applied image by image to tensors;
  (c) awsaa's PIL reference, a sub-policy drawn per image, image by image;
  (d) the public transform users call, ``AWSAugment(policy)``, on the same uint8 batch as (a);
  (e) the same on a batch of random pixels (no flat areas, every value different);

on 32x32 RGB images (real Fashion-MNIST test images padded to 32x32, three different images
as the three planes). Rounds alternate between the three; each ratio is taken within a
round (the three measured one after another, seconds apart) and the median over the rounds
is reported with their range: this machine's speed drifts by 1.5x within a minute, so a
ratio of medians taken over different moments can land anywhere from 7x to 15x.
Prints the ratios; BENCHMARKS.md records them.

    .venv/bin/python benchmarks/augment.py [--rounds 9] [--seconds 1] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision.transforms import v2

from awsaa import AWSAugment, Policy, SearchSpace
from awsaa.augment import pil_ops, tensor_ops
from awsaa.data import load_dataset


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def images_32(n: int) -> torch.Tensor:
    x = load_dataset("fashion_mnist").test.images[: 3 * n, 0]
    rgb = torch.stack([x[:n], x[n : 2 * n], x[2 * n : 3 * n]], dim=1)
    return F.pad(rgb, (2, 2, 2, 2)).contiguous()


def rate(fn, n_images: int, seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        done += n_images
    return done / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=1.0, help="per case and round")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    space = SearchSpace.default()
    policy = Policy.uniform(space)
    batch = images_32(args.batch)
    dev_batch = batch.to(args.device)
    g = torch.Generator().manual_seed(0)
    singles = list(batch[:64])
    pils = [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in singles]
    autoaug = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    public = AWSAugment(policy, fill=128, generator=0)
    noise = torch.randint(0, 256, tuple(batch.shape), dtype=torch.uint8, generator=g).to(args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def batched():
        pairs = policy.sample(args.batch, g)
        tensor_ops.apply_pairs(dev_batch, pairs.to(args.device), space, fill=128, generator=g)
        sync()

    def tv_autoaugment():
        for x in singles:
            autoaug(x)

    def pil_reference():
        pairs = policy.sample(len(pils), g).tolist()
        for im, (i, j) in zip(pils, pairs, strict=True):
            pil_ops.apply_pair(im, (space.ops[i], space.ops[j]), fill=128)

    def public_real():
        public(dev_batch)
        sync()

    def public_random():
        public(noise)
        sync()

    cases = {"(a) awsaa batched tensor path": (batched, args.batch),
             "(b) torchvision v2.AutoAugment, per image": (tv_autoaugment, len(singles)),
             "(c) awsaa PIL reference, per image": (pil_reference, len(pils)),
             "(d) AWSAugment (public), real images": (public_real, args.batch),
             "(e) AWSAugment (public), random pixels": (public_random, args.batch)}
    for fn, _ in cases.values():  # warm-up
        fn()
    results = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, (fn, n) in cases.items():
            results[name].append(rate(fn, n, args.seconds))
    med = {name: statistics.median(v) for name, v in results.items()}

    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
          f"device {args.device}; torch {torch.__version__}, torchvision {torchvision.__version__}")
    print(f"32x32 RGB images, batch {args.batch}, {args.rounds} rounds of {args.seconds:g} s a case, median:")
    for name, v in med.items():
        print(f"  {name:45s} {v:10.0f} img/s")
    a, b, c, d, e = results.values()
    for label, num, den, fmt, goal in (("(a)/(b)", a, b, ".1f", "   (target: at least 10x)"),
                                       ("(d)/(b)", d, b, ".1f", "   (target: at least 10x)"),
                                       ("(e)/(b)", e, b, ".1f", "   (target: at least 10x)"),
                                       ("(d)/(a)", d, a, ".2f", "   (the transform's own cost)"),
                                       ("(a)/(c)", a, c, ".1f", ""), ("(c)/(b)", c, b, ".2f", "")):
        ratios = [x / y for x, y in zip(num, den, strict=True)]
        print(f"ratio {label} = {statistics.median(ratios):{fmt}}x, rounds {min(ratios):{fmt}}-{max(ratios):{fmt}}x"
              f"{goal}")


if __name__ == "__main__":
    main()
