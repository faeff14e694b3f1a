"""The AWS controller's agents: PPO (the paper's) and REINFORCE. Plain torch, no Ray.

The policy is ``p(i, j) = n(first)_i * n(second_i)_j`` over the K x K op pairs (see
:mod:`awsaa.policy`). One update takes the M trajectories of a loop: their rewards ``R_m``
(the fine-tuned proxy's validation accuracy) and pair-usage counts ``N_m`` (K x K).

* Baseline: ``b = mean(R)`` at the first loop; afterwards ``b <- 0.9 b + 0.1 mean(R)``,
  updated **before** the advantages ``A_m = 0.5 (R_m - b)`` are computed.
* Per-pair advantages ``A_m,ij = A_m N_m,ij / sum(N_m)``.
* PPO: ``r = pi_new / pi_old`` (the standard direction: the official release computes
  ``pi_old / pi_new``, which pushes probability *away* from rewarded pairs; see
  ``tests/test_agents.py``), objective ``sum_ij min(r A_ij, clip(r, 1 - eps, 1 + eps) A_ij)``
  averaged over the M trajectories, at most 5 Adam steps (betas 0.5 / 0.999), stopping
  early once ``KL(pi_old || pi) > 0.002``. The Adam learning rate rises linearly from
  0.0125 to 0.1 over the first 10 loops.
* REINFORCE: one Adam step on ``-mean_m sum_ij A_m,ij log p_ij``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from awsaa.augment.space import SearchSpace
from awsaa.errors import AWSAAError
from awsaa.policy import Policy, pair_probs


@dataclass
class AgentConfig:
    """Every knob of the agents, with the paper's / official release's defaults."""

    normalization: str = "sigmoid"
    lr: float = 0.1  # Adam learning rate after the warm-up
    warmup_lr: float = 0.0125  # at the first loop
    warmup_loops: int = 10
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    baseline_momentum: float = 0.9
    advantage_scale: float = 0.5
    clip: float = 0.2  # PPO only
    max_inner_steps: int = 5  # PPO only
    kl_stop: float = 0.002  # PPO only
    entropy_bonus: float = 0.0

    def check(self) -> None:
        from awsaa.config import ConfigError

        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(msg)

        need(self.normalization in ("sigmoid", "softmax"), f"normalization must be sigmoid or softmax, "
                                                           f"got {self.normalization!r}")
        need(self.lr > 0 and self.warmup_lr > 0, "lr and warmup_lr must be > 0")
        need(self.warmup_loops >= 0, f"warmup_loops must be >= 0, got {self.warmup_loops}")
        need(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), f"betas must be two numbers in [0, 1), "
                                                                           f"got {self.betas}")
        need(0 <= self.baseline_momentum < 1, f"baseline_momentum must be in [0, 1), got {self.baseline_momentum}")
        need(self.advantage_scale > 0, f"advantage_scale must be > 0, got {self.advantage_scale}")
        need(0 < self.clip < 1, f"clip must be in (0, 1), got {self.clip}")
        need(self.max_inner_steps >= 1, f"max_inner_steps must be >= 1, got {self.max_inner_steps}")
        need(self.kl_stop > 0, f"kl_stop must be > 0, got {self.kl_stop}")
        need(self.entropy_bonus >= 0, f"entropy_bonus must be >= 0, got {self.entropy_bonus}")


@dataclass
class UpdateStats:
    loop: int
    mean_reward: float
    baseline: float
    advantages: list[float]
    inner_steps: int
    kl: float
    entropy: float
    lr: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Agent:
    name = "agent"

    def __init__(self, space: SearchSpace | None = None, config: AgentConfig | None = None, **overrides) -> None:
        self.space = space or SearchSpace.default()
        cfg = config or AgentConfig()
        if overrides:
            cfg = AgentConfig(**{**asdict(cfg), **overrides})
        self.config = cfg
        k = self.space.num_ops
        self.first = torch.zeros(k, dtype=torch.float64, requires_grad=True)
        self.second = torch.zeros(k, k, dtype=torch.float64, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.first, self.second], lr=self._lr(0), betas=tuple(cfg.betas),
                                          weight_decay=0.0)
        self.baseline: float | None = None
        self.loops_done = 0

    # ------------------------------------------------------------------ policy
    def probs(self) -> Tensor:
        with torch.no_grad():
            return pair_probs(self.first, self.second, self.config.normalization)

    def policy(self, meta: dict[str, Any] | None = None) -> Policy:
        return Policy.from_params(self.space, self.first.detach(), self.second.detach(),
                                  self.config.normalization, meta)

    def _lr(self, loop: int) -> float:
        c = self.config
        if loop >= c.warmup_loops or c.warmup_loops <= 1:
            return c.lr
        return c.warmup_lr + (c.lr - c.warmup_lr) * loop / (c.warmup_loops - 1)

    # ------------------------------------------------------------------ update
    def _advantages(self, rewards: Sequence[float], counts: Sequence[Tensor]) -> tuple[Tensor, list[float]]:
        if len(rewards) == 0 or len(rewards) != len(counts):
            raise AWSAAError(f"an update needs one count matrix per reward, got {len(rewards)} and {len(counts)}")
        r = torch.tensor([float(x) for x in rewards], dtype=torch.float64)
        if not torch.isfinite(r).all():
            raise AWSAAError(f"rewards must be finite, got {r.tolist()}")
        k = self.space.num_ops
        n = torch.stack([torch.as_tensor(c, dtype=torch.float64).reshape(k, k) for c in counts])
        if (n < 0).any() or (n.sum(dim=(1, 2)) <= 0).any():
            raise AWSAAError("pair counts must be non-negative and count at least one pair per trajectory")
        mean = float(r.mean())
        m = self.config.baseline_momentum
        self.baseline = mean if self.baseline is None else m * self.baseline + (1 - m) * mean
        adv = self.config.advantage_scale * (r - self.baseline)
        per_pair = adv.view(-1, 1, 1) * n / n.sum(dim=(1, 2), keepdim=True)
        return per_pair, adv.tolist()

    def update(self, rewards: Sequence[float], counts: Sequence[Tensor]) -> UpdateStats:
        """One loop: update the baseline, then the policy parameters. ``counts[m]`` is the
        (K, K) pair usage of trajectory ``m``, ``rewards[m]`` its reward."""
        per_pair, adv = self._advantages(rewards, counts)
        lr = self._lr(self.loops_done)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        old = self.probs()
        steps = self._step(per_pair, old)
        new = self.probs()
        kl = float((old * (old.log() - new.log())).sum())
        self.loops_done += 1
        entropy = float(-(new * new.log()).sum())
        return UpdateStats(self.loops_done, float(torch.tensor(rewards, dtype=torch.float64).mean()),
                           float(self.baseline), adv, steps, kl, entropy, lr)

    def _step(self, per_pair: Tensor, old: Tensor) -> int:
        raise NotImplementedError

    def _entropy_term(self, probs: Tensor) -> Tensor:
        return -(probs * probs.log()).sum()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only (loads with ``torch.load(weights_only=True)``)."""
        return {"agent": self.name, "config": asdict(self.config),
                "ops": list(self.space.names), "first": self.first.detach().clone(),
                "second": self.second.detach().clone(), "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "baseline": self.baseline, "loops_done": self.loops_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("agent") != self.name:
            raise AWSAAError(f"agent state is for {state.get('agent')!r}, not {self.name!r}")
        if list(state["ops"]) != list(self.space.names):
            raise AWSAAError("agent state was made over a different search space")
        with torch.no_grad():
            self.first.copy_(state["first"])
            self.second.copy_(state["second"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]
        self.loops_done = int(state["loops_done"])


class PPOAgent(_Agent):
    """The AWS controller: PPO with the standard ratio ``pi_new / pi_old``."""

    name = "ppo"
    invert_ratio = False  # True reproduces the official release's ratio (for the tests only)

    def _step(self, per_pair: Tensor, old: Tensor) -> int:
        c = self.config
        old_log = old.log()
        steps = 0
        for _ in range(c.max_inner_steps):
            new_log = pair_probs(self.first, self.second, c.normalization).log()
            ratio = (old_log - new_log).exp() if self.invert_ratio else (new_log - old_log).exp()
            clipped = ratio.clamp(1 - c.clip, 1 + c.clip)
            objective = torch.minimum(ratio * per_pair, clipped * per_pair).sum(dim=(1, 2)).mean()
            if c.entropy_bonus:
                objective = objective + c.entropy_bonus * self._entropy_term(new_log.exp())
            self.optimizer.zero_grad()
            (-objective).backward()
            self.optimizer.step()
            steps += 1
            with torch.no_grad():
                kl = (old * (old_log - pair_probs(self.first, self.second, c.normalization).log())).sum()
            if kl > c.kl_stop:
                break
        return steps


class REINFORCEAgent(_Agent):
    """The alternative the paper names: one policy-gradient step per loop."""

    name = "reinforce"

    def _step(self, per_pair: Tensor, old: Tensor) -> int:
        c = self.config
        log_p = pair_probs(self.first, self.second, c.normalization).log()
        objective = (per_pair * log_p).sum(dim=(1, 2)).mean()
        if c.entropy_bonus:
            objective = objective + c.entropy_bonus * self._entropy_term(log_p.exp())
        self.optimizer.zero_grad()
        (-objective).backward()
        self.optimizer.step()
        return 1


AGENTS = {"ppo": PPOAgent, "reinforce": REINFORCEAgent}


def make_agent(name: str, space: SearchSpace | None = None, config: AgentConfig | None = None) -> _Agent:
    try:
        return AGENTS[name](space, config)
    except KeyError:
        raise AWSAAError(f"unknown agent {name!r}; choose from {', '.join(AGENTS)}") from None


