"""Where a world stage puts its files (its outputs), and the MT-Bench-format suite it writes.

Shared by the world stage and the mtbench stage (which rebuilds a missing suite the same way),
so neither stage imports the other.
"""
from __future__ import annotations

WORLD_OUTPUTS = {
    "helpsteer_train": "data/helpsteer_train.jsonl",
    "helpsteer_validation": "data/helpsteer_validation.jsonl",
    "preference": "data/preference.jsonl",
    "sft": "data/sft.jsonl",
    "prompts_train": "data/prompts_train.jsonl",
    "prompts_test": "data/prompts_test.jsonl",
    "world_info": "world.json",
    "tokenizer": "tokenizer",
    # MT-Bench-format world suite (evals.world_suite): held-out 2-turn questions + oracle references
    "mtbench_questions": "data/mtbench_questions.jsonl",
    "mtbench_references": "data/mtbench_references.jsonl",
}
WORLD_SUITE_PER_CATEGORY = 10  # questions per task kind (a constant: a config field would change fingerprints)


def write_world_mtbench(world_dir, seed: int) -> dict:
    """The world's MT-Bench-format suite, excluding every prompt the world trains or tests on."""
    from align.io_utils import read_jsonl
    from evals.world_suite import write_world_suite

    seen = set()
    for name in ("prompts_train", "prompts_test", "helpsteer_validation"):
        seen.update(row["prompt"] for row in read_jsonl(world_dir / WORLD_OUTPUTS[name]))
    q, r = world_dir / WORLD_OUTPUTS["mtbench_questions"], world_dir / WORLD_OUTPUTS["mtbench_references"]
    write_world_suite(q, r, per_category=WORLD_SUITE_PER_CATEGORY, seed=seed, exclude=seen)
    return {"mtbench_questions": q, "mtbench_references": r}
