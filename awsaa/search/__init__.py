"""The AWS search: agents (pure torch), the two stages, and the search state."""

from awsaa.search.agents import AgentConfig, PPOAgent, REINFORCEAgent, make_agent

__all__ = ["AgentConfig", "PPOAgent", "REINFORCEAgent", "make_agent"]
