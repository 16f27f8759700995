"""`align eval` against a model behind a real HTTP endpoint; saved answers are re-judged, not regenerated."""
import json

from align.cli import main
from align.data import flatten_messages
from align.world.tasks import parse_prompt
from evals.server import ChatServer, ScriptedBackend
from evals.world_suite import reference_text, write_world_suite


def _half_right(messages):
    """Right on turn 1, wrong (off by one) on turn 2 of numeric tasks."""
    task = parse_prompt(flatten_messages(messages))
    if len(messages) > 1 and isinstance(task.answer, int):
        return f"The answer is {task.answer + 1}."
    return reference_text(task)


def test_align_eval_endpoint_oracle_and_reuse(tmp_path):
    qp, rp = tmp_path / "q.jsonl", tmp_path / "r.jsonl"
    write_world_suite(qp, rp, per_category=2, seed=3)
    backend = ScriptedBackend(_half_right, name="half")
    server = ChatServer(backend, "127.0.0.1", 0)
    server.start_background()
    out = tmp_path / "out"
    args = ["eval", "--endpoint", server.base_url, "--endpoint-model", "half", "--questions", str(qp),
            "--references", str(rp), "--judge", "oracle", "--out", str(out)]
    try:
        assert main(args) == 0
        assert len(backend.requests) == 28  # 14 questions x 2 turns
        results = json.loads((out / "results.json").read_text())["half"]
        assert results["mtbench/turn1"] == 10.0
        # a wrong number is correctness 1 -> helpfulness 1 -> rating 1 + 9/4 = 3.25; other turns are right
        rows = [json.loads(x) for x in (out / "judgements" / "half.jsonl").read_text().splitlines()]
        for r in rows:
            numeric = r["turn"] == 2 and any(c.isdigit() for c in r["answer"]) and not r["answer"].count(" ") > 3
            assert r["score"] == (3.25 if numeric else 10.0), r
        n_wrong = sum(r["score"] == 3.25 for r in rows)
        assert n_wrong >= 8  # add/subtract/larger/count (8 questions) always follow up numerically
        assert results["mtbench/turn2"] == (10.0 * (14 - n_wrong) + 3.25 * n_wrong) / 14
        assert main(args) == 0
        assert len(backend.requests) == 28  # answers reused: judging reran without regenerating
    finally:
        server.shutdown()
        server.server_close()
    assert "1. **half**" in (out / "report.md").read_text() and (out / "radar.png").is_file()
