"""Agent configuration: one dataclass, validated on construction."""
from __future__ import annotations

from dataclasses import dataclass, replace

TORSOS = ("deep", "shallow", "small")
HEADS = ("shared", "multihead", "taskid_mi", "learnt_mi")
MI_FORMS = ("full", "diagonal", "scalar")
MI_CONTEXTS = ("mlp", "onehot")
MI_CONTEXT_SCALES = ("1", "1/sqrt(C)", "1/C", "auto")
# What "auto" means per optimizer (learner.optimizer); chosen in docs/results/mi-context-scale/ from
# the step-size argument of agent/multiplicative.py, guarded by tests/test_mi_scale.py.
AUTO_CONTEXT_SCALE = {"adam": "1/C", "rmsprop": "1/sqrt(C)"}


@dataclass(frozen=True)
class AgentConfig:
    torso: str = "deep"            # deep (IMPALA ResNet) | shallow (IMPALA 2-conv) | small (embedded suite)
    core_size: int = 256           # LSTM units
    torso_out: int = 256           # width of the torso's final linear layer
    head: str = "shared"           # shared | multihead | taskid_mi | learnt_mi
    context_size: int = 64         # size of the MI context c (taskid_mi, learnt_mi)
    context_hidden: int = 128      # hidden width of the context MLP (0 = a single linear layer)
    mi_form: str = "full"          # full | diagonal | scalar approximation of W'(z)
    # The MI layer reads its context as s * z: "1" | "1/sqrt(C)" | "1/C" | "auto" (MI heads, by learner.optimizer:
    # adam 1/C, rmsprop 1/sqrt(C); agent/multiplicative.py). Default 1/C: what checkpoints before this field used.
    mi_context_scale: str = "1/C"
    # taskid_mi's context: mlp (relu(MLP(onehot(task id)))) | onehot (the raw one-hot id, no MLP:
    # the layer is then exactly per-task heads plus a shared linear layer, an ablation)
    mi_context: str = "mlp"
    use_instruction: bool = True   # encode the instruction (words -> embedding 20 -> LSTM 64)
    instruction_buckets: int = 1000  # word hash buckets (ids 1..buckets; 0 = padding)
    instruction_embed: int = 20    # word embedding size of the instruction encoder
    instruction_lstm: int = 64     # LSTM units of the instruction encoder (its output size)

    def __post_init__(self) -> None:
        check_choice("agent.torso", self.torso, TORSOS)
        check_choice("agent.head", self.head, HEADS)
        check_choice("agent.mi_form", self.mi_form, MI_FORMS)
        check_choice("agent.mi_context_scale", self.mi_context_scale, MI_CONTEXT_SCALES)
        check_choice("agent.mi_context", self.mi_context, MI_CONTEXTS)
        if self.mi_context == "onehot" and self.head != "taskid_mi":
            raise ValueError(f"agent.mi_context=onehot is an option of head=taskid_mi only (head={self.head!r}); "
                             "set agent.mi_context=mlp")
        for name in ("core_size", "torso_out", "context_size", "instruction_buckets",
                     "instruction_embed", "instruction_lstm"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"agent.{name}={value!r} must be a positive integer")
        if not isinstance(self.context_hidden, int) or self.context_hidden < 0:
            raise ValueError(f"agent.context_hidden={self.context_hidden!r} must be an integer >= 0 "
                             "(0 = a single linear layer)")


def resolve_context_scale(cfg: AgentConfig, optimizer: str) -> AgentConfig:
    """``cfg`` with ``mi_context_scale="auto"`` replaced by the scale chosen for ``optimizer``; for the
    heads without an MI layer (shared, multihead) by the default 1/C, which they ignore, so their saved
    configs (and resumes of older runs) do not change with the optimizer."""
    if cfg.mi_context_scale != "auto":
        return cfg
    if cfg.head not in ("taskid_mi", "learnt_mi"):
        return replace(cfg, mi_context_scale="1/C")
    if optimizer not in AUTO_CONTEXT_SCALE:
        raise ValueError(f"agent.mi_context_scale=auto has no choice for optimizer {optimizer!r}; "
                         f"set agent.mi_context_scale to one of {', '.join(MI_CONTEXT_SCALES[:-1])}")
    return replace(cfg, mi_context_scale=AUTO_CONTEXT_SCALE[optimizer])


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    """The one validator of an enumerated config field (agent, learner and run sections):
    ``ValueError`` naming the field, the bad value, the allowed ones and the fix."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(allowed)}; "
                         f"set {name.split('.')[-1]}=<one of those>")
