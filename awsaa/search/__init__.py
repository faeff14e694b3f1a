"""The AWS search: agents (pure torch), the two stages, the search state and its report."""

from awsaa.search.agents import (
    AGENTS,
    Agent,
    AgentConfig,
    ESAgent,
    PPOAgent,
    REINFORCEAgent,
    UpdateStats,
    check_agent,
    list_agents,
    make_agent,
    register_agent,
)

__all__ = ["AGENTS", "Agent", "AgentConfig", "ESAgent", "PPOAgent", "REINFORCEAgent", "UpdateStats", "check_agent",
           "list_agents", "make_agent", "register_agent"]
