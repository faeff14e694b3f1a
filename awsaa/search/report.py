"""How far a searched policy moved from uniform, and whether that is more than noise.

* :func:`family_masses`: the probability mass of each op family (an op's mass is the mean of
  its first- and second-op marginals) relative to uniform's (1.00 = no change).
* :func:`kl_from_uniform`: KL(policy || uniform) in nats.
* :func:`null_kl`: how far the same agent, with the same budget and result rule, moves on
  rewards that carry no signal (pure Gaussian noise of the run's own within-loop spread),
  simulated with :mod:`awsaa.search.synthetic`; the summary's verdict for PPO and REINFORCE
  compares the found policy's KL against the 95th percentile of that.
* :func:`es_sign_flip`: for the ES agent, an exact test of whether the steps it took pointed
  the same way more than chance would have them: the summary's verdict for ES.
* :func:`verdict`: the one line a search ends with, from these.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from awsaa.augment.space import FAMILIES, SearchSpace, family_of
from awsaa.policy import Policy
from awsaa.search.agents import ESAgent
from awsaa.search.registry import make_agent
from awsaa.search.result import ResultTracker
from awsaa.search.synthetic import SyntheticReward, simulate

__all__ = ["FAMILIES", "es_sign_flip", "es_steps", "family_masses", "family_of", "kl_from_uniform", "null_kl",
           "op_mass", "quantile", "sign_flip_p", "verdict", "within_loop_sd"]

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
    """The pooled standard deviation of the rewards within a loop (loops with >= 2 rewards): of
    what the agent heard (with ``nas``, each policy's mean over the loop's architectures)."""
    ss, dof = 0.0, 0
    for h in history:
        r = h.get("rewards") or []
        if "nas" in h:  # NAS + AWS: what the policy agent heard, one mean per policy of the grid
            r = [x for x in h["nas"]["policy_rewards"] if x is not None]
        if len(r) >= 2:
            m = sum(r) / len(r)
            ss += sum((x - m) ** 2 for x in r)
            dof += len(r) - 1
    return math.sqrt(ss / dof) if dof else None


def null_kl(agent_name: str, agent_config: Any, loops: int, trajectories: int, noise_sd: float,
            result: str, result_loops: int, images: int = 8000, runs: int = 40, seed: int = 0) -> list[float]:
    """KL from uniform of the result of ``runs`` simulated searches on pure-noise rewards."""
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


def es_steps(history: list[dict[str, Any]], agent_config: Any, seed: int) -> torch.Tensor:
    """(S, D) every step an ES search took, one row per antithetic pair it heard:
    ``(advantage / n) * eps`` (docs/design.md, section 3), rebuilt from history.jsonl's
    advantages (the normalized reward differences the agent was told, after any control) and
    the perturbations, which depend on the agent's seed alone. Their sum is the run's whole
    displacement in parameter space divided by ``es_lr``."""
    agent = ESAgent(None, agent_config, seed=seed)
    rows = []
    for t, h in enumerate(history):
        if "nas" in h:  # NAS + AWS: the agent heard one reward per policy of the grid (a column's mean)
            done = {p for p, r in enumerate(h["nas"]["policy_rewards"]) if r is not None}
            m = len(h["nas"]["policy_rewards"])
        else:
            done = {d["traj"] for d in h.get("details", []) if d.get("reward") is not None}
            m = int(h["trajectories"])
        pairs = [k for k in range(m // 2) if 2 * k in done and 2 * k + 1 in done]
        adv = h.get("advantages") or []
        if len(adv) != len(pairs):  # a loop whose trajectories all failed: no step
            continue
        eps = agent.noise_at(t, m // 2)
        rows += [a * eps[k] / len(pairs) for a, k in zip(adv, pairs, strict=True)]
    return torch.stack(rows) if rows else torch.zeros(0, agent.theta.numel(), dtype=torch.float64)


def sign_flip_p(steps: torch.Tensor, flips: int = 4000, seed: int = 0) -> float:
    """p-value of ``|sum(steps)|^2`` against the same steps with random signs.

    If the rewards carry no information about the policy, the two halves of an antithetic
    pair are exchangeable, so each step's sign is a fair coin independent of everything else
    (its size, the running scale and the perturbations do not depend on it); the run then
    random-walks, and its displacement is no larger than with the signs flipped at random.
    Steps that keep pointing the same way (the rewards favour the same ops loop after loop)
    make the displacement larger. Exact for any noise level; (1 + #{flipped >= observed}) /
    (1 + flips)."""
    if len(steps) < 2:
        return 1.0
    observed = float(steps.sum(0).norm() ** 2)
    g = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (flips, len(steps)), generator=g).to(steps.dtype) * 2 - 1
    null = (signs @ steps).norm(dim=1) ** 2
    return (1 + int((null >= observed * (1 - 1e-12)).sum())) / (1 + flips)


def es_sign_flip(history: list[dict[str, Any]], agent_config: Any, seed: int, flips: int = 4000) -> tuple[float, int]:
    """The sign-flip test of an ES run: (p-value, number of steps)."""
    steps = es_steps(history, agent_config, seed)
    return sign_flip_p(steps, flips), len(steps)


def verdict(state: Any, kl: float) -> str:
    """One line: did the search move more than it would on rewards that carry no signal?

    ES: the sign-flip test of its steps (:func:`sign_flip_p`, exact at any
    noise level). PPO and REINFORCE (whose loops all sample one policy, so there is no pair to
    flip): did the result move further from uniform than the same agent, budget and rule move
    on pure-noise rewards of this run's own within-loop spread (simulated)? The within-loop
    spread includes whatever the policy changes within a loop (ES), so the null is, if
    anything, generous; the simulation draws at most 8,000 pairs a trajectory and runs 10-40
    searches (fewer for long searches: about 20,000 simulated trajectories in all)."""

    cfg = state.cfg
    if cfg.nas is not None and cfg.nas.learn == "arch":  # nothing searched the policy: nothing to test
        fixed = "nas.policy's" if cfg.nas.policy is not None else "the agent's initial one"
        return f"verdict: none for the policy, which was not searched (nas.learn arch: {fixed}, fixed)"
    if cfg.agent == "es":
        p, n = es_sign_flip(state.history, cfg.agent_config, cfg.seed)
        where = (f"p = {p:.3g} that its {n} steps would line up this well with random signs (sign-flip test, "
                 f"docs/design.md section 3)")
        if n < 2 or p >= 0.05:
            return f"verdict: the policy did NOT move more than a null run would: {where}"
        return f"verdict: the policy moved further than a null run would, its steps kept pointing one way: {where}"
    sd = within_loop_sd(state.history)
    if sd is None or sd == 0:
        return "verdict: no null comparison (fewer than 2 rewards per loop)"
    images = [d["images"] for h in state.history for d in h["details"] if d.get("images")]
    heard = cfg.policies_per_loop()  # rewards the agent heard per loop
    runs = max(10, min(40, 20_000 // max(1, state.loops_done * heard)))
    per_traj = min(8000, round(sum(images) / len(images))) if images else 8000
    null = null_kl(cfg.agent, cfg.agent_config, state.loops_done, heard, sd, state.rule,
                   cfg.result_loops, images=per_traj, runs=runs)
    q95 = quantile(null, 0.95)
    where = (f"KL {kl:.4f} vs {q95:.4f}, the 95th percentile of {runs} simulated null runs (same agent, "
             f"{state.loops_done} loops x {heard}, pure-noise rewards of SD {sd:.2f})")
    if kl <= q95:
        return f"verdict: the policy did NOT move more than a null run would: {where}"
    return f"verdict: the policy moved further than a null run would: {where}"
