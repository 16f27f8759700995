"""Parsing judge outputs (SPEC.md section 6) and mapping other scores to the 1..10 scale."""
from __future__ import annotations

import math
import re

RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
RATING_FALLBACK = re.compile(r"\[(\d+\.?\d*)\]")
VERDICT = re.compile(r"\[\[([ABC])\]\]")
INVALID = -1.0


def parse_rating(text: str | None) -> float:
    """MT-Bench's single-answer parse: the first `[[x]]`, else the first `[x]`, else -1.

    A rating outside 1..10 is also -1 (an unparseable judgement is dropped, never scored).
    Examples: "Rating: [[7]]" -> 7.0; "[8.5]" -> 8.5; "I give it 7" -> -1.
    """
    if not text:
        return INVALID
    m = RATING.search(text) or RATING_FALLBACK.search(text)
    if not m:
        return INVALID
    value = float(m.group(1))
    return value if 1.0 <= value <= 10.0 and math.isfinite(value) else INVALID


def parse_verdict(text: str | None) -> str:
    """Pairwise judge output -> 'A', 'B', 'tie' ([[C]]) or 'error' (FastChat's pair-v2 parse)."""
    if not text:
        return "error"
    found = set(VERDICT.findall(text))
    if len(found) != 1:  # none, or contradictory verdicts
        return "error"
    return {"A": "A", "B": "B", "C": "tie"}[found.pop()]


def linear_to_rating(value: float, low: float, high: float) -> float:
    """Map `value` in [low, high] linearly onto 1..10 (clipped): low -> 1, high -> 10."""
    if high <= low:
        raise ValueError(f"need high > low, got [{low}, {high}]")
    frac = min(max((value - low) / (high - low), 0.0), 1.0)
    return 1.0 + 9.0 * frac


def weighted_reward_range(weights: list[float], low: float = 0.0, high: float = 4.0) -> tuple[float, float]:
    """Smallest and largest possible `sum_a w_a * r_a` for attributes r_a in [low, high]."""
    lo = sum(w * (low if w >= 0 else high) for w in weights)
    hi = sum(w * (high if w >= 0 else low) for w in weights)
    return lo, hi
