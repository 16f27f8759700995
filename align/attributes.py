"""The five HelpSteer2 attributes and the label string SteerLM writes into the assistant turn.

SPEC.md section 1: integers 0..4, in this order everywhere in the project (weight presets,
reward-model heads, label strings).
"""
from __future__ import annotations

ATTRIBUTES: tuple[str, ...] = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
MIN_VALUE = 0
MAX_VALUE = 4
