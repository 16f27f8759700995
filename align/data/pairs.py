"""Preference pairs for DPO and Bradley-Terry reward models.

`strength` is the preference magnitude (>= 0): the rating difference for pairs built from
HelpSteer2 ratings, |preference_strength| for HelpSteer2-Preference, and the margin/strength
column (default 1.0) for generic chosen/rejected data. Margin and scaled BT losses use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from align.attributes import ATTRIBUTES
from align.errors import DataError
from align.data.helpsteer import HelpSteerRow, group_by_prompt, parse_helpsteer_prompt
from align.data.sources import (
    RowRef, int_field, load_table, number_field, require_columns, source_kind, text_field,
)

HELPSTEER_HUB_ID = "nvidia/HelpSteer2"


@dataclass
class PreferencePair:
    prompt: str
    messages: list[dict]
    chosen: str
    rejected: str
    strength: float


PAIRINGS = ("best_worst", "best_rest", "all")


def pair_indices(scores: list[float], pairing: str) -> list[tuple[int, int]]:
    """(chosen, rejected) index pairs of one prompt's scored responses, chosen scored strictly higher.

    best_worst: every top-scored vs every bottom-scored one; best_rest: every top-scored vs every
    lower one (UltraFeedback's binarisation takes one of these); all: every two that differ.
    """
    if pairing not in PAIRINGS:
        raise ValueError(f"unknown pairing {pairing!r}; known: {', '.join(PAIRINGS)}")
    if not scores or max(scores) == min(scores):
        return []
    top, bottom = max(scores), min(scores)
    best = [i for i, s in enumerate(scores) if s == top]
    if pairing == "all":  # in combination order, so that seeded draws of these pairs stay as they were
        return [(i, j) if scores[i] > scores[j] else (j, i) for i, j in combinations(range(len(scores)), 2)
                if scores[i] != scores[j]]
    return [(i, j) for i in best for j, b in enumerate(scores) if (b == bottom if pairing == "best_worst" else b < top)]


def pairs_from_ratings(rows: list[HelpSteerRow], attribute: str = "helpfulness",
                       match: list[str] | tuple[str, ...] = (), pairing: str = "all") -> list[PreferencePair]:
    """For each prompt, two responses with different ratings form a pair (`pairing`: which two).

    `match` keeps only pairs whose two responses have equal ratings on those attributes (e.g.
    verbosity: the pair then says nothing about length, the classic DPO length bias; all of
    coherence, complexity and verbosity: the pair differs only in what `attribute` measures).

    The higher-rated one is chosen, strength = rating difference; ties, rows whose rating
    is None and identical response texts are dropped. HelpSteer2 has 2 responses per
    prompt (at most one pair); with k responses and pairing "all" every untied combination
    is kept; "best_rest" keeps those whose chosen response has the prompt's top rating, so
    DPO's chosen side (and the RPO term) holds only the best answers. Rows are grouped by
    prompt text, not only by adjacency.
    """
    for name in (attribute, *match):
        if name not in ATTRIBUTES:
            raise DataError(f"unknown attribute {name!r}; known: {', '.join(ATTRIBUTES)}")
    pairs = []
    for group in group_by_prompt(rows):
        rated = [r for r in group if r.attributes.get(attribute) is not None]
        for i, j in pair_indices([float(r.attributes[attribute]) for r in rated], pairing):
            chosen, rejected = rated[i], rated[j]
            if chosen.response == rejected.response:
                continue
            if any(chosen.attributes.get(m) is None or chosen.attributes.get(m) != rejected.attributes.get(m)
                   for m in match):
                continue
            pairs.append(PreferencePair(chosen.prompt, [dict(m) for m in chosen.messages], chosen.response,
                                        rejected.response, float(chosen.attributes[attribute]
                                                                 - rejected.attributes[attribute])))
    return pairs


def spread_pairs(pairs: list[PreferencePair], max_pairs: int | None = None, per_prompt: int | None = None,
                 seed: int = 0) -> list[PreferencePair]:
    """At most `per_prompt` pairs of each prompt and `max_pairs` in all, drawn evenly over the prompts.

    With k rated responses a prompt gives up to k(k-1)/2 pairs, all next to each other: the
    first `max_pairs` would come from a handful of prompts (32 responses: 496 pairs each), and DPO
    would learn those prompts only. Here each prompt's pairs are shuffled (seeded) and taken
    round-robin: the first pair of every prompt (in shuffled prompt order), then the second, ...
    With neither limit the pairs come back unchanged.
    """
    import random

    if max_pairs is None and per_prompt is None:
        return pairs
    rng = random.Random(seed)
    groups: dict[str, list[PreferencePair]] = {}
    for p in pairs:
        groups.setdefault(p.prompt, []).append(p)
    order = list(groups.values())
    rng.shuffle(order)
    for g in order:
        rng.shuffle(g)
    depth = max((len(g) for g in order), default=0) if per_prompt is None else per_prompt
    out = [g[i] for i in range(depth) for g in order if i < len(g)]
    return out[:max_pairs]


def _messages(ref: RowRef, prompt: str) -> list[dict]:
    try:
        return parse_helpsteer_prompt(prompt)
    except ValueError as exc:
        raise ref.error(f"field 'prompt': {exc}") from None


def load_preference_pairs(
    source: str, split: str | None = None, *, data_dir: str | None = None
) -> list[PreferencePair]:
    """Pairs from the HelpSteer2-Preference schema or the generic chosen/rejected schema.

    HelpSteer2-Preference: `prompt`, `response_1`, `response_2`, `preference_strength`
    (-3..3; negative means response_1 is better; 0 rows are dropped). If rows carry a
    `split` column and `split` is given, only those rows are kept. The schema is decided
    by the first row (`response_1`/`preference_strength` present -> HelpSteer2-Preference).
    Generic: `prompt`, `chosen`, `rejected`, optional `margin` or `strength` (>= 0, default 1).
    For the hub id nvidia/HelpSteer2, data_dir defaults to "preference".
    """
    if data_dir is None and source == HELPSTEER_HUB_ID and source_kind(source) == "hub":
        data_dir = "preference"
    table = load_table(source, split, data_dir, split_column="split")
    if not table.rows:
        return []
    first = table.rows[0]
    hs2p = "response_1" in first or "preference_strength" in first
    pairs = []
    for ref, row in table:
        if hs2p:
            require_columns(ref, row, ("prompt", "response_1", "response_2", "preference_strength"))
            prompt = text_field(ref, row, "prompt")
            r1, r2 = text_field(ref, row, "response_1"), text_field(ref, row, "response_2")
            s = int_field(ref, row, "preference_strength", -3, 3)
            if s == 0:
                continue
            chosen, rejected = (r1, r2) if s < 0 else (r2, r1)
            pairs.append(PreferencePair(prompt, _messages(ref, prompt), chosen, rejected, float(abs(s))))
        else:
            require_columns(ref, row, ("prompt", "chosen", "rejected"))
            prompt = text_field(ref, row, "prompt")
            chosen, rejected = text_field(ref, row, "chosen"), text_field(ref, row, "rejected")
            strength = 1.0
            for name in ("margin", "strength"):
                if row.get(name) is not None:
                    strength = number_field(ref, row, name, 0.0)
                    break
            pairs.append(PreferencePair(prompt, _messages(ref, prompt), chosen, rejected, strength))
    return pairs
