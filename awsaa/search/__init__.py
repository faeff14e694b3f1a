"""The AWS search: agents (pure torch), the two stages, the loop's scheduler, the search state
and its report, and :func:`run`, a whole search from Python (:mod:`awsaa.search.runs`)."""

from awsaa.search.agents import AgentConfig, ESAgent, PPOAgent, REINFORCEAgent, UpdateStats
from awsaa.search.registry import AGENTS, Agent, check_agent, list_agents, make_agent, register_agent
from awsaa.search.runs import Executor, InProcess, LoopRecord, SearchResult, run

__all__ = ["AGENTS", "Agent", "AgentConfig", "ESAgent", "Executor", "InProcess", "LoopRecord", "PPOAgent",
           "REINFORCEAgent", "SearchResult", "UpdateStats", "check_agent", "list_agents", "make_agent",
           "register_agent", "run"]
