"""A synthetic reward for judging agents without training anything (tests, the null check
of a search's summary, ``experiments/agent_efficiency.py``).

Each op ``i`` has a quality ``q_i``; a sub-policy ``(i, j)`` is worth ``(q_i + q_j) / 2``. A
trajectory draws ``images`` pairs from its sampling policy, and its reward is the mean worth
of the pairs it drew plus Gaussian noise of SD ``noise_sd`` (the spread of real rewards under
one fixed policy, measured by ``experiments/reward_noise.py``). The *true* reward of a policy
is its expected worth, ``sum_ij p_ij (q_i + q_j) / 2``: what a search should raise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from awsaa.augment.space import family_of
from awsaa.policy import Policy


@dataclass
class SyntheticReward:
    qualities: Tensor  # (K,) points of reward per op
    noise_sd: float
    images: int = 8000  # pairs drawn per trajectory (images x fine-tune epochs)

    def worth(self) -> Tensor:
        q = self.qualities.to(torch.float64)
        return (q.view(-1, 1) + q.view(1, -1)) / 2

    def true_reward(self, policy: Policy) -> float:
        return float((policy.probs() * self.worth()).sum())

    def __call__(self, policy: Policy, generator: torch.Generator) -> tuple[float, Tensor]:
        """(reward, (K, K) pair counts) of one trajectory sampled from ``policy``."""
        k = policy.space.num_ops
        idx = torch.multinomial(policy.probs().flatten().float(), self.images, replacement=True,
                                generator=generator)
        counts = torch.bincount(idx, minlength=k * k).view(k, k)
        mean_worth = float((counts.to(torch.float64) * self.worth()).sum()) / self.images
        return mean_worth + self.noise_sd * float(torch.randn((), generator=generator)), counts

    @classmethod
    def families(cls, space, spread: float, noise_sd: float, images: int = 8000) -> SyntheticReward:
        """Qualities shaped like the measured proxy rewards on Fashion-MNIST (docs/design.md):
        destructive ops (Invert, Solarize) worst, strong geometric ops next, mild colour ops best;
        ``spread`` points between the best and the worst family."""
        q = torch.tensor([_family_quality(n) for n in space.names], dtype=torch.float64)
        return cls(q * spread, noise_sd, images)


def _family_quality(name: str) -> float:
    return {"destructive": -1.0, "strong geometric": -0.5, "mild geometric": -0.1, "histogram": -0.2,
            "mild colour": 0.0, "strong colour": -0.3}[family_of(name)]


def simulate(agent, reward: SyntheticReward, loops: int, trajectories: int, seed: int = 0,
             control: str = "none", tracker=None, history: list | None = None) -> list[float]:
    """Run ``agent`` for ``loops`` x ``trajectories`` against ``reward``; returns the true
    reward of the agent's current policy after each loop (index 0: before any update).
    ``control="shuffle"`` permutes each loop's rewards across its trajectories (a null
    control); a :class:`~awsaa.search.result.ResultTracker` given as ``tracker`` follows the run;
    a list given as ``history`` gets, per loop, the fields of history.jsonl that the report
    reads (trajectories, each one's reward, the advantages the agent was told)."""
    g = torch.Generator().manual_seed(seed)
    curve = [reward.true_reward(agent.policy())]
    for loop in range(loops):
        before = agent.params()
        results = [reward(p, g) for p in agent.ask(trajectories)]
        rewards = [r for r, _ in results]
        heard = rewards
        if control == "shuffle":
            heard = [rewards[i] for i in torch.randperm(len(rewards), generator=g).tolist()]
        stats = agent.tell(heard, [c for _, c in results])
        if history is not None:
            history.append({"loop": loop + 1, "trajectories": trajectories, "rewards": rewards,
                            "details": [{"traj": i, "reward": r} for i, r in enumerate(rewards)],
                            "advantages": list(stats.advantages)})
        if tracker is not None:
            tracker.observe(loop + 1, before, agent.params(), sum(rewards) / len(rewards))
        curve.append(reward.true_reward(agent.policy()))
    return curve
