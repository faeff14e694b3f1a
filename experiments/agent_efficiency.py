"""Agents against the synthetic reward (awsaa/search/synthetic.py): how much true reward each
gains in a budget, beside its null control (rewards shuffled within each loop), over seeds.

    .venv/bin/python experiments/agent_efficiency.py --noise 0.49 --loops 30 --trajectories 4

Qualities shaped like the measured Fashion-MNIST proxy (``SyntheticReward.families``, a
``--spread`` of 1.5 points between the best and worst op family). Prints, per agent and
control: the true-reward gain of the result (mean ± SD over seeds), its KL from uniform, the
destructive family's mass relative to uniform.
"""

from __future__ import annotations

import argparse
import statistics as st

import torch

from awsaa.augment.space import SearchSpace
from awsaa.search.agents import AgentConfig
from awsaa.search.registry import make_agent
from awsaa.search.report import family_masses, kl_from_uniform
from awsaa.search.result import ResultTracker, resolve
from awsaa.search.synthetic import SyntheticReward, simulate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--noise", type=float, default=0.49)
    p.add_argument("--spread", type=float, default=1.5)
    p.add_argument("--loops", type=int, default=30)
    p.add_argument("--trajectories", type=int, default=4)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--agents", default="ppo,reinforce,es")
    p.add_argument("--set", nargs="*", default=[], help="AgentConfig overrides, e.g. sigma=2 es_lr=0.2")
    args = p.parse_args()
    torch.set_num_threads(1)
    space = SearchSpace.default()
    overrides = {k: float(v) for k, v in (x.split("=") for x in args.set)}
    reward = SyntheticReward.families(space, args.spread, args.noise)
    best = float(reward.worth().max()) - reward.true_reward(make_agent("ppo", space).policy())
    print(f"noise SD {args.noise}, {args.loops} loops x {args.trajectories}, {args.seeds} seeds; "
          f"the best possible gain is {best:.3f} points")
    print(f"{'agent':<10} {'control':<8} {'gain of the result':>20} {'KL':>12} {'destructive':>12}")
    for name in args.agents.split(","):
        for control in ("none", "shuffle"):
            gains, kls, destr = [], [], []
            for seed in range(args.seeds):
                agent = make_agent(name, space, AgentConfig(**overrides), seed=seed)
                tracker = ResultTracker(resolve("auto", name), 5)
                curve = simulate(agent, reward, args.loops, args.trajectories, seed=seed, control=control,
                                 tracker=tracker)
                result = tracker.policy(agent)
                gains.append(reward.true_reward(result) - curve[0])
                kls.append(kl_from_uniform(result))
                destr.append(family_masses(result)["destructive"])
            print(f"{name:<10} {control:<8} {st.mean(gains):>+12.3f} ± {st.stdev(gains):.3f} "
                  f"{st.mean(kls):>8.3f} ± {st.stdev(kls):.2f} {st.mean(destr):>8.2f}x ± {st.stdev(destr):.2f}")


if __name__ == "__main__":
    main()
