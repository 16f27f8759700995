"""The gold judge of the synthetic world: labels any (prompt, response) with the five
HelpSteer2 attributes (ints 0..4) by fixed rules a small model can learn.

It is a pure function of the two texts, like a human annotator, so it can score a
trained policy's output just as well as the generator's, independently of any learned
reward model (DESIGN.md, "The synthetic HelpSteer world").

Rules (each attribute 0..4):
- correctness: from the answer to the last user turn's task (see ``correctness``).
- verbosity: word count bins <=4:0, <=10:1, <=20:2, <=32:3, else 4.
- complexity: distinct complex-bank words: 0:0, 1-2:1, 3-4:2, 5-7:3, 8+:4.
- coherence: 4 minus one per immediately repeated word, two per repeated sentence and one
  per token outside the world lexicon; empty response 0.
- helpfulness: correctness minus a coherence penalty (coherence 2-3: 1, 0-1: 2) minus a
  verbosity penalty (rambling, verbosity 4: 1). An honest coherent non-answer
  (correctness 0, coherence 4) gets 1, above garbage. Capped by correctness + 1, and at 1
  when coherence is 0. So a correct, coherent, concise answer scores 4 and garbage 0 or 1.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from align.attributes import ATTRIBUTES
from align.world import tasks as T
from align.world.tasks import Task

LEXICON: frozenset[str] = frozenset(T.template_words() | T.response_words())
VERBOSITY_BINS = (4, 10, 20, 32)  # max word count for verbosity 0, 1, 2, 3
COMPLEXITY_BINS = (0, 2, 4, 7)  # max distinct complex words for complexity 0, 1, 2, 3
_PUNCT = ".,?!:;"


def _bin(value: int, bins: Sequence[int]) -> int:
    return next((i for i, top in enumerate(bins) if value <= top), len(bins))


def _words(response: str) -> list[str]:
    """Whitespace tokens, lower-cased, punctuation stripped (may be empty strings)."""
    return [w.strip(_PUNCT).lower() for w in response.split()]


def _numbers(response: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", response)]


def correctness(task: Task, response: str) -> int:
    """0 no answer, 1 wrong, 2 partly right / conflicting, 3 right but hedged, 4 right.

    - numbers (add, subtract, larger, count, follow-ups): first number == expected and no
      other number -> 4; expected appears with other numbers -> 2; wrong -> 1; none -> 0.
    - sort: the numbers in exact sorted order -> 4; same multiset, wrong order -> 2.
    - copy: only the requested item -> 4; with other items -> 2; other items only -> 1.
    - list: round(4 * min(valid, n) / max(n, items named)), at least 1 if any item named.
    - a hedge word ("maybe", "probably", "think", ...) turns 4 into 3.
    """
    score = _raw_correctness(task, response)
    if score == 4 and T.HEDGE_WORDS & set(_words(response)):
        return 3
    return score



def _raw_correctness(task: Task, response: str) -> int:
    if task.kind == "sort":
        nums = _numbers(response)
        if not nums:
            return 0
        if tuple(nums) == task.answer:
            return 4
        return 2 if sorted(nums) == list(task.answer) else 1
    if task.kind in T.NUMERIC_KINDS:
        nums = _numbers(response)
        if not nums:
            return 0
        if set(nums) == {task.answer}:
            return 4
        return 2 if task.answer in nums else 1
    items = [w for w in re.findall(r"[a-z]+", response.lower()) if w in T.ITEM_CATEGORY]
    distinct = set(items)
    if not distinct:
        return 0
    if task.kind == "copy":
        if distinct == {task.answer}:
            return 4
        return 2 if task.answer in distinct else 1
    valid = sum(1 for w in distinct if T.ITEM_CATEGORY[w] == task.answer)
    return max(1, int(4 * min(valid, task.n) / max(task.n, len(distinct)) + 0.5))


def verbosity(response: str) -> int:
    return _bin(len(response.split()), VERBOSITY_BINS)


def complexity(response: str) -> int:
    return _bin(len(T.COMPLEX_WORDS & set(_words(response))), COMPLEXITY_BINS)


def coherence(response: str) -> int:
    """4 minus penalties for repetition and out-of-lexicon tokens; empty -> 0."""
    words = _words(response)
    if not words:
        return 0
    repeats = sum(1 for a, b in zip(words, words[1:]) if a and a == b)
    unknown = sum(1 for w in words if not (w.isdigit() or w in LEXICON))
    sentences = [s.strip().lower() for s in re.split(r"[.?!]+", response) if s.strip()]
    repeated_sentences = len(sentences) - len(set(sentences))
    return max(0, 4 - repeats - 2 * repeated_sentences - unknown)


def helpfulness(correct: int, coherent: int, verbose: int, empty: bool = False) -> int:
    """Mix dominated by correctness; see the module docstring for the rule."""
    if empty:
        return 0
    score = correct - (0 if coherent == 4 else 1 if coherent >= 2 else 2) - (verbose == 4)
    if correct == 0 and coherent == 4:
        score = 1
    score = min(max(score, 0), correct + 1)
    return min(score, 1) if coherent == 0 else score


def annotate(prompt: str, response: str) -> dict[str, int] | None:
    """All five attributes for a (possibly flattened multi-turn) prompt and a response,
    or None if the prompt's last user turn is not a world task."""
    task = T.parse_prompt(prompt)
    if task is None:
        return None
    corr, coh = correctness(task, response), coherence(response)
    verb, comp = verbosity(response), complexity(response)
    helpful = helpfulness(corr, coh, verb, empty=not response.strip())
    labels = {"helpfulness": helpful, "correctness": corr, "coherence": coh,
              "complexity": comp, "verbosity": verb}
    return {a: labels[a] for a in ATTRIBUTES}


class OracleJudge:
    """Batch interface to ``annotate`` for evaluations (the gold judge)."""

    def score(self, prompts: list[str], responses: list[str]) -> list[dict[str, int] | None]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        return [annotate(p, r) for p, r in zip(prompts, responses)]

    def mean_attributes(self, prompts: list[str], responses: list[str]) -> dict[str, float]:
        """Per-attribute means over the rows the oracle understands, plus "coverage", the
        fraction of rows understood. Means are 0.0 when no row is understood."""
        rows = [r for r in self.score(prompts, responses) if r is not None]
        out = {a: (sum(r[a] for r in rows) / len(rows) if rows else 0.0) for a in ATTRIBUTES}
        out["coverage"] = len(rows) / len(prompts) if prompts else 0.0
        return out


class OracleAttributeScorer:
    """The oracle behind the attribute-scorer interface a reward model serves (`attributes`,
    `predict(prompts, responses) -> [N, A]`), so SteerLM 2.0 and every other consumer of
    predicted attributes can run on the gold labels instead (an ablation of RM quality).

    Labels are integers 0..4 returned as floats. Where they enter the Beta model of P(a|x,y)
    (rewards.beta), an integer label r is a prediction like any other: mean r/4, clipped to
    [1e-3, 1 - 1e-3], with the SteerLM 2.0 stage's `concentration`. At the paper's 24, P(a = r)
    is 0.78-1.0, a label one step away gets 0.06-0.11 (label 3 asked as 4: 0.059; label 4 asked
    as 3: below 1e-4, since the clipped mean sits at the edge) and two steps away about 0. At 96
    one step away gets 0.004-0.007: exact labels deserve the sharper model, because near misses
    the reference prefers otherwise outweigh exact hits (the gold recipes use 96).
    """

    def __init__(self):
        self.attributes = list(ATTRIBUTES)

    def predict(self, prompts: list[list[dict]], responses: list[str]):
        import torch

        from align.data import flatten_messages
        from align.errors import DataError

        if len(prompts) != len(responses):
            raise DataError(f"{len(prompts)} prompts but {len(responses)} responses")
        out = torch.zeros(len(prompts), len(ATTRIBUTES))
        for i, (p, r) in enumerate(zip(prompts, responses)):
            labels = annotate(flatten_messages(p), r)
            if labels is None:
                raise DataError(f"the world oracle cannot label prompt {i} ({flatten_messages(p)[:60]!r}): it is "
                                "not a world task; the gold scorer needs the world's prompts")
            out[i] = torch.tensor([float(labels[a]) for a in ATTRIBUTES])
        return out


class OracleReward:
    """A rule-based RewardFunction: weighted world-oracle attributes (0 where the prompt is not a world task)."""

    def __init__(self, weights: str | dict[str, float] = "goodness"):
        if isinstance(weights, str):
            weights = ({"helpfulness": 0.65, "correctness": 0.8, "coherence": 0.45} if weights == "goodness"
                       else {weights: 1.0})  # goodness: SPEC.md section 2
        unknown = set(weights) - set(ATTRIBUTES)
        if unknown:
            raise ValueError(f"unknown oracle attributes {sorted(unknown)}; known: {', '.join(ATTRIBUTES)}")
        self.weights = weights

    def __call__(self, prompts: list[list[dict]], responses: list[str]) -> list[float]:
        from align.data import flatten_messages

        out = []
        for p, r in zip(prompts, responses):
            labels = annotate(flatten_messages(p), r)
            out.append(0.0 if labels is None else sum(w * labels[a] for a, w in self.weights.items()))
        return out
