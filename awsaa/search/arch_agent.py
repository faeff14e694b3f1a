"""The architecture distribution of NAS + AWS: one categorical per choice block over the ops it
takes (ProxylessNAS's architecture parameters), learned by REINFORCE from the loops' rewards.

* **Sampling under hard constraints.** With a budget (``max_block_params``, or
  ``max_latency_ms`` summed from a latency table, :mod:`awsaa.latency`) an architecture is
  drawn block by block, each block's op from the ops that still leave room, given the ops
  drawn before it, for the cheapest ops of the blocks after it; with ``max_zero_blocks``, ``zero`` is no longer
  offered once that many blocks took it. Every draw fits, none is rejected, and the
  log-probability of the draw under this constrained sampler is exact, so the REINFORCE
  gradient is that of the distribution actually sampled (no soft penalty, no bias from
  rejection).
* **Update.** One Adam step (betas 0.5 / 0.999, the policy agents') on
  ``-mean_a (R_a - b) log q(a)``, with the baseline ``b`` a moving average of the loops' mean
  rewards, updated before the advantages (as :mod:`awsaa.search.agents`). Its default momentum
  is 0: ``b`` is the loop's own mean, so only the differences between the loop's
  architectures, which ran with the same policies and random numbers, move the distribution;
  what the loop shares (its policies, its data) cancels. On digits the loops' means vary 2.5
  times as much as the architectures do, and a moving baseline let that noise drive the
  update (RESULTS.md 7.6).
* **The result** is the most probable architecture within the constraints, found exactly by a
  Pareto sweep over the blocks (parameters against log-probability, for each count of zero
  blocks), not by taking each block's favourite op and hoping it fits.
* **Gradient-based NAS + AWS** (``nas.method: gradient``) starts the logits from those stage 1
  learned by gradient (:meth:`start_from`).

Plain torch, no Ray; its state is saved with the search's (``state.pt``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from awsaa.arch import Arch, cost_floors, param_costs, slots
from awsaa.config import NasConfig
from awsaa.errors import AWSAAError
from awsaa.latency import LatencyTable


class ArchAgent:
    """The distribution over :mod:`awsaa.arch`'s architectures; see the module docstring."""

    def __init__(self, cfg: NasConfig, seed: int = 0, latency: LatencyTable | None = None) -> None:
        """``latency``: the table of ``cfg.latency_table`` (needed with it; its costs and budget
        replace the parameters' with ``cfg.max_latency_ms``)."""
        self.cfg = cfg
        self.seed = seed
        self.slots = slots()
        self.logits = [torch.zeros(len(s.choices), dtype=torch.float64, requires_grad=True) for s in self.slots]
        self.optimizer = torch.optim.Adam(self.logits, lr=cfg.lr, betas=(0.5, 0.999))
        if (cfg.latency_table is not None) != (latency is not None):
            raise AWSAAError("nas.latency_table and the table read from it go together")
        self.latency = latency
        # the budget's unit: parameters, or whole microseconds of the table's ops (the stem and
        # head, the same for every architecture, taken off the budget)
        self.costs = param_costs()
        self.budget: int | None = cfg.max_block_params
        if cfg.max_latency_ms is not None and latency is not None:
            self.costs = latency.costs_us()
            self.budget = latency.budget_us(cfg.max_latency_ms)
        # the least cost the blocks from i on can take, with z zero blocks still allowed
        self._floor = cost_floors(self.costs, cfg.max_zero_blocks)
        if self.budget is not None and self._floor[0, cfg.max_zero_blocks] > self.budget and latency is not None:
            fastest = self._floor[0, cfg.max_zero_blocks] / 1000 + latency.ends_ms
            raise AWSAAError(f"nas.max_latency_ms {cfg.max_latency_ms} admits no architecture: the fastest takes "
                             f"{fastest:.3f} ms by the latency table ({latency.device}, batch {latency.batch_size})")
        self.baseline: float | None = None
        self.loops_done = 0
        self.from_stage1 = False  # the logits were started from stage 1's (method gradient)

    # ------------------------------------------------------------------ the distribution
    def probs(self) -> list[list[float]]:
        """Each block's op probabilities (unconstrained by the budget), in the block's op order."""
        with torch.no_grad():
            return [torch.softmax(g, 0).tolist() for g in self.logits]

    def entropy(self) -> float:
        """Entropy of the (unconstrained) distribution, nats: the sum over blocks."""
        with torch.no_grad():
            return float(sum(-(torch.softmax(g, 0) * torch.log_softmax(g, 0)).sum() for g in self.logits))

    def _allowed(self, i: int, used: int, zeros: int) -> list[bool]:
        """Which ops of block ``i`` keep a draw within the constraints, ``used`` parameters and
        ``zeros`` zero blocks spent: room left for the cheapest rest, and ``zero`` only below the cap."""
        budget, cap = self.budget, self.cfg.max_zero_blocks
        out = []
        for op, c in zip(self.slots[i].choices, self.costs[i], strict=True):
            z = zeros + (op == "zero")
            if cap is not None and z > cap:
                out.append(False)
                continue
            rest = self._floor[i + 1, cap - z if cap is not None else None]
            out.append(budget is None or used + c + rest <= budget)
        return out

    def start_from(self, logits: Sequence[Tensor]) -> None:
        """Start the distribution from ``logits`` (one tensor per block, over its ops: what stage 1
        of gradient-based NAS + AWS learned). Only before the first loop."""
        if self.loops_done:
            raise AWSAAError("the architecture distribution can be started from stage 1 only before its first loop")
        if [len(g) for g in logits] != [len(g) for g in self.logits]:
            raise AWSAAError("stage 1's architecture logits do not fit this architecture space")
        with torch.no_grad():
            for g, src in zip(self.logits, logits, strict=True):
                g.copy_(src)
        self.from_stage1 = True

    def _log_q(self, arch: Arch) -> Tensor:
        """log q(arch) under the constrained sampler, differentiable in the logits."""
        total = torch.zeros((), dtype=torch.float64)
        used = zeros = 0
        for i, (op, slot, g) in enumerate(zip(arch.ops, self.slots, self.logits, strict=True)):
            ok = torch.tensor(self._allowed(i, used, zeros))
            k = slot.choices.index(op)
            if not ok[k]:
                raise AWSAAError(f"architecture {arch.describe()} breaks the constraints (nas.max_block_params "
                                 f"{self.cfg.max_block_params}, nas.max_latency_ms {self.cfg.max_latency_ms}, "
                                 f"nas.max_zero_blocks {self.cfg.max_zero_blocks})")
            total = total + torch.log_softmax(g.masked_fill(~ok, -math.inf), 0)[k]
            used += self.costs[i][k]
            zeros += op == "zero"
        return total

    def ask(self, n: int) -> list[Arch]:
        """The next loop's ``n`` architectures, drawn from the distribution within the budget.
        A function of the seed, the loop and the logits: asking again gives the same ones."""
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.loops_done) * 1009 + 577)
        out = []
        with torch.no_grad():
            for _ in range(n):
                ops, used, zeros = [], 0, 0
                for i, (slot, logits) in enumerate(zip(self.slots, self.logits, strict=True)):
                    ok = torch.tensor(self._allowed(i, used, zeros))
                    p = torch.softmax(logits.masked_fill(~ok, -math.inf), 0)
                    k = int(torch.multinomial(p, 1, generator=g))
                    ops.append(slot.choices[k])
                    used += self.costs[i][k]
                    zeros += slot.choices[k] == "zero"
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
        log_q = [self._log_q(arch) for arch in archs]  # refuses an architecture out of bounds, before any change
        mean = sum(rewards) / len(rewards)
        m = self.cfg.baseline_momentum
        self.baseline = mean if self.baseline is None else m * self.baseline + (1 - m) * mean
        before = [p[:] for p in self.probs()]
        adv = [r - self.baseline for r in rewards]
        loss = -torch.stack([a * lq for a, lq in zip(adv, log_q, strict=True)]).sum() / len(archs)
        self.optimizer.zero_grad()
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
        """The most probable architecture within the constraints (exact: a sweep over the blocks
        keeping, for each count of zero blocks and each parameter count reached, only the paths
        that no cheaper path with as many zero blocks beats)."""
        with torch.no_grad():
            logp = [torch.log_softmax(g, 0).tolist() for g in self.logits]
        # per count of zero blocks: (parameters, log-probability, ops), cheapest first
        fronts: dict[int, list[tuple[int, float, tuple[str, ...]]]] = {0: [(0, 0.0, ())]}
        for i, slot in enumerate(self.slots):
            grown: dict[int, list[tuple[int, float, tuple[str, ...]]]] = {}
            for zeros, front in fronts.items():
                for used, lp, ops in front:
                    ok = self._allowed(i, used, zeros)
                    for k, c in enumerate(self.costs[i]):
                        if ok[k]:
                            z = zeros + (slot.choices[k] == "zero")
                            grown.setdefault(z, []).append((used + c, lp + logp[i][k], (*ops, slot.choices[k])))
            fronts = {}
            for z, paths in grown.items():
                paths.sort(key=lambda t: (t[0], -t[1]))
                kept: list[tuple[int, float, tuple[str, ...]]] = []
                for t in paths:  # keep a path only when it beats every cheaper one
                    if not kept or t[1] > kept[-1][1]:
                        kept.append(t)
                fronts[z] = kept
        return Arch(max((t for front in fronts.values() for t in front), key=lambda t: t[1])[2])

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        # a deep copy: Optimizer.load_state_dict keeps the given moment tensors, so a state
        # loaded elsewhere would otherwise share them with this agent
        return {"logits": [g.detach().clone() for g in self.logits],
                "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "baseline": self.baseline, "loops_done": self.loops_done, "from_stage1": self.from_stage1,
                "ops": [list(s.choices) for s in self.slots], "costs": self.costs, "budget": self.budget}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("ops") != [list(s.choices) for s in self.slots]:
            raise AWSAAError("architecture agent state was made over a different architecture space")
        if "costs" in state and (state["costs"], state["budget"]) != (self.costs, self.budget):
            raise AWSAAError("the architecture budget's costs differ from those the run started with (was its "
                             "latency table changed?)")
        with torch.no_grad():
            for g, saved in zip(self.logits, state["logits"], strict=True):
                g.copy_(saved)
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]
        self.loops_done = int(state["loops_done"])
        self.from_stage1 = bool(state.get("from_stage1", False))
