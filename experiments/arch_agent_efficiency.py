"""The architecture distribution of NAS + AWS (awsaa/search/arch_agent.py) against a synthetic
reward shaped like the one measured on digits (RESULTS.md 7.6): how good an architecture it
returns after a number of loops, beside its null control, over seeds. No network is trained.

    .venv/bin/python experiments/arch_agent_efficiency.py                 # the table of RESULTS.md 7.6
    .venv/bin/python experiments/arch_agent_efficiency.py --loops 30 --archs 2 --momentum 0.9 0

The synthetic reward of architecture ``a`` in loop ``t``:
``q(a) + shift_t + noise``, with

* ``q(a)`` a sum of per-block op effects (drawn once per seed, normal), scaled so that ``q``'s
  SD over uniformly drawn architectures is ``--arch-sd`` (digits, joint-s0: the SD of the
  architectures' main effects, 0.0097 in validation loss);
* ``shift_t`` shared by every cell of the loop (the loop's policies, its common random
  numbers): SD ``--shift-sd`` (joint-s0: the loop means' SD over 30 loops, 0.025);
* ``noise`` the residual of one grid cell (``--cell-sd``, joint-s0: 0.0048) averaged over the
  ``trajectories / archs`` policies an architecture runs with.

Each configuration reports the true quality of the returned architecture (``best()``, the most
probable) as a percentile among 20,000 uniform architectures (50: no better than random), and
the entropy the distribution lost, mean ± SD over seeds, for the real rewards and for the null
control (the rewards shuffled among the loop's architectures).
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics as st

import torch

from awsaa.arch import Arch, slots
from awsaa.config import NasConfig
from awsaa.search.arch_agent import ArchAgent


class Quality:
    """Additive per-block op effects, scaled to ``sd`` over uniform architectures."""

    def __init__(self, sd: float, seed: int) -> None:
        rng = random.Random(seed)
        raw = [{op: rng.gauss(0, 1) for op in s.choices} for s in slots()]
        draw = random.Random(seed + 1)
        self.pool = [Arch.sample(draw) for _ in range(20_000)]
        scale = sd / st.pstdev([sum(e[op] for e, op in zip(raw, a.ops, strict=True)) for a in self.pool])
        self.effects = [{op: v * scale for op, v in e.items()} for e in raw]
        self.sorted = sorted(self(a) for a in self.pool)

    def __call__(self, arch: Arch) -> float:
        return sum(e[op] for e, op in zip(self.effects, arch.ops, strict=True))

    def percentile(self, arch: Arch) -> float:
        q = self(arch)
        return 100.0 * sum(x < q for x in self.sorted) / len(self.sorted)


def run(quality: Quality, cfg: NasConfig, loops: int, per_arch: int, shift_sd: float, cell_sd: float, seed: int,
        shuffle: bool) -> tuple[float, float]:
    """One search: the returned architecture's percentile and the entropy lost."""
    agent = ArchAgent(cfg, seed=seed)
    rng = random.Random(seed * 7919 + 13)
    start = agent.entropy()
    for _ in range(loops):
        archs = agent.ask(cfg.archs)
        shift = rng.gauss(0, shift_sd)
        rewards = [quality(a) + shift + rng.gauss(0, cell_sd / per_arch ** 0.5) for a in archs]
        if shuffle:
            rng.shuffle(rewards)
        agent.tell(rewards, archs)
    return quality.percentile(agent.best()), start - agent.entropy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--loops", type=int, nargs="+", default=[30, 120])
    p.add_argument("--archs", type=int, nargs="+", default=[2, 4, 8], help="architectures a loop")
    p.add_argument("--trajectories", type=int, default=8, help="cells a loop (architectures x policies)")
    p.add_argument("--momentum", type=float, nargs="+", default=[0.9, 0.0],
                   help="nas.baseline_momentum (0: the loop's own mean is the baseline)")
    p.add_argument("--lr", type=float, nargs="+", default=[0.1])
    p.add_argument("--arch-sd", type=float, default=0.0097)
    p.add_argument("--shift-sd", type=float, default=0.025)
    p.add_argument("--cell-sd", type=float, default=0.0048)
    p.add_argument("--seeds", type=int, default=12)
    a = p.parse_args()
    torch.set_num_threads(1)
    qualities = [Quality(a.arch_sd, 1000 + s) for s in range(a.seeds)]
    print(f"reward: architecture SD {a.arch_sd}, loop shift SD {a.shift_sd}, cell residual SD {a.cell_sd}; "
          f"{a.trajectories} cells a loop; {a.seeds} seeds")
    print()
    print("| loops | architectures x policies | lr | baseline momentum | percentile of the result "
          "| entropy lost (nats) | null: percentile | null: entropy lost |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for loops, archs, lr, m in itertools.product(a.loops, a.archs, a.lr, a.momentum):
        cfg = NasConfig(archs=archs, lr=lr, baseline_momentum=m)
        cells = []
        for shuffle in (False, True):
            out = [run(qualities[s], cfg, loops, a.trajectories // archs, a.shift_sd, a.cell_sd, s, shuffle)
                   for s in range(a.seeds)]
            for k in range(2):
                xs = [o[k] for o in out]
                cells.append(f"{st.mean(xs):.{0 if k == 0 else 2}f} ± {st.stdev(xs):.{0 if k == 0 else 2}f}")
        print(f"| {loops} | {archs} x {a.trajectories // archs} | {lr} | {m} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
