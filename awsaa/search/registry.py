"""The agents' registry, in the style of the model zoo's: the :class:`Agent` protocol (what the
search asks of an agent), the built-in agents (:mod:`awsaa.search.agents`) and the ones a
user registers with :func:`register_agent`, and :func:`make_agent`, which builds one by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from torch import Tensor

from awsaa.augment.space import SearchSpace
from awsaa.config import SEED_END, AgentConfig, SearchConfig
from awsaa.errors import AWSAAError, check_int
from awsaa.policy import Policy
from awsaa.search.agents import ESAgent, PPOAgent, REINFORCEAgent, UpdateStats


@runtime_checkable
class Agent(Protocol):
    """What the search asks of an agent (every built-in one is one; yours may be too).

    Built as ``cls(space, config, seed)`` by :func:`make_agent`. Per loop the search calls
    ``ask(M)`` for the M trajectories' sampling policies, runs them, then ``tell(rewards,
    counts, which)`` with the rewards and (K, K) pair-count tensors of the trajectories that
    finished (``which``: their indices into the ask's order), or ``skip()`` when none did. It
    saves ``state_dict()`` after every loop (tensors and plain values only: it is loaded with
    ``torch.load(weights_only=True)``) and ``load_state_dict`` on ``--resume``. ``params`` /
    ``set_params`` (one flat vector) let a result rule average or pick the parameters of
    several loops; ``policy(meta)`` is the policy those parameters give. ``tell`` must leave the
    agent as it was when it raises (the search records the loop as failed and saves nothing)."""

    name: str
    space: SearchSpace
    loops_done: int
    baseline: float | None

    def ask(self, m: int) -> list[Policy]: ...

    def tell(self, rewards: Sequence[float], counts: Sequence[Tensor],
             which: Sequence[int] | None = None) -> UpdateStats: ...

    def skip(self) -> None: ...

    def policy(self, meta: dict[str, Any] | None = None) -> Policy: ...

    def params(self) -> Tensor: ...

    def set_params(self, flat: Tensor) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


AgentClass = Callable[..., Agent]
A = TypeVar("A", bound=AgentClass)

#: The registered agents by name: the built-in ones, then :func:`register_agent`'s.
AGENTS: dict[str, AgentClass] = {"ppo": PPOAgent, "reinforce": REINFORCEAgent, "es": ESAgent}
BUILT_IN_AGENTS = tuple(AGENTS)


def register_agent(name: str) -> Callable[[A], A]:
    """Decorator: register an agent class under ``name`` (once), as models are registered;
    a config's ``agent:`` may then name it. The class is built as ``cls(space, config, seed)``
    and must have the methods of :class:`Agent`. The Ray search hands the agents registered in
    the driver to its controller actor (by value, as Ray pickles a class), so one defined in a
    notebook works there too; a ``--resume`` from the command line cannot import it."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"an agent's name must be an identifier, got {name!r}")

    def deco(cls: A) -> A:
        if name in AGENTS:
            raise ValueError(f"agent {name!r} registered twice")
        missing = [m for m in ("ask", "tell", "skip", "policy", "params", "set_params", "state_dict",
                               "load_state_dict") if not callable(getattr(cls, m, None))]
        if missing:
            raise TypeError(f"agent {name!r} lacks {', '.join(missing)} (see awsaa.search.Agent)")
        AGENTS[name] = cls
        return cls

    return deco


def list_agents() -> list[str]:
    """The registered agent names, the built-in ones first."""
    return list(AGENTS)


def check_agent(cfg: SearchConfig) -> SearchConfig:
    """``cfg``, once its ``agent`` names a registered agent (a config's own check cannot: it is
    rebuilt in every Ray worker, where an agent registered in the driver is unknown)."""
    if cfg.agent not in AGENTS:
        raise AWSAAError(f"agent must be one of {', '.join(AGENTS)} (or one registered with "
                         f"awsaa.search.register_agent), got {cfg.agent!r}")
    return cfg


def make_agent(name: str, space: SearchSpace | None = None, config: AgentConfig | Mapping[str, Any] | None = None,
               seed: int = 0) -> Agent:
    """The agent registered as ``name`` (:data:`AGENTS`) over ``space`` with ``config``;
    ``seed`` feeds the agents that draw random numbers of their own (ES)."""
    if name not in AGENTS:
        raise AWSAAError(f"unknown agent {name!r}; choose from {', '.join(AGENTS)}")
    if isinstance(config, Mapping):  # the config's agent_config section as a dict
        config = AgentConfig(**config)
    elif config is not None and not isinstance(config, AgentConfig):
        raise TypeError(f"config must be an AgentConfig or a dict of its keys, got {type(config).__name__}")
    if space is not None and not isinstance(space, SearchSpace):
        raise TypeError(f"space must be a SearchSpace, got {type(space).__name__}")
    return AGENTS[name](space, config, check_int(seed, "seed", 0, SEED_END))


