"""The distributed path: a stage launched on 2 CPU processes (torchrun, gloo) matches 1 process.

DDP averages gradients over processes, and SFT's loss is a token mean per micro-batch,
so the two agree exactly when every micro-batch carries the same number of label tokens.
The data here is built that way (and the test checks it), so any difference comes from
the distributed machinery: sharding of the data, gradient averaging, saving from rank 0.
"""
from __future__ import annotations

import json

from safetensors.torch import load_file
from transformers import AutoTokenizer

from align.chat import tokenize_conversation
from align.config.model_spec import ModelSpec
from align.models import load_model
from align.recipe import load_recipe
from align.runner import Runner
from tests.helpers import TINY, write_recipe


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _equal_length_data(path, tok):
    rows = []
    for a in range(1, 10):
        for b in range(1, 10):
            rows.append({"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                                      {"role": "assistant", "content": f"The answer is {(a + b) % 10}."}]})
    lengths = {len(tokenize_conversation(tok, r["messages"], max_length=128).input_ids) for r in rows}
    labels = {sum(x != -100 for x in tokenize_conversation(tok, r["messages"], max_length=128).labels) for r in rows}
    assert len(lengths) == 1 and len(labels) == 1, "test data must have equal token counts"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _recipe(tmp_path, name, data, tok_dir, batch_size, distributed=None):
    sft = {"name": "sft", "kind": "sft", "model": {"tiny": dict(TINY), "tokenizer": str(tok_dir)},
           "data": str(data), "train": {"max_steps": 5, "lr": 1e-3, "batch_size": batch_size, "max_length": 128,
                                        "log_every": 1}}
    if distributed:
        sft["distributed"] = distributed
    return write_recipe(tmp_path / f"{name}.yaml", tmp_path / name, [sft])


def test_two_processes_match_one(tmp_path, world_dir):
    tok_dir = world_dir / "tokenizer"
    data = _equal_length_data(tmp_path / "data.jsonl", AutoTokenizer.from_pretrained(tok_dir))
    Runner(load_recipe(_recipe(tmp_path, "one", data, tok_dir, batch_size=8))).run()
    two = _recipe(tmp_path, "two", data, tok_dir, batch_size=4,
                  distributed={"num_processes": 2, "launcher": "torchrun", "cpu": True,
                               "main_process_port": _free_port()})
    Runner(load_recipe(two)).run()
    a = load_file(str(tmp_path / "one" / "sft" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "sft" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    init, _ = load_model(ModelSpec(tiny=TINY, tokenizer=str(tok_dir)), seed=0)
    moved = (init.state_dict()["model.embed_tokens.weight"] - a["model.embed_tokens.weight"]).abs().max().item()
    assert moved > 1e-4  # training really changed the weights
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-5, f"2-process weights differ from 1-process by {worst}"
    m1 = json.loads((tmp_path / "one" / "sft" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "sft" / "metrics.json").read_text())
    assert m1["train/steps"] == m2["train/steps"] == 5
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["stages"][0]["status"] == "done"


def test_every_distributable_stage_runs_on_two_processes(tmp_path):
    """reward_model, steerlm_sft and dpo under a recipe-wide `distributed` default (2 gloo processes)."""
    import yaml

    from align.stages import STAGE_KINDS

    tiny = dict(TINY)
    train = {"max_steps": 3, "lr": 1e-3, "batch_size": 4, "max_length": 128, "save_every": 0}
    stages = [
        {"name": "world", "kind": "world", "prompts": 200, "test_prompts": 20},
        {"name": "sft", "kind": "sft", "model": {"tiny": tiny, "tokenizer": "world.tokenizer"}, "data": "world.sft",
         "train": train},
        {"name": "rm", "kind": "reward_model", "model": {"from": "sft"}, "data": "world.helpsteer_train",
         "validation": "world.helpsteer_validation", "train": {**train, "eval_every": 2}},
        {"name": "steerlm1", "kind": "steerlm_sft", "model": {"from": "sft"}, "data": "world.helpsteer_train",
         "train": train},
        {"name": "dpo", "kind": "dpo", "model": {"from": "sft"},
         "pairs": {"source": "ratings", "data": "world.helpsteer_train", "max_pairs": 32}, "train": train},
    ]
    assert {s["kind"] for s in stages[1:]} == {k for k, c in STAGE_KINDS.items() if c.distributable}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "seed": 0, "stages": stages,
                                    "distributed": {"num_processes": 2, "launcher": "torchrun", "cpu": True,
                                                    "main_process_port": _free_port()}}))
    recipe = load_recipe(path)
    assert all(s.distributed.world_size == 2 for s in recipe.stages[1:]) and recipe.stages[0].distributed is None
    Runner(recipe).run()
    for name in ("sft", "rm", "steerlm1", "dpo"):
        assert (tmp_path / "run" / name / "model" / "model.safetensors").is_file(), name
        assert json.loads((tmp_path / "run" / name / "metrics.json").read_text())["train/steps"] == 3, name
