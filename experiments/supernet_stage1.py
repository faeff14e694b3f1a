"""NAS + AWS on digits: how long the supernet's stage 1 must be (RESULTS.md 7.2). Trains the
supernet of configs/search/nas_digits.yaml's stage 1 with one uniformly drawn path per batch
(or one fixed path, ``--path wrn``), at the batch size, learning rate, augmentation and
schedule given, and prints the training loss and accuracy five times along the way.

    .venv/bin/python experiments/supernet_stage1.py --batch 50 --lr 0.1 --aug uniform --epochs 400
    .venv/bin/python experiments/supernet_stage1.py --batch 16 --lr 0.05 --aug uniform --epochs 3000

Another regime: ``--config`` (a NAS search config; its stage 1's data, augmentation settings and
optimizer, with the flags above overriding), e.g. configs/search/nas_fmnist.yaml.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from awsaa.arch import Arch
from awsaa.config import SearchConfig, load
from awsaa.models import SuperNet
from awsaa.search.stages import train_config
from awsaa.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--aug", default="uniform")
    p.add_argument("--epochs", type=int, default=3000)
    p.add_argument("--config", type=Path, default=ROOT / "configs/search/nas_digits.yaml")
    p.add_argument("--path", help="train this op in every block (a fixed path) instead of drawing paths")
    a = p.parse_args()
    torch.set_num_threads(1)
    cfg = load(SearchConfig, a.config)
    tc = train_config(cfg, "pretrain")
    tc = dataclasses.replace(tc, epochs=a.epochs, aug=a.aug, batch_size=a.batch,
                             optim=dataclasses.replace(tc.optim, lr=a.lr, warmup_from=a.lr / 10))
    t = Trainer(tc)
    net = t.model
    assert isinstance(net, SuperNet)
    net.seed_paths(cfg.seed)
    if a.path:
        net.set_path(Arch.uniform_op(a.path))
    start = time.perf_counter()
    for e in range(a.epochs):
        loss, acc, _, _ = t.train_epoch()
        if (e + 1) % max(1, a.epochs // 5) == 0:
            print(f"epoch {e + 1}/{a.epochs}  training loss {loss:.3f}  training accuracy {acc:.1f}%  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
