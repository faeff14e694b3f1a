"""How far a searched policy moved from uniform, and whether that is more than noise.

* :func:`family_masses`: the probability mass of each op family (an op's mass is the mean of
  its first- and second-op marginals) relative to uniform's (1.00 = no change).
* :func:`kl_from_uniform`: KL(policy || uniform) in nats.
* :func:`null_kl`: how far the same agent, with the same budget and result rule, moves on
  rewards that carry no signal (pure Gaussian noise of the run's own within-loop spread),
  simulated with :mod:`awsaa.search.synthetic`; the summary's verdict compares the found
  policy's KL against the 95th percentile of that.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from awsaa.policy import Policy

FAMILIES = ("destructive", "strong geometric", "mild geometric", "strong colour", "mild colour", "histogram")


def family_of(op: str) -> str:
    """The family of op ``op`` (a name of :class:`~awsaa.augment.space.SearchSpace`)."""
    base, _, level = op.partition("_")
    if base in ("Invert", "Solarize"):
        return "destructive"
    if base in ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"):
        return "mild geometric" if level == "3" else "strong geometric"
    if base in ("AutoContrast", "Equalize"):
        return "histogram"
    return "strong colour" if level == "9" else "mild colour"  # Brightness, Color, Contrast, Sharpness, Posterize


def op_mass(policy: Policy) -> torch.Tensor:
    """(K,) mass of each op: the mean of its first- and second-op marginals; sums to 1."""
    p = policy.probs()
    return (p.sum(1) + p.sum(0)) / 2


def family_masses(policy: Policy) -> dict[str, float]:
    """Each family's mass relative to the uniform policy's (1.0: unchanged)."""
    mass = op_mass(policy)
    k = policy.space.num_ops
    out = {}
    for fam in FAMILIES:
        idx = [i for i, n in enumerate(policy.space.names) if family_of(n) == fam]
        if idx:
            out[fam] = float(mass[idx].sum()) / (len(idx) / k)
    return out


def kl_from_uniform(policy: Policy) -> float:
    return max(0.0, math.log(policy.space.num_pairs) - policy.entropy())


def within_loop_sd(history: list[dict[str, Any]]) -> float | None:
    """The pooled standard deviation of the rewards within a loop (loops with >= 2 rewards)."""
    ss, dof = 0.0, 0
    for h in history:
        r = h.get("rewards") or []
        if len(r) >= 2:
            m = sum(r) / len(r)
            ss += sum((x - m) ** 2 for x in r)
            dof += len(r) - 1
    return math.sqrt(ss / dof) if dof else None


def null_kl(agent_name: str, agent_config: Any, loops: int, trajectories: int, noise_sd: float,
            result: str, result_loops: int, images: int = 8000, runs: int = 40, seed: int = 0) -> list[float]:
    """KL from uniform of the result of ``runs`` simulated searches on pure-noise rewards."""
    from awsaa.augment.space import SearchSpace
    from awsaa.search.agents import make_agent
    from awsaa.search.result import ResultTracker
    from awsaa.search.synthetic import SyntheticReward, simulate

    space = SearchSpace.default()
    reward = SyntheticReward(torch.zeros(space.num_ops), noise_sd, images)
    out = []
    for run in range(runs):
        agent = make_agent(agent_name, space, agent_config, seed=10_000 + run)
        tracker = ResultTracker(result, result_loops)
        simulate(agent, reward, loops, trajectories, seed=seed * 100_003 + run, tracker=tracker)
        out.append(kl_from_uniform(tracker.policy(agent)))
    return out


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]
