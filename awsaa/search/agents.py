"""The search's agents: PPO (the paper's), REINFORCE, and antithetic evolution strategies
(ES). Plain torch, no Ray.

Every agent speaks **ask / tell**: ``policies = agent.ask(M)`` gives the sampling policies
of a loop's M trajectories, ``agent.tell(rewards, counts)`` takes their rewards and (K, K)
pair-count tensors in the same order, and ``agent.policy()`` is the current policy. PPO and
REINFORCE sample every trajectory from the current policy (``ask`` returns it M times) and
hear the policy only through how often each pair happened to be drawn; ES samples each
trajectory from its own perturbed policy. Agents come from :func:`make_agent` by name
(:data:`AGENTS`); docs/design.md says why there are several and how each result is chosen.
An agent of your own is any class with the methods of
:class:`awsaa.search.registry.Agent`, registered with
:func:`~awsaa.search.registry.register_agent` (then a config's ``agent:`` may name it).

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
* ES: see :class:`ESAgent`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from awsaa.augment.space import SearchSpace
from awsaa.config import AgentConfig
from awsaa.errors import AWSAAError
from awsaa.policy import Policy, pair_probs


class UpdateRefused(AWSAAError):
    """An update whose inputs or result cannot be used (non-finite, or for trajectories never
    asked); the agent is left exactly as it was before :meth:`tell` was called."""


# Rewards are accuracies in percent or negative losses: a reward this large is not one, and
# squaring or differencing it could overflow.
MAX_ABS_REWARD = 1e12


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

    def __init__(self, space: SearchSpace | None = None, config: AgentConfig | None = None, seed: int = 0,
                 **overrides) -> None:
        self.space = space or SearchSpace.default()
        cfg = config or AgentConfig()
        self.config = AgentConfig(**{**asdict(cfg), **overrides})  # a copy: agents never change the caller's
        self.seed = seed  # the agent's own random stream (ES perturbations), with the loop number
        k = self.space.num_ops
        self.first = torch.zeros(k, dtype=torch.float64, requires_grad=True)
        self.second = torch.zeros(k, k, dtype=torch.float64, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.first, self.second], lr=self._lr(0), betas=(cfg.betas[0], cfg.betas[1]),
                                          weight_decay=0.0)
        self.baseline: float | None = None
        self.loops_done = 0
        self.asked: int | None = None  # trajectories of the ask not yet told (saved with the state)

    # ------------------------------------------------------------------ policy
    def probs(self) -> Tensor:
        with torch.no_grad():
            return pair_probs(self.first, self.second, self.config.normalization)

    def policy(self, meta: dict[str, Any] | None = None) -> Policy:
        return Policy.from_params(self.space, self.first.detach(), self.second.detach(),
                                  self.config.normalization, meta)

    def params(self) -> Tensor:
        """The policy's parameters as one flat vector (what a result averaged over loops averages)."""
        return torch.cat([self.first.detach().flatten(), self.second.detach().flatten()]).clone()

    def set_params(self, flat: Tensor) -> None:
        k = self.space.num_ops
        with torch.no_grad():
            self.first.copy_(flat[:k])
            self.second.copy_(flat[k:].view(k, k))

    def _lr(self, loop: int) -> float:
        c = self.config
        if loop >= c.warmup_loops or c.warmup_loops <= 1:
            return c.lr
        return c.warmup_lr + (c.lr - c.warmup_lr) * loop / (c.warmup_loops - 1)

    # ------------------------------------------------------------------ update
    def _check_inputs(self, rewards: Sequence[float], counts: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """Rewards (M,) and pair counts (M, K, K) as float64 tensors, or :class:`UpdateRefused`
        naming what is wrong: lengths, non-finite or absurdly large rewards, counts that are not
        (K, K), not finite, negative, or count no pair."""
        if len(rewards) == 0 or len(rewards) != len(counts):
            raise UpdateRefused(f"an update needs one count matrix per reward, got {len(rewards)} and {len(counts)}")
        try:
            r = torch.tensor([float(x) for x in rewards], dtype=torch.float64)
        except (TypeError, ValueError):
            raise UpdateRefused(f"rewards must be numbers, got {list(rewards)[:8]!r}") from None
        if not torch.isfinite(r).all():
            raise UpdateRefused(f"rewards must be finite, got {r.tolist()}")
        if (r.abs() > MAX_ABS_REWARD).any():
            raise UpdateRefused(f"reward {float(r.abs().max()):.3g} is out of range (|reward| <= "
                                f"{MAX_ABS_REWARD:.0e}: an accuracy or a negative loss)")
        k = self.space.num_ops
        try:
            n = torch.stack([torch.as_tensor(c, dtype=torch.float64).reshape(k, k) for c in counts])
        except (RuntimeError, TypeError, ValueError):
            raise UpdateRefused(f"pair counts must be {k} x {k} matrices of numbers") from None
        if not torch.isfinite(n).all():
            raise UpdateRefused("pair counts must be finite")
        if (n < 0).any() or (n.sum(dim=(1, 2)) <= 0).any():
            raise UpdateRefused("pair counts must be non-negative and count at least one pair per trajectory")
        return r, n

    def _check_which(self, m: int, which: Sequence[int] | None) -> list[int]:
        """The trajectory indices of a tell: distinct, each one the last :meth:`ask` handed out."""
        if self.asked is None:
            raise UpdateRefused("tell() without a preceding ask(): there are no trajectories to hear about")
        which = list(range(m)) if which is None else list(which)
        if len(which) != m:
            raise UpdateRefused(f"tell needs one trajectory index per reward, got {len(which)} and {m}")
        if any(not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < self.asked for i in which):
            raise UpdateRefused(f"trajectory indices {which} were not all asked: the last ask handed out "
                                f"{self.asked} (0 to {self.asked - 1})")
        if len(set(which)) != len(which):
            raise UpdateRefused(f"trajectory indices {which} name a trajectory twice")
        return which

    def _advantages(self, r: Tensor, n: Tensor) -> tuple[Tensor, list[float]]:
        mean = float(r.mean())
        m = self.config.baseline_momentum
        self.baseline = mean if self.baseline is None else m * self.baseline + (1 - m) * mean
        adv = self.config.advantage_scale * (r - self.baseline)
        per_pair = adv.view(-1, 1, 1) * n / n.sum(dim=(1, 2), keepdim=True)
        return per_pair, adv.tolist()

    # ------------------------------------------------------------------ ask / tell
    def ask(self, m: int) -> list[Policy]:
        """The sampling policies of the next loop's ``m`` trajectories: the current policy, m times."""
        if m < 1:
            raise AWSAAError(f"ask needs at least one trajectory, got {m}")
        pol = self.policy()
        self.asked = m
        return [pol] * m

    def tell(self, rewards: Sequence[float], counts: Sequence[Tensor],
             which: Sequence[int] | None = None) -> UpdateStats:
        """Rewards and pair counts of the trajectories :meth:`ask` gave, in its order; ``which``
        names the ones present when some failed (indices into that order).

        Refused (:class:`UpdateRefused`, the agent unchanged) when the inputs are bad (see
        :meth:`update`) or name trajectories the last ask did not hand out."""
        which = self._check_which(len(rewards), which)
        stats = self.update(rewards, counts, which)
        self.asked = None
        return stats

    def update(self, rewards: Sequence[float], counts: Sequence[Tensor],
               which: Sequence[int] | None = None) -> UpdateStats:
        """One loop's update from ``rewards[m]`` and the (K, K) pair usage ``counts[m]``, as one
        transaction: the inputs are checked (lengths; finite rewards of at most
        :data:`MAX_ABS_REWARD`; finite, non-negative counts) and so is the result (parameters,
        baseline, optimizer state, statistics all finite); when either fails the agent is put
        back exactly as it was and :class:`UpdateRefused` says why, naming the config keys that
        set the step's size. A refused update never reaches a saved state."""
        r, n = self._check_inputs(rewards, counts)
        saved = self.state_dict()
        try:
            try:
                stats = self._update(r, n, None if which is None else list(which))
                bad = self._non_finite(stats)
            except AWSAAError:  # a policy built from parameters that overflowed
                bad = "the policy's parameters"
            if bad:
                raise UpdateRefused(f"the update from rewards {[round(x, 4) for x in r.tolist()]} makes {bad} "
                                    f"non-finite; {self._step_keys()} set its size. The agent keeps its last state")
        except BaseException:
            self.load_state_dict(saved)
            raise
        return stats

    def skip(self) -> None:
        """A loop with no reward to hear (every trajectory failed): counted, the agent unchanged."""
        self.loops_done += 1
        self.asked = None

    def _step_keys(self) -> str:
        return "agent_config.advantage_scale and agent_config.lr"

    def _non_finite(self, stats: UpdateStats) -> str | None:
        """The first part of the agent (or of ``stats``) that is not finite, or None."""
        for name, value in self._finite_parts().items():
            if isinstance(value, Tensor) and not torch.isfinite(value).all():
                return name
            if isinstance(value, float) and not math.isfinite(value):
                return name
        for name in ("mean_reward", "baseline", "kl", "entropy", "lr"):
            if not math.isfinite(getattr(stats, name)):
                return f"the update's {name}"
        if not all(math.isfinite(a) for a in stats.advantages):
            return "the advantages"
        return None

    def _finite_parts(self) -> dict[str, Any]:
        parts: dict[str, Any] = {"the policy's parameters (first)": self.first.detach(),
                                 "the policy's parameters (second)": self.second.detach(),
                                 "the baseline": float(self.baseline) if self.baseline is not None else 0.0}
        for i, st in enumerate(self.optimizer.state.values()):
            for key, value in st.items():
                parts[f"the optimizer's {key} [{i}]"] = value
        return parts

    def _update(self, r: Tensor, n: Tensor, which: list[int] | None) -> UpdateStats:
        """One loop: update the baseline, then the policy parameters."""
        per_pair, adv = self._advantages(r, n)
        lr = self._lr(self.loops_done)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        old = self.probs()
        steps = self._step(per_pair, old)
        new = self.probs()
        kl = float((old * (old.log() - new.log())).sum())
        self.loops_done += 1
        entropy = float(-(new * new.log()).sum())
        assert self.baseline is not None  # set by _advantages
        return UpdateStats(self.loops_done, float(r.mean()), self.baseline, adv, steps, kl, entropy, lr)

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
                "baseline": self.baseline, "loops_done": self.loops_done, "asked": self.asked}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("agent") != self.name:
            raise AWSAAError(f"agent state is for {state.get('agent')!r}, not {self.name!r}")
        if list(state["ops"]) != list(self.space.names):
            raise AWSAAError("agent state was made over a different search space")
        with torch.no_grad():
            self.first.copy_(state["first"])
            self.second.copy_(state["second"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.baseline = state["baseline"]
        self.loops_done = int(state["loops_done"])
        self.asked = state.get("asked")


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


class ESAgent(_Agent):
    """Antithetic evolution strategies on op-level logits (``agent: es``).

    PPO and REINFORCE give every trajectory of a loop the same policy, so rewards differ only
    through pair-count noise. ES instead *varies* the sampling policy across the loop, as
    evolution strategies do, and reads the reward differences that variation causes.

    Parameters: ``theta`` in R^K (``tie: true``: the same logits for both ops of a pair,
    ``p(i, j) = softmax(theta)_i softmax(theta)_j``, K = 36 numbers) or ``first`` in R^K and
    ``second`` in R^(K x K) (``tie: false``, 1,332 numbers, the paper's factorization).

    A loop with M = 2n trajectories: draw ``eps_1 .. eps_n ~ N(0, I)`` (seeded by the agent's
    ``seed`` and the loop number, so asking again gives the same policies); trajectory ``2k`` samples
    from ``theta + sigma eps_k`` and ``2k + 1`` from ``theta - sigma eps_k``. With
    ``d_k = R_2k - R_2k+1``, the estimate of the reward's gradient (up to scale) is::

        g = (1 / n) sum_k (d_k / s) eps_k,     theta <- theta + es_lr * g

    where ``s`` is a running root-mean-square of the ``d_k`` (momentum ``scale_momentum``,
    over all loops so far). Dividing by ``s`` makes ``es_lr`` independent of the reward's
    units, and it fixes how far pure noise moves the policy: with rewards that carry no
    signal, each logit random-walks with a step of SD about ``es_lr / sqrt(n)``. An
    antithetic pair whose other half failed is dropped. No baseline is needed (differences
    of a pair cancel it); ``baseline`` is reported as a running mean of the rewards. Use it
    with common random numbers (``finetune.common_random_numbers``): both halves of a pair
    then see the same data order, crops, flips, Cutout and signs, and differ in the policy.
    """

    name = "es"

    def __init__(self, space: SearchSpace | None = None, config: AgentConfig | None = None, seed: int = 0,
                 **overrides) -> None:
        super().__init__(space, config, seed, **overrides)
        self.config.normalization = "softmax"  # logits (the copy made above)
        k = self.space.num_ops
        self.theta = torch.zeros(k if self.config.tie else k + k * k, dtype=torch.float64)
        self.scale: float | None = None

    def _split(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        k = self.space.num_ops
        if self.config.tie:
            return theta, theta.expand(k, k)
        return theta[:k], theta[k:].view(k, k)

    def policy(self, meta: dict[str, Any] | None = None) -> Policy:
        return self._policy(self.theta, meta)

    def _policy(self, theta: Tensor, meta: dict[str, Any] | None = None) -> Policy:
        first, second = self._split(theta)
        return Policy.from_params(self.space, first, second.contiguous(), "softmax", meta)

    def probs(self) -> Tensor:
        return self.policy().probs()

    def _noise(self, pairs: int) -> Tensor:
        return self.noise_at(self.loops_done, pairs)

    def noise_at(self, loop: int, pairs: int) -> Tensor:
        """The perturbations of loop ``loop`` (0-based), one generator per antithetic pair: pair
        k's draw does not depend on how many pairs are drawn (torch fills a tensor of normals in
        blocks). A function of the agent's seed alone, so the report can rebuild every step."""
        out = []
        for k in range(pairs):
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + loop) * 1009 + k)
            out.append(torch.randn(self.theta.numel(), generator=g, dtype=torch.float64))
        return torch.stack(out)

    def ask(self, m: int) -> list[Policy]:
        if m < 2 or m % 2:
            raise AWSAAError(f"the es agent needs an even number of trajectories (antithetic pairs), got {m}")
        eps = self._noise(m // 2) * self.config.sigma
        out: list[Policy] = []
        for e in eps:
            out += [self._policy(self.theta + e), self._policy(self.theta - e)]
        self.asked = m
        return out

    def _update(self, r: Tensor, n: Tensor, which: list[int] | None) -> UpdateStats:
        which = list(range(len(r))) if which is None else which
        got = dict(zip(which, r.tolist(), strict=True))
        pairs = max(which) // 2 + 1
        eps = self._noise(pairs)
        diffs = [(k, got[2 * k] - got[2 * k + 1]) for k in range(pairs) if 2 * k in got and 2 * k + 1 in got]
        mean = float(r.mean())
        mom = self.config.baseline_momentum
        self.baseline = mean if self.baseline is None else mom * self.baseline + (1 - mom) * mean
        old = self.probs()
        adv: list[float] = []
        if diffs:
            self.scale = _running_rms(self.scale, [d for _, d in diffs], self.config.scale_momentum)
            s = max(self.scale, 1e-6)
            adv = [d / s for _, d in diffs]
            g = sum(a * eps[k] for a, (k, _) in zip(adv, diffs, strict=True)) / len(diffs)
            self.theta = self.theta + self.config.es_lr * g
        new = self.probs()
        self.loops_done += 1
        kl = float((old * (old.log() - new.log())).sum())
        entropy = float(-(new * new.log()).sum())
        return UpdateStats(self.loops_done, mean, float(self.baseline), adv, 1 if diffs else 0, kl, entropy,
                           self.config.es_lr)

    def _step_keys(self) -> str:
        return "agent_config.es_lr and agent_config.sigma"

    def _finite_parts(self) -> dict[str, Any]:
        return {"the policy's logits (theta)": self.theta, "the running scale": float(self.scale or 0.0),
                "the baseline": float(self.baseline) if self.baseline is not None else 0.0}

    def params(self) -> Tensor:
        return self.theta.clone()

    def set_params(self, theta: Tensor) -> None:
        self.theta = theta.detach().clone().to(torch.float64)

    def state_dict(self) -> dict[str, Any]:
        return {"agent": self.name, "config": asdict(self.config), "ops": list(self.space.names),
                "theta": self.theta.clone(), "rms": self.scale, "baseline": self.baseline,
                "loops_done": self.loops_done, "asked": self.asked}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("agent") != self.name:
            raise AWSAAError(f"agent state is for {state.get('agent')!r}, not {self.name!r}")
        if list(state["ops"]) != list(self.space.names):
            raise AWSAAError("agent state was made over a different search space")
        if state["theta"].shape != self.theta.shape:
            raise AWSAAError(f"agent state has {state['theta'].numel()} parameters, this config {self.theta.numel()}")
        self.theta = state["theta"].clone()
        self.scale, self.baseline = state["rms"], state["baseline"]
        self.loops_done = int(state["loops_done"])
        self.asked = state.get("asked")


def _running_rms(rms: float | None, values: Sequence[float], momentum: float) -> float:
    """The running root-mean-square ``sqrt(momentum * rms^2 + (1 - momentum) * mean(v^2))``
    (the mean alone at the start), computed relative to the largest magnitude so that no square
    overflows: finite for any finite inputs, e.g. differences of 1e200."""
    top = max([abs(v) for v in values] + [rms or 0.0])
    if top == 0:
        return 0.0
    sq = sum((v / top) ** 2 for v in values) / len(values)
    if rms is not None:
        sq = momentum * (rms / top) ** 2 + (1 - momentum) * sq
    return top * math.sqrt(sq)
