"""IMPALA learner maths: V-trace, losses, TF-style RMSProp, LR schedule and the update step; the
checkpoint format (``learner.checkpoint``, ``learner.provenance``)."""
from learner.config import LearnerConfig
from learner.learner import Learner

__all__ = ["Learner", "LearnerConfig"]
