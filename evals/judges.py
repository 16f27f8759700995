"""Judges behind one interface: `score(questions, answers) -> per-question, per-turn ratings`.

Ratings are on MT-Bench's 1..10 scale; -1 marks an unparseable judgement (dropped from
means). Pairwise comparison lives in `evals.pairwise`.

- `LLMJudge`: an LLM over an OpenAI-compatible endpoint with MT-Bench's single-answer
  prompts (references for math, reasoning, coding), temperature 0.
- `RewardModelJudge`: a multi-attribute reward model's weighted scalar reward, mapped to
  1..10 by `rm_rating` (rule below).
- `OracleJudge`: the synthetic world's oracle, helpfulness 0..4 mapped to 1..10.
"""
from __future__ import annotations

import logging
from typing import Protocol

from evals.answers import conversation
from evals.judge_prompts import JudgePrompt, single_fields
from evals.questions import Question
from evals.rating import INVALID, linear_to_rating, parse_rating, weighted_reward_range

log = logging.getLogger("align")


class Judge(Protocol):
    name: str

    def score(self, questions: list[Question], answers: list[list[str]]) -> list[list[float]]:
        """ratings[i][t] in 1..10 (or -1) for turn t of question i."""
        ...

    def details(self) -> list[list[dict]]:
        """Of the last `score` call, per question and turn: `prompt` (the judge prompt's name),
        `user_prompt` (what the judge was shown) and `judgment` (what it answered), as FastChat
        saves them in its judgement files."""
        ...


def _turn_items(questions: list[Question], answers: list[list[str]]):
    """(question index, turn) for every answered turn, in order."""
    return [(i, t) for i, q in enumerate(questions) for t in range(min(len(q.turns), len(answers[i])))]


def _regroup(questions, items, flat: list[float]) -> list[list[float]]:
    return [[float(s) for s in row] for row in _regroup_any(questions, items, flat)]


def _regroup_any(questions, items, flat: list) -> list[list]:
    out: list[list] = [[] for _ in questions]
    for (i, _t), s in zip(items, flat):
        out[i].append(s)
    return out


class LLMJudge:
    """MT-Bench single-answer grading by an LLM behind `/v1/chat/completions`.

    Turn 1 uses `single-v1` (`single-math-v1` with the reference answer for math,
    reasoning and coding); turn 2 the multi-turn prompts. The reply is parsed with
    `parse_rating`. Requests run with bounded concurrency and retries (`ChatEndpoint`).
    """

    def __init__(self, endpoint, prompts: dict[str, JudgePrompt], *, max_tokens: int = 2048):
        self.endpoint, self.prompts, self.max_tokens = endpoint, prompts, max_tokens
        self.name = f"llm:{endpoint.model}"
        self.raw: list[str] = []  # the judge's replies of the last `score` call, for the record
        self._details: list[list[dict]] = []

    def messages(self, question: Question, answers: list[str], turn: int) -> list[dict]:
        name, fields = single_fields(question, answers, turn)
        if name not in self.prompts:
            raise KeyError(f"judge prompt {name!r} missing from the judge-prompt file")
        return self.prompts[name].render(**fields)

    def score(self, questions, answers):
        items = _turn_items(questions, answers)
        convs = [self.messages(questions[i], answers[i], t) for i, t in items]
        # a judge prompt longer than the judge's context is an unparseable judgement, not a failed run
        self.raw = self.endpoint.chat_many(convs, temperature=0.0, max_tokens=self.max_tokens, refused_as="")
        flat = [parse_rating(r) for r in self.raw]
        bad = sum(s == INVALID for s in flat)
        if bad:
            log.warning("%s: %d of %d judgements unparseable (dropped)", self.name, bad, len(flat))
        self._details = _regroup_any(questions, items, [
            {"prompt": single_fields(questions[i], answers[i], t)[0], "user_prompt": conv[-1]["content"],
             "judgment": raw or ""} for (i, t), conv, raw in zip(items, convs, self.raw)])
        return _regroup(questions, items, flat)

    def details(self) -> list[list[dict]]:
        return self._details


def rm_rating(reward: float, weights: list[float]) -> float:
    """Reward-model judge rule: a weighted attribute sum -> 1..10.

    The scalar `sum_a w_a r_a` (attributes r_a on the RM's 0..4 scale) is mapped linearly
    from its smallest possible value (-> 1) to its largest (-> 10), clipped. For the
    "goodness" weights (0.65, 0.8, 0.45 on helpfulness, correctness, coherence) that is
    1 + 9 * reward / 7.6. The rule depends only on the weights, so ratings of different
    models (and runs) are comparable.
    """
    low, high = weighted_reward_range(weights)
    return linear_to_rating(reward, low, high)


class RewardModelJudge:
    """Scores each turn with a `rewards.scoring.RewardScorer` (conversation so far -> answer)."""

    def __init__(self, scorer, weights: str | dict | list = "goodness"):
        from rewards.presets import resolve_weights

        self.scorer = scorer
        self.weight_spec = weights
        self.weights = [float(w) for w in resolve_weights(weights, scorer.attributes)]
        self.name = f"rm:{weights if isinstance(weights, str) else 'custom'}"

    @classmethod
    def load(cls, path: str, weights="goodness", **kwargs) -> RewardModelJudge:
        from rewards.scoring import RewardScorer

        return cls(RewardScorer.load(path, **kwargs), weights)

    def score(self, questions, answers):
        items = _turn_items(questions, answers)
        if not items:
            return [[] for _ in questions]
        prompts = [conversation(questions[i], answers[i], t) for i, t in items]
        responses = [answers[i][t] for i, t in items]
        rewards = self.scorer.scalar(prompts, responses, weights=self.weight_spec).tolist()
        self._details = _regroup_any(questions, items, [
            {"prompt": self.name, "user_prompt": "", "judgment": f"weighted reward {r:.4f} -> rating "
                                                                  f"{rm_rating(r, self.weights):.2f}"} for r in rewards])
        return _regroup(questions, items, [rm_rating(r, self.weights) for r in rewards])

    def details(self) -> list[list[dict]]:
        return getattr(self, "_details", [])


def oracle_rating(helpfulness: int) -> float:
    """World-oracle judge rule: helpfulness 0..4 -> 1 + 9 * h / 4 (0 -> 1, 4 -> 10)."""
    return linear_to_rating(float(helpfulness), 0.0, 4.0)


class OracleJudge:
    """The synthetic world's gold judge. A turn the oracle cannot parse gets -1 (dropped)."""

    name = "oracle"

    def score(self, questions, answers):
        from align.data import flatten_messages
        from align.world.oracle import annotate

        items = _turn_items(questions, answers)
        flat, notes = [], []
        for i, t in items:
            labels = annotate(flatten_messages(conversation(questions[i], answers[i], t)), answers[i][t])
            flat.append(INVALID if labels is None else oracle_rating(labels["helpfulness"]))
            notes.append({"prompt": "oracle", "user_prompt": "", "judgment": "not a world task" if labels is None
                          else " ".join(f"{a}={v}" for a, v in labels.items())})
        self._details = _regroup_any(questions, items, notes)
        return _regroup(questions, items, flat)

    def details(self) -> list[list[dict]]:
        return getattr(self, "_details", [])

    def attributes(self, questions, answers) -> dict[str, float]:
        """Mean oracle attributes over all turns it understands (for reports)."""
        from align.attributes import ATTRIBUTES
        from align.data import flatten_messages
        from align.world.oracle import annotate

        rows = [annotate(flatten_messages(conversation(questions[i], answers[i], t)), answers[i][t])
                for i, t in _turn_items(questions, answers)]
        rows = [r for r in rows if r is not None]
        return {a: sum(r[a] for r in rows) / len(rows) for a in ATTRIBUTES} if rows else {}
