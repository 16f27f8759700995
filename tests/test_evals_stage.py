"""`kind: mtbench` end to end: world suite, a trained tiny model and an HTTP endpoint, oracle judge."""
import json

from align.data import flatten_messages
from align.recipe import load_recipe
from align.runner import Runner
from align.world.tasks import parse_prompt
from evals.server import ChatServer, ScriptedBackend
from evals.world_suite import reference_text
from tests.helpers import sft_stage, world_stage, write_recipe


def _solver(messages):
    """A perfect world model: the correct answer to the last user turn."""
    return reference_text(parse_prompt(flatten_messages(messages)))


def test_mtbench_stage_ranks_models(tmp_path):
    server = ChatServer(ScriptedBackend(_solver, name="solver"), "127.0.0.1", 0)
    server.start_background()
    try:
        compare = {"name": "compare", "kind": "mtbench", "models": ["sft"],
                   "endpoints": [{"name": "solver", "base_url": server.base_url, "model": "solver"}],
                   "questions": "world.mtbench_questions", "judge": "oracle", "max_questions": 28,
                   "generation": {"max_new_tokens": 16, "batch_size": 32}, "pairwise_baseline": "sft"}
        recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "run", [world_stage(), sft_stage(), compare])
        Runner(load_recipe(recipe)).run()
    finally:
        server.shutdown()
        server.server_close()
    out = tmp_path / "run" / "compare"
    assert (tmp_path / "run" / "world" / "data" / "mtbench_questions.jsonl").is_file()  # written by the world stage
    assert not (out / "world_suite").exists()  # so the fallback was not needed
    metrics = json.loads((out / "metrics.json").read_text())
    # the perfect solver gets 10 on every turn; the 6-step tiny model cannot
    assert metrics["solver/mtbench/score"] == 10.0 and metrics["solver/mtbench/turn2"] == 10.0
    assert metrics["rank/solver"] == 1.0 and metrics["rank/sft"] == 2.0
    assert 1.0 <= metrics["sft/mtbench/score"] < 10.0
    assert metrics["mtbench/questions"] == 28.0
    assert {"sft/mtbench/category/add", "solver/mtbench/category/larger"} <= set(metrics)
    assert "sft/mtbench/category/sort" not in metrics  # max_questions keeps the first 28 (3 kinds)
    report = (out / "report.md").read_text()
    assert report.index("1. **solver**") < report.index("2. **sft**") and "radar.png" in report
    assert (out / "radar.png").read_bytes()[:4] == b"\x89PNG"
    rows = [json.loads(x) for x in (out / "judgements" / "sft.jsonl").read_text().splitlines()]
    assert len(rows) == 56 and {r["turn"] for r in rows} == {1, 2}
    assert (out / "answers" / "solver.jsonl").is_file()
    # pairwise with the oracle: the solver never loses a turn to the tiny model
    assert metrics["solver/pairwise/sft/loss"] == 0.0
    assert metrics["solver/pairwise/sft/win"] + metrics["solver/pairwise/sft/tie"] == 56.0
    assert metrics["solver/pairwise/sft/win_rate"] > 0.5 and "Pairwise against sft" in report
