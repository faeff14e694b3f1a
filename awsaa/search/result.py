"""Which policy a search returns (``result`` in the search config).

* ``best_loop`` (the paper's rule, the default for PPO and REINFORCE): the policy of the loop
  with the highest mean reward, taken before that loop's update.
* ``average`` (the default for ES): the policy whose parameters are the mean of the
  parameters after each of the last ``result_loops`` updates. Under noisy rewards the loop
  with the highest mean reward is mostly the luckiest one (in the demo it was loop 1, the
  uniform policy before any update); averaging the last iterates keeps what the updates agree
  on and cancels part of their random walk.
* ``final``: the policy after the last update.

``auto`` picks ``best_loop`` for PPO and REINFORCE and ``average`` for ES.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from awsaa.config import RESULT_RULES
from awsaa.errors import AWSAAError

RULES = RESULT_RULES  # the names awsaa.config accepts


def resolve(rule: str, agent_name: str) -> str:
    if rule not in RULES:
        raise AWSAAError(f"result must be one of {', '.join(RULES)}, got {rule!r}")
    if rule == "auto":
        return "average" if agent_name == "es" else "best_loop"
    return rule


class ResultTracker:
    """Follows a search loop by loop and knows its result under ``rule``."""

    def __init__(self, rule: str, loops: int = 5) -> None:
        self.rule, self.loops = rule, max(1, loops)
        self.best: dict[str, Any] | None = None  # {"loop", "mean_reward", "params"}
        self.recent: list[Tensor] = []  # parameters after the last `loops` updates

    def observe(self, loop: int, before: Tensor, after: Tensor, mean_reward: float | None) -> None:
        """Loop ``loop`` (from 1) ran with parameters ``before`` and updated them to ``after``."""
        if mean_reward is not None and (self.best is None or mean_reward > self.best["mean_reward"]):
            self.best = {"loop": loop, "mean_reward": float(mean_reward), "params": before.clone()}
        self.recent = [*self.recent, after.clone()][-self.loops:]

    def params(self) -> Tensor | None:
        if self.rule == "best_loop":
            return self.best["params"] if self.best is not None else None
        if not self.recent:
            return None
        if self.rule == "final":
            return self.recent[-1]
        return torch.stack(self.recent).mean(0)

    def policy(self, agent: Any, meta: dict[str, Any] | None = None):
        """The result as a policy of ``agent``'s kind (the agent itself is left as it was)."""
        params = self.params()
        if params is None:
            return None
        now = agent.params()
        agent.set_params(params)
        try:
            return agent.policy(meta)
        finally:
            agent.set_params(now)

    def state_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "loops": self.loops, "best": self.best, "recent": list(self.recent)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.recent = state["best"], list(state["recent"])
