"""Bad recipes and bad data: each gets a clear message naming what is wrong, and a non-zero exit."""
from __future__ import annotations

import json

import pytest
import yaml

from align.cli import main
from tests.helpers import TINY, sft_stage, world_stage


def _sft_on(data_path, tok_dir):
    return {"name": "sft", "kind": "sft", "model": {"tiny": dict(TINY), "tokenizer": str(tok_dir)},
            "data": str(data_path), "train": {"max_steps": 2, "batch_size": 2, "max_length": 64}}


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


# (id, build(tmp_path, tok_dir) -> (recipe dict or raw text, extra argv), exit code, fragments)
def _recipe(*stages, **top):
    return {"run_dir": "RUN", "seed": 0, "stages": list(stages), **top}


def _with(stage, **changes):
    out = json.loads(json.dumps(stage))
    for key, value in changes.items():
        node = out
        *parents, last = key.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    return out


CASES = [
    ("unknown-top-key", lambda t, k: (_recipe(world_stage(), sedd=1), []), 2, ["sedd: unknown key"]),
    ("unknown-kind", lambda t, k: (_recipe({"name": "x", "kind": "sfft"}), []), 2, ["stages[0] (x).kind", "'sfft'"]),
    ("wrong-type", lambda t, k: (_recipe(world_stage(), _with(sft_stage(), train__epochs="two")), []), 2,
     ["stages[1] (sft).train.epochs", "'two'"]),
    ("later-ref", lambda t, k: (_recipe(sft_stage(), world_stage()), []), 2, ["refers to a later stage"]),
    ("self-ref", lambda t, k: (_recipe(world_stage(), _with(sft_stage(), data="sft.model")), []), 2,
     ["'sft.model' refers to itself"]),
    ("unknown-output", lambda t, k: (_recipe(world_stage(), _with(sft_stage(), data="world.chat")), []), 2,
     ["has no output 'chat'"]),
    ("missing-file", lambda t, k: (_recipe(world_stage(), _with(sft_stage(), data=str(t / "nope.jsonl"))), []), 2,
     ["stages[1] (sft).data", "file not found", "nope.jsonl"]),
    ("duplicate-name", lambda t, k: (_recipe(world_stage(), world_stage()), []), 2, ["duplicate stage name 'world'"]),
    ("no-stages", lambda t, k: ({"run_dir": "RUN"}, []), 2, ["stages: required field is missing"]),
    ("stages-not-list", lambda t, k: ({"run_dir": "RUN", "stages": "world"}, []), 2, ["stages", "list"]),
    ("stage-not-mapping", lambda t, k: (_recipe("world"), []), 2, ["stages[0]: a stage must be a mapping"]),
    ("bad-stage-name", lambda t, k: (_recipe(_with(world_stage(), name="1world")), []), 2, ["stages[0] (1world).name"]),
    ("two-model-sources", lambda t, k: (_recipe(world_stage(), _with(sft_stage(), model__path="org/m")), []), 2,
     ["exactly one of path, from, tiny"]),
    ("tiny-no-tokenizer", lambda t, k: (_recipe(world_stage(), _with(sft_stage(), model={"tiny": TINY})), []), 2,
     ["needs a tokenizer"]),
    ("heads-not-dividing", lambda t, k: (_recipe(world_stage(), _with(sft_stage(), model__tiny__heads=3)), []), 2,
     ["divisible by heads 3"]),
    ("distributed-on-world", lambda t, k: (_recipe(_with(world_stage(), distributed={"num_processes": 2})), []), 2,
     ["stages[0] (world).distributed", "one process only"]),
    ("torchrun-fsdp", lambda t, k: (_recipe(world_stage(), _with(sft_stage(), distributed={
        "strategy": "fsdp", "launcher": "torchrun"})), []), 2, ["needs launcher: accelerate"]),
    ("fsdp-on-cpu", lambda t, k: (_recipe(world_stage(), _with(sft_stage(), distributed={
        "strategy": "fsdp", "num_processes": 2, "cpu": True})), []), 2, ["strategy fsdp needs GPUs"]),
    ("lora-zero3", lambda t, k: (_recipe(world_stage(), _with(sft_stage(), model__lora={"r": 4}, distributed={
        "strategy": "deepspeed", "num_processes": 2})), []), 2, ["sft).distributed: LoRA", "use strategy ddp"]),
    ("multinode-no-ip", lambda t, k: (_recipe(world_stage(), _with(sft_stage(), distributed={"num_machines": 2})),
                                      []), 2, ["needs main_process_ip"]),
    ("bad-set", lambda t, k: (_recipe(world_stage()), ["--set", "seed"]), 2, ["expected KEY=VALUE"]),
    ("set-unknown-stage", lambda t, k: (_recipe(world_stage()), ["--set", "stages.rm.seed=1"]), 2,
     ["no stage named 'rm'"]),
    ("force-unknown", lambda t, k: (_recipe(world_stage()), ["--force", "rm"]), 2, ["--force rm: no such stage"]),
    ("yaml-syntax", lambda t, k: ("run_dir: [\n", []), 2, ["not valid YAML"]),
    ("recipe-is-list", lambda t, k: ("- a\n- b\n", []), 2, ["must be a mapping"]),
    ("missing-package-model", lambda t, k: (_recipe(_with(sft_stage(), model={"path": "pkg://no_such_pkg/m.gguf"},
                                                          data=str(_write(t, "d.jsonl", "{}\n")))), []), 2,
     ["package 'no_such_pkg' is not installed"]),
    ("data-ends-with-user", lambda t, k: (_recipe(_sft_on(_write(t, "d.jsonl", json.dumps(
        {"messages": [{"role": "user", "content": "hi"}]}) + "\n"), k)), []), 3, ["d.jsonl row 1", "assistant"]),
    ("data-bad-json", lambda t, k: (_recipe(_sft_on(_write(t, "d.jsonl", '{"messages": [}\n'), k)), []), 3,
     ["d.jsonl line 1", "invalid JSON"]),
    ("data-empty-content", lambda t, k: (_recipe(_sft_on(_write(t, "d.jsonl", json.dumps(
        {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]}) + "\n"), k)), []),
     3, ["d.jsonl row 1"]),
    ("data-no-known-columns", lambda t, k: (_recipe(_sft_on(_write(t, "d.jsonl", json.dumps({"text": "x"}) + "\n"),
                                                            k)), []), 3, ["d.jsonl row 1"]),
    ("data-empty-prompt", lambda t, k: (_recipe(_sft_on(_write(t, "d.jsonl", json.dumps(
        {"prompt": "", "response": "x"}) + "\n"), k)), []), 3, ["d.jsonl row 1", "prompt"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, tmp_path, world_dir, capsys):
    _id, build, code, fragments = case
    recipe, argv = build(tmp_path, world_dir / "tokenizer")
    path = tmp_path / "recipe.yaml"
    if isinstance(recipe, str):
        path.write_text(recipe)
    else:
        path.write_text(yaml.safe_dump(recipe, sort_keys=False).replace("RUN", str(tmp_path / "run")))
    assert main(["run", str(path), *argv]) == code
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in: {err}"
