"""Evaluation of trained agents on held-out levels (``launch.py evaluate``); formats: docs/EVALUATION.md."""
