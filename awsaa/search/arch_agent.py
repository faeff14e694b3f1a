"""The architecture distribution of NAS + AWS: one categorical per choice block over the ops it
takes (ProxylessNAS's architecture parameters), learned by REINFORCE from the loops' rewards.

* **Sampling under a hard budget.** With ``max_block_params`` an architecture is drawn block by
  block, each block's op from the ops that still leave room, given the ops drawn before it, for
  the cheapest ops of the blocks after it: every draw fits the budget, none is rejected, and the
  log-probability of the draw under this constrained sampler is exact, so the REINFORCE
  gradient is that of the distribution actually sampled (no soft penalty, no bias from
  rejection).
* **Update.** One Adam step (betas 0.5 / 0.999, the policy agents') on
  ``-mean_a (R_a - b) log q(a)``, with the baseline ``b`` a moving average of the loops' mean
  rewards, updated before the advantages (as :mod:`awsaa.search.agents`).
* **The result** is the most probable architecture within the budget, found exactly by a
  Pareto sweep over the blocks (parameters against log-probability), not by taking each
  block's favourite op and hoping it fits.

Plain torch, no Ray; its state is saved with the search's (``state.pt``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from awsaa.arch import Arch, op_params, slots
from awsaa.config import NasConfig
from awsaa.errors import AWSAAError


class ArchAgent:
    """The distribution over :mod:`awsaa.arch`'s architectures; see the module docstring."""

    def __init__(self, cfg: NasConfig, seed: int = 0) -> None:
        self.cfg = cfg
        self.seed = seed
        self.slots = slots()
        self.logits = [torch.zeros(len(s.choices), dtype=torch.float64, requires_grad=True) for s in self.slots]
        self.optimizer = torch.optim.Adam(self.logits, lr=cfg.lr, betas=(0.5, 0.999))
        self.costs = [[op_params(op, s) for op in s.choices] for s in self.slots]
        # the fewest parameters the blocks from i on can hold
        self._floor = [sum(min(c) for c in self.costs[i:]) for i in range(len(self.slots) + 1)]
        self.baseline: float | None = None
        self.loops_done = 0

    # ------------------------------------------------------------------ the distribution
    def probs(self) -> list[list[float]]:
        """Each block's op probabilities (unconstrained by the budget), in the block's op order."""
        with torch.no_grad():
            return [torch.softmax(g, 0).tolist() for g in self.logits]

    def entropy(self) -> float:
        """Entropy of the (unconstrained) distribution, nats: the sum over blocks."""
        with torch.no_grad():
            return float(sum(-(torch.softmax(g, 0) * torch.log_softmax(g, 0)).sum() for g in self.logits))

    def _allowed(self, i: int, used: int) -> list[bool]:
        """Which ops of block ``i`` leave room for the cheapest rest, ``used`` parameters spent."""
        budget = self.cfg.max_block_params
        if budget is None:
            return [True] * len(self.costs[i])
        return [used + c + self._floor[i + 1] <= budget for c in self.costs[i]]

    def _log_q(self, arch: Arch) -> Tensor:
        """log q(arch) under the constrained sampler, differentiable in the logits."""
        total = torch.zeros((), dtype=torch.float64)
        used = 0
        for i, (op, slot, g) in enumerate(zip(arch.ops, self.slots, self.logits, strict=True)):
            ok = torch.tensor(self._allowed(i, used))
            k = slot.choices.index(op)
            if not ok[k]:
                raise AWSAAError(f"architecture {arch.describe()} is over the budget of "
                                 f"{self.cfg.max_block_params:,} block parameters")
            total = total + torch.log_softmax(g.masked_fill(~ok, -math.inf), 0)[k]
            used += self.costs[i][k]
        return total

    def ask(self, n: int) -> list[Arch]:
        """The next loop's ``n`` architectures, drawn from the distribution within the budget.
        A function of the seed, the loop and the logits: asking again gives the same ones."""
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.loops_done) * 1009 + 577)
        out = []
        with torch.no_grad():
            for _ in range(n):
                ops, used = [], 0
                for i, (slot, logits) in enumerate(zip(self.slots, self.logits, strict=True)):
                    ok = torch.tensor(self._allowed(i, used))
                    p = torch.softmax(logits.masked_fill(~ok, -math.inf), 0)
                    k = int(torch.multinomial(p, 1, generator=g))
                    ops.append(slot.choices[k])
                    used += self.costs[i][k]
                out.append(Arch(tuple(ops)))
        return out

    def tell(self, rewards: Sequence[float], archs: Sequence[Arch]) -> dict[str, Any]:
        """One REINFORCE step from the architectures' rewards (each architecture's mean over the
        loop's policies). Refused (:class:`AWSAAError`, the agent unchanged) for non-finite
        rewards or lengths that do not match."""
        if len(rewards) != len(archs) or not rewards:
            raise AWSAAError(f"{len(rewards)} rewards for {len(archs)} architectures")
        if not all(math.isfinite(r) for r in rewards):
            raise AWSAAError(f"non-finite architecture rewards {list(rewards)}")
        mean = sum(rewards) / len(rewards)
        m = self.cfg.baseline_momentum
        self.baseline = mean if self.baseline is None else m * self.baseline + (1 - m) * mean
        before = [p[:] for p in self.probs()]
        adv = [r - self.baseline for r in rewards]
        loss = -sum(a * self._log_q(arch) for a, arch in zip(adv, archs, strict=True)) / len(archs)
        self.optimizer.zero_grad()
        if isinstance(loss, Tensor) and loss.requires_grad:
            loss.backward()
            self.optimizer.step()
        self.loops_done += 1
        after = self.probs()
        kl = sum(sum(p * math.log(p / q) for p, q in zip(b, a, strict=True) if p > 0)
                 for b, a in zip(before, after, strict=True))
        return {"mean": mean, "baseline": self.baseline, "advantages": adv, "kl": kl, "entropy": self.entropy()}

    def skip(self) -> None:
        """A loop with no architecture reward: counted, the distribution unchanged."""
        self.loops_done += 1

    # ------------------------------------------------------------------ the result
    def best(self) -> Arch:
        """The most probable architecture within the budget (exact: a sweep over the blocks
        keeping, for each parameter count reached, only the paths no cheaper path beats)."""
        with torch.no_grad():
            logp = [torch.log_softmax(g, 0).tolist() for g in self.logits]
        budget = self.cfg.max_block_params
        front: list[tuple[int, float, tuple[str, ...]]] = [(0, 0.0, ())]
        for i, slot in enumerate(self.slots):
            grown = [(used + c, lp + logp[i][k], (*ops, slot.choices[k]))
                     for used, lp, ops in front for k, c in enumerate(self.costs[i])
                     if budget is None or used + c + self._floor[i + 1] <= budget]
            grown.sort(key=lambda t: (t[0], -t[1]))
            front = []
            for t in grown:  # keep a path only when it beats every cheaper one
                if not front or t[1] > front[-1][1]:
                    front.append(t)
        return Arch(max(front, key=lambda t: t[1])[2])

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        # a deep copy: Optimizer.load_state_dict keeps the given moment tensors, so a state
        # loaded elsewhere would otherwise share them with this agent
        return {"logits": [g.detach().clone() for g in self.logits],
                "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "baseline": self.baseline, "loops_done": self.loops_done,
                "ops": [list(s.choices) for s in self.slots]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("ops") != [list(s.choices) for s in self.slots]:
            raise AWSAAError("architecture agent state was made over a different architecture space")
        with torch.no_grad():
            for g, saved in zip(self.logits, state["logits"], strict=True):
                g.copy_(saved)
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]
        self.loops_done = int(state["loops_done"])
