"""The AWS search: agents (pure torch), the two stages, the search state and its report."""

from awsaa.search.agents import AGENTS, AgentConfig, ESAgent, PPOAgent, REINFORCEAgent, make_agent

__all__ = ["AGENTS", "AgentConfig", "ESAgent", "PPOAgent", "REINFORCEAgent", "make_agent"]
