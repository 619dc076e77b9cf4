"""Instruction text -> fixed-length array of hashed word ids.

DMLab-30's language levels and the embedded suite's language tasks give the agent a
string; the agent sees it as ``L = MAX_WORDS`` integer word ids. A word's id is
``1 + crc32(word) % NUM_BUCKETS`` (1..NUM_BUCKETS); 0 is padding. crc32, not ``hash()``:
Python's string hash is salted per process, and actors and learner run in different ones.
"""
from __future__ import annotations

import zlib

import numpy as np

NUM_BUCKETS = 1000  # word ids 1..1000, 0 = padding
MAX_WORDS = 16      # fixed instruction length L


def word_id(word: str) -> int:
    """The id (1..NUM_BUCKETS) of one word."""
    return 1 + zlib.crc32(word.encode("utf-8")) % NUM_BUCKETS


def encode_instruction(text: str, max_words: int = MAX_WORDS) -> np.ndarray:
    """Splits ``text`` on whitespace and returns int64 ``[max_words]`` word ids.

    Longer instructions are truncated to their first ``max_words`` words; shorter ones
    are padded with 0. The empty string gives all zeros.
    """
    if not isinstance(text, str):
        raise TypeError(f"instruction must be a str, got {type(text).__name__}")
    if max_words <= 0:
        raise ValueError(f"max_words={max_words} must be positive")
    ids = np.zeros(max_words, dtype=np.int64)
    for i, word in enumerate(text.split()[:max_words]):
        ids[i] = word_id(word)
    return ids
