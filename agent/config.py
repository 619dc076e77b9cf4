"""Agent configuration: one dataclass, validated on construction."""
from __future__ import annotations

from dataclasses import dataclass

TORSOS = ("deep", "shallow", "small")
HEADS = ("shared", "multihead", "taskid_mi", "learnt_mi")
MI_FORMS = ("full", "diagonal", "scalar")


@dataclass(frozen=True)
class AgentConfig:
    torso: str = "deep"            # deep (IMPALA ResNet) | shallow (IMPALA 2-conv) | small (embedded suite)
    core_size: int = 256           # LSTM units
    torso_out: int = 256           # width of the torso's final linear layer
    head: str = "shared"           # shared | multihead | taskid_mi | learnt_mi
    context_size: int = 64         # size of the MI context c (taskid_mi, learnt_mi)
    context_hidden: int = 128      # hidden width of the context MLP (0 = a single linear layer)
    mi_form: str = "full"          # full | diagonal | scalar approximation of W'(z)
    use_instruction: bool = True   # encode the instruction (words -> embedding 20 -> LSTM 64)
    instruction_buckets: int = 1000  # word hash buckets (ids 1..buckets; 0 = padding)
    instruction_embed: int = 20    # word embedding size of the instruction encoder
    instruction_lstm: int = 64     # LSTM units of the instruction encoder (its output size)

    def __post_init__(self) -> None:
        _choice("agent.torso", self.torso, TORSOS)
        _choice("agent.head", self.head, HEADS)
        _choice("agent.mi_form", self.mi_form, MI_FORMS)
        for name in ("core_size", "torso_out", "context_size", "instruction_buckets",
                     "instruction_embed", "instruction_lstm"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"agent.{name}={value!r} must be a positive integer")
        if not isinstance(self.context_hidden, int) or self.context_hidden < 0:
            raise ValueError(f"agent.context_hidden={self.context_hidden!r} must be an integer >= 0 "
                             "(0 = a single linear layer)")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(allowed)}; "
                         f"set {name.split('.')[-1]}=<one of those>")
