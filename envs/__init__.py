"""Environments: the DMLab-30 adapter and the embedded MiniGrid suite, behind one Suite API.

Nothing here needs DeepMind Lab to import; ``envs.dmlab.DmLab`` imports ``deepmind_lab``
when constructed.
"""
from envs.instructions import MAX_WORDS, NUM_BUCKETS, encode_instruction
from envs.suites import SUITE_NAMES, EpisodeStatistics, Suite, TaskSpec, get_suite

__all__ = ["MAX_WORDS", "NUM_BUCKETS", "SUITE_NAMES", "EpisodeStatistics", "Suite", "TaskSpec",
           "encode_instruction", "get_suite"]
