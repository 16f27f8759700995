"""An MT-Bench-format suite from the synthetic world, so evaluation runs offline.

Each question has two user turns. Its category is the world task kind of turn 1; turn 2
is a follow-up on the turn-1 result for numeric tasks ("Now add 7 to that result.") and a
fresh task otherwise. Reference answers are correct answers that the oracle grades
correctness 4 (checked here), written in MT-Bench's reference-answer layout.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from align.world import tasks as T
from align.world.oracle import annotate
from evals.questions import Question, write_questions


def reference_text(task: T.Task) -> str:
    """A concise correct answer for a parsed world task."""
    if task.kind == "sort":
        return "The answer is " + " ".join(map(str, task.answer)) + "."
    if task.kind == "copy":
        return f"{task.answer}."
    if task.kind == "list":
        items = list(T.CATEGORIES[task.answer][: task.n])
        return (", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else items[0]) + "."
    return f"The answer is {task.answer}."


def _turn2(task1: T.Task, rng: random.Random) -> str:
    if task1.kind in T.NUMERIC_KINDS:
        return T.sample_followup(int(task1.answer), rng)
    return T.sample_turn(rng.choice(T.TASK_KINDS), rng)


def _fresh_turn(kind: str, rng: random.Random, seen: set[str], exclude: set[str]) -> str:
    """A turn-1 text new to the suite, and outside `exclude` when the kind has room.

    Small kinds (copy, count: ~100 distinct texts) may be exhausted by the training
    prompts; then only uniqueness within the suite is kept (turn 2 still varies).
    """
    for tries, avoid in ((300, exclude), (3000, set())):
        for _ in range(tries):
            text = T.sample_turn(kind, rng)
            if text not in seen and text not in avoid:
                return text
    raise ValueError(f"cannot find a new {kind!r} question: lower per_category")


def make_world_suite(per_category: int = 10, seed: int = 0, exclude: set[str] | None = None) -> list[Question]:
    """`per_category` two-turn questions for each world task kind, with oracle-checked references.

    Turn-1 texts in `exclude` (e.g. training prompts) are skipped, so the suite is held out.
    """
    rng = random.Random(f"world-suite-{seed}")
    exclude = set(exclude or ())
    out: list[Question] = []
    for kind in T.TASK_KINDS:
        seen: set[str] = set()
        for _ in range(per_category):
            user1 = _fresh_turn(kind, rng, seen, exclude)
            seen.add(user1)
            task1 = T.parse_turn(user1)
            ref1 = reference_text(task1)
            user2 = _turn2(task1, rng)
            convo = [{"role": "user", "content": user1}, {"role": "assistant", "content": ref1},
                     {"role": "user", "content": user2}]
            ref2 = reference_text(T.parse_prompt(T.flatten_turns(convo)))
            for prompt, ref in ((user1, ref1), (T.flatten_turns(convo), ref2)):
                labels = annotate(prompt, ref)
                if labels is None or labels["correctness"] != 4:  # the oracle is the source of truth
                    raise AssertionError(f"world suite reference {ref!r} not graded correct for {prompt!r}")
            out.append(Question(f"{kind}-{len(out) + 1}", kind, [user1, user2], [ref1, ref2]))
    return out


def write_world_suite(questions_path: str | Path, references_path: str | Path, *, per_category: int = 10,
                      seed: int = 0, exclude: set[str] | None = None) -> list[Question]:
    """Write questions (MT-Bench question.jsonl layout) and references (reference_answer layout)."""
    qs = make_world_suite(per_category, seed, exclude)
    write_questions(questions_path, [Question(q.question_id, q.category, q.turns) for q in qs])
    refs = Path(references_path)
    refs.parent.mkdir(parents=True, exist_ok=True)
    refs.write_text("".join(json.dumps({"question_id": q.question_id, "model_id": "world-oracle",
                                        "choices": [{"index": 0, "turns": q.reference}]}) + "\n" for q in qs),
                    encoding="utf-8")
    return qs
