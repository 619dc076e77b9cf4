"""Learner configuration: one frozen dataclass, validated on construction.

Defaults are the DMLab-30 settings of the IMPALA reference release (docs/DMLAB30.md, "Learner (V-trace) and network").
"""
from __future__ import annotations

from dataclasses import dataclass

from agent.config import check_choice
from learner.losses import POLICY_LOSSES, REWARD_CLIPPINGS

OPTIMIZERS = ("rmsprop", "adam")
LR_SCHEDULE_RESUMES = ("rescale", "continue")
PRECISIONS = ("fp32", "bf16")
LR_SCHEDULES = ("linear", "constant")


@dataclass(frozen=True)
class LearnerConfig:
    batch_size: int = 32                 # unrolls per learner update (B)
    unroll_length: int = 100             # transitions per unroll (T; unrolls carry T + 1 steps)
    discount: float = 0.99               # gamma; the learner uses discount * (1 - done[t + 1])
    reward_clipping: str = "abs_one"     # abs_one (clip to [-1, 1]) | soft_asymmetric (DMLab-30) | none
    baseline_cost: float = 0.5           # weight of the baseline loss 0.5 * sum (vs - V)^2
    entropy_cost: float = 0.0033391318945337044   # weight of the entropy bonus (subtracted)
    optimizer: str = "rmsprop"           # rmsprop (TF1 semantics, learner/rmsprop.py) | adam
    learning_rate: float = 0.00031866995608948655  # initial LR, annealed linearly to 0 over the frame budget
    # a resume with another run.total_frames: rescale = lr0 (1 - frames / new total) (the rate jumps);
    # continue = the linear decay re-anchored at the rate reached, to 0 at the new total (no jump)
    lr_schedule_resume: str = "rescale"
    lr_schedule: str = "linear"          # linear (IMPALA: anneal to 0 at total_frames) | constant (learning_rate throughout)
    rmsprop_decay: float = 0.99          # ms <- decay * ms + (1 - decay) g^2
    rmsprop_momentum: float = 0.0        # TF RMSProp momentum (0 = none, as in the reference release)
    rmsprop_epsilon: float = 0.1         # inside the sqrt: g / sqrt(ms + epsilon)
    adam_betas: tuple[float, float] = (0.9, 0.999)   # Adam's (beta1, beta2) (optimizer=adam)
    adam_eps: float = 1e-8               # Adam's epsilon, added to sqrt(v) (optimizer=adam)
    grad_norm_clip: float | None = None  # global gradient-norm clip (None = off; the paper used 40 on Atari)
    clip_rho_threshold: float | None = 1.0      # V-trace rho-bar (None = no clipping)
    clip_pg_rho_threshold: float | None = 1.0   # rho-bar for the policy-gradient advantage (None = off)
    vtrace_lambda: float = 1.0           # scales the traces: c_t = lambda * min(1, rho_t)
    precision: str = "fp32"              # fp32 | bf16 (autocast of the torso only; V-trace, losses, optimizer fp32)
    channels_last: bool = False          # torso convs in channels-last memory format (faster on CUDA)
    compile: bool = False                # torch.compile the torso (pays on CUDA after a warm-up of ~1 min)
    # Learning-efficiency options (not IMPALA's; off for DMLab-30, see docs/LEARNING.md):
    advantage_normalization: bool = False  # standardise the policy-gradient advantages per batch
    truncation_bootstrap: bool = False     # a time-limit end bootstraps from V(final obs) instead of 0
    popart: bool = False                   # PopArt: per-task normalised values and targets (learner/popart.py)
    popart_beta: float = 3e-4              # PopArt's step size for the per-task moments of the V-trace targets
    policy_loss: str = "vtrace"            # vtrace (IMPALA) | clipped (APPO's clipped-ratio surrogate on V-trace advantages)
    policy_clip: float = 0.1               # policy_loss=clipped: ratio clipped to [1/(1+c), 1+c] (Sample Factory's default 0.1)

    def __post_init__(self) -> None:
        check_choice("learner.reward_clipping", self.reward_clipping, REWARD_CLIPPINGS)
        check_choice("learner.optimizer", self.optimizer, OPTIMIZERS)
        check_choice("learner.precision", self.precision, PRECISIONS)
        check_choice("learner.lr_schedule_resume", self.lr_schedule_resume, LR_SCHEDULE_RESUMES)
        check_choice("learner.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_choice("learner.policy_loss", self.policy_loss, POLICY_LOSSES)
        for name in ("channels_last", "compile", "advantage_normalization", "truncation_bootstrap", "popart"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"learner.{name}={getattr(self, name)!r} must be true or false")
        for name in ("batch_size", "unroll_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"learner.{name}={value!r} must be a positive integer")
        _range("discount", self.discount, 0.0, 1.0)
        _range("vtrace_lambda", self.vtrace_lambda, 0.0, 1.0)
        if not (_is_number(self.policy_clip) and self.policy_clip > 0):
            raise ValueError(f"learner.policy_clip={self.policy_clip!r} must be a number > 0 (e.g. 0.1)")
        if not (_is_number(self.popart_beta) and 0.0 < self.popart_beta <= 1.0):
            raise ValueError(f"learner.popart_beta={self.popart_beta!r} must be a number in (0, 1] (e.g. 3e-4)")
        _range("rmsprop_decay", self.rmsprop_decay, 0.0, 1.0, high_open=True)
        for name in ("baseline_cost", "entropy_cost", "learning_rate", "rmsprop_momentum",
                     "rmsprop_epsilon", "adam_eps"):
            _nonnegative(name, getattr(self, name))
        for name in ("grad_norm_clip", "clip_rho_threshold", "clip_pg_rho_threshold"):
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and value > 0):
                raise ValueError(f"learner.{name}={value!r} must be a positive number or None (= off)")
        betas = tuple(self.adam_betas)   # YAML gives lists
        if len(betas) != 2 or not all(_is_number(b) and 0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"learner.adam_betas={self.adam_betas!r} must be two numbers in [0, 1)")
        object.__setattr__(self, "adam_betas", betas)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _range(name: str, value: float, low: float, high: float, high_open: bool = False) -> None:
    inside = _is_number(value) and low <= value and (value < high if high_open else value <= high)
    if not inside:
        bracket = ")" if high_open else "]"
        raise ValueError(f"learner.{name}={value!r} must be a number in [{low}, {high}{bracket}")


def _nonnegative(name: str, value: float) -> None:
    if not (_is_number(value) and value >= 0):
        raise ValueError(f"learner.{name}={value!r} must be a number >= 0")
