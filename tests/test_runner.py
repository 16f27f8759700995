"""The run-directory contract: outputs, manifest, skip/force, failure without damage."""
from __future__ import annotations

import json

import pytest
import yaml

from align.cli import main
from align.errors import DataError
from align.recipe import load_recipe
from align.runner import Runner
from tests.helpers import sft_stage, world_stage, write_recipe


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runner")
    path = write_recipe(tmp / "r.yaml", tmp / "run", [world_stage(), sft_stage(max_steps=8)])
    assert main(["run", str(path)]) == 0
    return path, tmp / "run"


def test_run_directory_contract(finished_run):
    _, run = finished_run
    resolved = yaml.safe_load((run / "recipe.yaml").read_text())
    assert resolved["stages"][1]["train"]["max_steps"] == 8 and resolved["stages"][1]["train"]["epochs"] == 1.0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["seed"] == 0 and "torch" in manifest["versions"] and "transformers" in manifest["versions"]
    assert [(s["name"], s["kind"], s["status"]) for s in manifest["stages"]] == [("world", "world", "done"),
                                                                                ("sft", "sft", "done")]
    assert all(s["started_at"] and s["finished_at"] and s["duration_s"] >= 0 for s in manifest["stages"])
    metrics = json.loads((run / "sft" / "metrics.json").read_text())
    assert all(not isinstance(v, (dict, list)) for v in metrics.values())
    assert metrics["train/steps"] == 8 and "train/loss_final" in metrics
    assert yaml.safe_load((run / "sft" / "config.yaml").read_text())["kind"] == "sft"
    assert not (run / "sft" / "checkpoints").exists()


def test_saved_model_loads_back_and_generates_same(finished_run):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from align.generation import generate

    _, run = finished_run
    model = AutoModelForCausalLM.from_pretrained(run / "sft" / "model")
    tok = AutoTokenizer.from_pretrained(run / "sft" / "model")
    assert tok.chat_template and tok.pad_token is not None
    prompt = [[{"role": "user", "content": "What is 2 plus 3?"}]]
    a = generate(model, tok, prompt)
    b = generate(AutoModelForCausalLM.from_pretrained(run / "sft" / "model"), tok, prompt)
    assert a == b
    ids = tok("What is 2 plus 3?", return_tensors="pt")["input_ids"]
    reloaded = AutoModelForCausalLM.from_pretrained(run / "sft" / "model")
    assert torch.equal(model(ids).logits, reloaded(ids).logits)


def test_rerun_skips_then_set_and_force_rerun(finished_run):
    path, run = finished_run
    before = (run / "sft" / "model" / "model.safetensors").stat().st_mtime_ns
    Runner(load_recipe(path)).run()
    statuses = [s["status"] for s in json.loads((run / "manifest.json").read_text())["stages"]]
    assert statuses == ["skipped", "skipped"]
    assert (run / "sft" / "model" / "model.safetensors").stat().st_mtime_ns == before

    runner = Runner(load_recipe(path, ["stages.sft.train.lr=5e-4"]))
    assert [a for _, a in runner.plan()] == ["skip (up to date)", "run (config or inputs changed)"]
    runner = Runner(load_recipe(path), force=["world"])
    assert [a for _, a in runner.plan()] == ["run (forced)", "run (forced)"]


def test_failed_stage_keeps_previous_result(finished_run, tmp_path):
    path, run = finished_run
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    old = (run / "sft" / "model" / "model.safetensors").read_bytes()
    with pytest.raises(DataError) as info:
        Runner(load_recipe(path, [f"stages.sft.data={bad}"])).run()
    assert "bad.jsonl row 1" in str(info.value)
    # found when the recipe is read, before any stage runs: nothing of the finished run is touched
    # (a stage that fails while running: tests/test_bad_inputs_run.py, non-finite metrics)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"][1]["status"] in ("done", "skipped") and "error" not in manifest["stages"][1]
    assert (run / "sft" / "model" / "model.safetensors").read_bytes() == old  # untouched
    assert main(["run", str(path), "--set", f"stages.sft.data={bad}"]) == 3
