"""Gradient-based NAS + AWS on digits, stage 1 only (RESULTS.md 7.5): configs/search/nas_digits.yaml
with ``nas.method: gradient`` (the logits learn after half of stage 1), then the most probable
architecture its logits give and each block's op probabilities (in the order of awsaa.arch.OPS,
without ``zero`` where a block changes the shape).

    .venv/bin/python experiments/nas_gradient_stage1.py [OUT.pt]
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import torch

from awsaa.config import SearchConfig, load
from awsaa.search.arch_agent import ArchAgent
from awsaa.search.stages import pretrain
from awsaa.train.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    torch.set_num_threads(1)
    cfg = load(SearchConfig, ROOT / "configs/search/nas_digits.yaml")
    assert cfg.nas is not None
    cfg = dataclasses.replace(cfg, nas=dataclasses.replace(cfg.nas, method="gradient"))
    assert cfg.nas is not None
    start = time.time()

    def line(epoch: int, total: int, loss: float, acc: float, seconds: float) -> None:
        if epoch % 250 == 0:
            print(f"epoch {epoch}/{total} training loss {loss:.3f}", flush=True)

    shared = pretrain(cfg, on_epoch=line)
    save_checkpoint(sys.argv[1] if len(sys.argv) > 1 else ROOT / "runs/nas_gradient_supernet.pt", shared)
    agent = ArchAgent(cfg.nas)
    agent.start_from(shared["arch_logits"])
    best = agent.best()
    print(f"{time.time() - start:.0f} s, {shared['arch_steps']} logit steps; most probable: {best.describe()} "
          f"({best.ops.count('zero')} zero blocks, {best.block_params:,} block parameters)")
    for i, g in enumerate(shared["arch_logits"]):
        print(f"block {i}: " + " ".join(f"{p:.2f}" for p in torch.softmax(g, 0).tolist()))


if __name__ == "__main__":
    main()
