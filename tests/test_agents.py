"""The agents with planted rewards: they must move probability toward rewarded pairs."""

import math

import pytest
import torch

from awsaa import AWSAAError, SearchSpace
from awsaa.search import PPOAgent, REINFORCEAgent

SPACE = SearchSpace.default()
K = SPACE.num_ops
CHOSEN = (SPACE.index("Rotate_9"), SPACE.index("Invert"))
UNIFORM = 1 / 1296


def trajectories(agent, g, m=8, images=4096):
    """M trajectories that each draw a pair per image from the agent's current policy."""
    flat = agent.probs().flatten()
    counts = []
    for _ in range(m):
        idx = torch.multinomial(flat, images, replacement=True, generator=g)
        counts.append(torch.bincount(idx, minlength=K * K).view(K, K).double())
    return counts


def planted(counts):
    """The trajectories that used the chosen pair more often get higher rewards."""
    return [80.0 + 5.0 * float(c[CHOSEN]) for c in counts]


def run(agent, loops, reward_fn, seed=0):
    g = torch.Generator().manual_seed(seed)
    trace = []
    for _ in range(loops):
        counts = trajectories(agent, g)
        agent.update(reward_fn(counts, g), counts)
        trace.append(float(agent.probs()[CHOSEN]))
    return trace


@pytest.mark.parametrize("agent_cls, factor", [(PPOAgent, 5), (REINFORCEAgent, 3)])
def test_rewarded_pair_gains_probability_and_keeps_gaining(agent_cls, factor):
    trace = run(agent_cls(SPACE), 60, lambda c, g: planted(c))
    assert trace[9] > UNIFORM and trace[29] > trace[9] and trace[59] > trace[29]
    assert trace[59] > factor * UNIFORM  # seen: PPO 6.5-8.4x, REINFORCE 4.4-4.7x over 5 seeds


def test_ppo_chosen_pair_becomes_the_most_likely():
    agent = PPOAgent(SPACE)
    run(agent, 60, lambda c, g: planted(c))
    (i, j, p), *_ = agent.policy().top(1)
    assert (i, j) == CHOSEN and p > 5 * UNIFORM


def test_rewards_that_ignore_the_pairs_leave_the_policy_near_uniform():
    """Pure noise: no pair is singled out. (Adam's steps have the same size whatever the
    gradient's, so the parameters random-walk by about the learning rate per step: over 60
    loops the entropy drifts ~5% below uniform's and the largest pair reaches ~3.5x uniform,
    seen over 5 seeds, against >6.5x for a planted signal in the same number of loops.)"""
    agent = PPOAgent(SPACE)
    run(agent, 60, lambda c, g: [90.0 + float(torch.randn(1, generator=g)) for _ in c], seed=1)
    assert agent.policy().entropy() > 0.93 * math.log(1296)
    assert agent.probs().max() < 5 * UNIFORM


def test_the_official_inverted_ratio_moves_the_wrong_way():
    """pi_old / pi_new (the released code) pushes probability away from the rewarded pair."""
    agent = PPOAgent(SPACE)
    agent.invert_ratio = True
    trace = run(agent, 60, lambda c, g: planted(c))
    assert trace[59] < 0.1 * UNIFORM and trace[59] < trace[9]  # seen: 0.010-0.018x uniform


def test_ppo_defaults_and_inner_loop():
    agent = PPOAgent(SPACE)
    c = agent.config
    assert (c.clip, c.max_inner_steps, c.kl_stop, c.baseline_momentum, c.advantage_scale) == (0.2, 5, 0.002, 0.9, 0.5)
    assert tuple(c.betas) == (0.5, 0.999) and c.normalization == "sigmoid"
    assert agent._lr(0) == 0.0125 and agent._lr(9) == pytest.approx(0.1) and agent._lr(50) == 0.1
    g = torch.Generator().manual_seed(0)
    counts = trajectories(agent, g)
    stats = agent.update(planted(counts), counts)
    assert 1 <= stats.inner_steps <= 5
    assert stats.kl > 0 and stats.lr == 0.0125


def test_baseline_is_updated_before_the_advantage():
    agent = PPOAgent(SPACE)
    ones = [torch.ones(K, K)] * 2
    s1 = agent.update([90.0, 92.0], ones)
    assert s1.baseline == 91.0 and s1.advantages == [-0.5, 0.5]  # first loop: b = mean(R)
    s2 = agent.update([95.0, 95.0], ones)
    assert s2.baseline == pytest.approx(0.9 * 91 + 0.1 * 95)  # updated first ...
    assert s2.advantages[0] == pytest.approx(0.5 * (95 - s2.baseline))  # ... then used


def test_per_pair_advantage_is_weighted_by_counts():
    agent = PPOAgent(SPACE)
    agent.baseline = 90.0
    counts = torch.zeros(K, K)
    counts[0, 1], counts[2, 3] = 3, 1
    per_pair, adv = agent._advantages([94.0], [counts])
    a = adv[0]
    assert per_pair[0, 0, 1] == pytest.approx(a * 0.75) and per_pair[0, 2, 3] == pytest.approx(a * 0.25)
    assert per_pair[0].sum() == pytest.approx(a)


def test_state_roundtrip_continues_identically():
    a = PPOAgent(SPACE)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        counts = trajectories(a, g)
        a.update(planted(counts), counts)
    b = PPOAgent(SPACE)
    b.load_state_dict(a.state_dict())
    counts = trajectories(a, g)
    sa, sb = a.update(planted(counts), counts), b.update(planted(counts), counts)
    assert sa == sb and torch.equal(a.first, b.first) and torch.equal(a.second, b.second)


def test_bad_updates_are_refused():
    agent = PPOAgent(SPACE)
    with pytest.raises(AWSAAError, match="finite"):
        agent.update([float("nan")], [torch.ones(K, K)])
    with pytest.raises(AWSAAError, match="one count matrix per reward"):
        agent.update([1.0, 2.0], [torch.ones(K, K)])
    with pytest.raises(AWSAAError, match="at least one pair"):
        agent.update([1.0], [torch.zeros(K, K)])
    assert agent.loops_done == 0 and agent.baseline is None
