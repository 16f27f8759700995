"""Pairwise comparison with position swap (MT-Bench pair-v2, SPEC.md section 6).

Each turn is judged twice, with model A shown first and then second. The verdict counts
only when both orders agree; otherwise (or when either is unparseable) it is a tie,
FastChat's rule. Scalar judges (RM, oracle) compare their ratings instead.
"""
from __future__ import annotations

from evals.judge_prompts import pair_fields
from evals.rating import parse_verdict


def combine_swapped(first: str, swapped: str) -> str:
    """Verdict from (A shown first) and (A shown second; 'A' there means model B won)."""
    flip = {"A": "B", "B": "A", "tie": "tie", "error": "error"}[swapped]
    return first if first == flip and first in ("A", "B") else "tie"


def summarize(verdicts: list[str]) -> dict[str, float]:
    """wins/losses/ties of model A and its win rate (ties count one half)."""
    n = len(verdicts)
    win, loss = verdicts.count("A"), verdicts.count("B")
    tie = n - win - loss
    return {"win": win, "loss": loss, "tie": tie, "win_rate": (win + 0.5 * tie) / n if n else 0.0}


def llm_pairwise(judge, questions, answers_a, answers_b) -> list[str]:
    """Per-turn verdicts of an `LLMJudge` (its endpoint and prompts) with position swap."""
    items = [(i, t) for i, q in enumerate(questions) for t in range(len(q.turns))]
    convs = []
    for i, t in items:
        for first, second in ((answers_a[i], answers_b[i]), (answers_b[i], answers_a[i])):
            name, fields = pair_fields(questions[i], first, second, t)
            convs.append(judge.prompts[name].render(**fields))
    raw = judge.endpoint.chat_many(convs, temperature=0.0, max_tokens=judge.max_tokens)
    return [combine_swapped(parse_verdict(raw[2 * k]), parse_verdict(raw[2 * k + 1])) for k in range(len(items))]


def scalar_pairwise(judge, questions, answers_a, answers_b) -> list[str]:
    """Per-turn verdicts from a scalar judge: higher rating wins; equal or invalid is a tie."""
    sa, sb = judge.score(questions, answers_a), judge.score(questions, answers_b)
    out = []
    for ra, rb in zip(sa, sb):
        for x, y in zip(ra, rb):
            out.append("tie" if x < 0 or y < 0 or x == y else ("A" if x > y else "B"))
    return out


def pairwise(judge, questions, answers_a, answers_b) -> list[str]:
    from evals.judges import LLMJudge

    fn = llm_pairwise if isinstance(judge, LLMJudge) else scalar_pairwise
    return fn(judge, questions, answers_a, answers_b)
