"""The IMPALA agent (torso, LSTM core, pluggable heads) and the types that cross module boundaries."""
from agent.config import AgentConfig
from agent.network import Agent
from agent.types import (STATE_FIELDS, TIME_MAJOR_FIELDS, AgentInput, AgentOutput, CoreState,
                         EpisodeStat, Unroll, agent_input_from_unroll)

__all__ = [
    "Agent", "AgentConfig", "AgentInput", "AgentOutput", "CoreState", "EpisodeStat", "Unroll",
    "TIME_MAJOR_FIELDS", "STATE_FIELDS", "agent_input_from_unroll",
]
