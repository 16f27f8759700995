"""Small recipe builders for tests (a tiny model on a small world)."""
from __future__ import annotations

from pathlib import Path

import yaml

TINY = {"hidden_size": 32, "layers": 2, "heads": 2, "max_position_embeddings": 256}


def write_recipe(path: Path, run_dir: Path, stages: list[dict], seed: int = 0) -> Path:
    path.write_text(yaml.safe_dump({"run_dir": str(run_dir), "seed": seed, "stages": stages}, sort_keys=False))
    return path


def world_stage(prompts: int = 200) -> dict:
    return {"name": "world", "kind": "world", "prompts": prompts, "test_prompts": 20}


def sft_stage(**train) -> dict:
    return {
        "name": "sft",
        "kind": "sft",
        "model": {"tiny": dict(TINY), "tokenizer": "world.tokenizer"},
        "data": "world.sft",
        "train": {"max_steps": 6, "lr": 1e-3, "batch_size": 8, "max_length": 128, "log_every": 2, **train},
    }
