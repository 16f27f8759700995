"""Pairwise comparison with position swap (MT-Bench pair-v2, SPEC.md section 6).

Each turn is judged twice, with model A shown first and then second. The verdict counts
only when both orders agree, otherwise it is a tie; a turn where either judgement is
unparseable is an error, dropped from the win rate and counted (FastChat's show_result.py
drops g1/g2 "error" rows before it counts). Scalar judges (RM, oracle) compare their ratings.
"""
from __future__ import annotations

from evals.judge_prompts import pair_fields
from evals.rating import parse_verdict


def combine_swapped(first: str, swapped: str) -> str:
    """Verdict from (A shown first) and (A shown second; 'A' there means model B won)."""
    if "error" in (first, swapped):
        return "error"
    flip = {"A": "B", "B": "A", "tie": "tie"}[swapped]
    return first if first == flip and first in ("A", "B") else "tie"


def summarize(verdicts: list[str]) -> dict[str, float]:
    """wins/losses/ties/errors of model A, the valid count, and its win rate over the valid
    verdicts (ties count one half); no win rate when no verdict is valid."""
    win, loss, tie, error = (verdicts.count(v) for v in ("A", "B", "tie", "error"))
    valid = win + loss + tie
    out = {"win": win, "loss": loss, "tie": tie, "error": error, "valid": valid}
    if valid:
        out["win_rate"] = (win + 0.5 * tie) / valid
    return out


def llm_pairwise(judge, questions, answers_a, answers_b) -> list[str]:
    """Per-turn verdicts of an `LLMJudge` (its endpoint and prompts) with position swap."""
    items = [(i, t) for i, q in enumerate(questions) for t in range(len(q.turns))]
    convs = []
    for i, t in items:
        for first, second in ((answers_a[i], answers_b[i]), (answers_b[i], answers_a[i])):
            name, fields = pair_fields(questions[i], first, second, t)
            convs.append(judge.prompts[name].render(**fields))
    raw = judge.endpoint.chat_many(convs, temperature=0.0, max_tokens=judge.max_tokens, refused_as="")
    return [combine_swapped(parse_verdict(raw[2 * k]), parse_verdict(raw[2 * k + 1])) for k in range(len(items))]


def scalar_pairwise(judge, questions, answers_a, answers_b) -> list[str]:
    """Per-turn verdicts from a scalar judge: higher rating wins; equal or invalid is a tie."""
    sa, sb = judge.score(questions, answers_a), judge.score(questions, answers_b)
    out = []
    for ra, rb in zip(sa, sb):
        for x, y in zip(ra, rb):
            out.append("error" if x < 0 or y < 0 else "tie" if x == y else ("A" if x > y else "B"))
    return out


def pairwise(judge, questions, answers_a, answers_b) -> list[str]:
    from evals.judges import LLMJudge

    fn = llm_pairwise if isinstance(judge, LLMJudge) else scalar_pairwise
    return fn(judge, questions, answers_a, answers_b)
