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


def pipeline_stages(train: dict) -> list[dict]:
    """world -> sft, then rm, steerlm1, dpo and steerlm2 on the tiny model, each trained with `train`."""
    return [
        world_stage(),
        {"name": "sft", "kind": "sft", "model": {"tiny": dict(TINY), "tokenizer": "world.tokenizer"},
         "data": "world.sft", "train": train},
        {"name": "rm", "kind": "reward_model", "model": {"from": "sft"}, "data": "world.helpsteer_train",
         "validation": "world.helpsteer_validation", "train": {**train, "eval_every": 2}},
        {"name": "steerlm1", "kind": "steerlm_sft", "model": {"from": "sft"}, "data": "world.helpsteer_train",
         "train": train},
        {"name": "dpo", "kind": "dpo", "model": {"from": "sft"},
         "pairs": {"source": "ratings", "data": "world.helpsteer_train", "max_pairs": 32}, "train": train},
        {"name": "steerlm2", "kind": "steerlm2", "policy": "steerlm1", "reference": "sft", "reward_model": "rm",
         "prompts": "world", "max_prompts": 4, "samples_per_prompt": 2, "max_new_tokens": 4, "iterations": 2,
         "train": {"epochs": 1, "lr": 1e-3, "batch_size": 1, "max_length": 128, "save_every": 0}},
    ]
