"""Sampling engines in the default install (align/engines): the in-process engines agree with the
project's own sampling, and `engine: vllm` without vllm stops before any compute, naming the fix.
The real vLLM engine is tested in tests/test_vllm_engine.py (`make test-vllm`)."""
from __future__ import annotations

import pytest
import torch
import yaml

from align.cli import main
from align.config.model_spec import ModelSpec
from align.data import load_prompts
from align.engines import (
    HFEngine,
    NativeEngine,
    make_engine,
    vllm_available,
)
from align.generation import SamplingConfig, generate_tokens
from align.models import load_model
from align.rollouts import sample_responses
from tests.helpers import TINY, sft_stage, world_stage


def _model(world_dir):
    model, tok = load_model(ModelSpec(tiny=TINY, tokenizer=str(world_dir / "tokenizer")), seed=3)
    with torch.no_grad():
        model.lm_head.weight.mul_(30)  # peaked logits: greedy ties cannot flip between two implementations
    return model.eval(), tok


def test_native_and_hf_engines_agree_greedy_and_return_token_ids(world_dir):
    model, tok = _model(world_dir)
    prompts = load_prompts(str(world_dir / "data" / "prompts_train.jsonl"))[:8]
    greedy = SamplingConfig(max_new_tokens=10, temperature=0.0)
    native = NativeEngine(model, tok).generate(prompts, greedy).tokens
    hf = HFEngine(model, tok).generate(prompts, greedy).tokens
    assert native == hf
    assert native == generate_tokens(model, tok, prompts, greedy)  # the native engine is today's path
    stop = set(NativeEngine(model, tok).stop_ids)
    for rows in native:
        (row,) = rows
        assert all(t not in stop for t in row[:-1])  # a row ends at its first stop token, included


def test_engines_sample_reproducibly_per_seed(world_dir):
    model, tok = _model(world_dir)
    prompts = load_prompts(str(world_dir / "data" / "prompts_train.jsonl"))[:4]
    s = SamplingConfig(max_new_tokens=8, temperature=1.0, n=2)
    for name in ("native", "hf"):
        engine = make_engine(name, model, tok)
        a, b = engine.generate(prompts, s, seed=5).tokens, engine.generate(prompts, s, seed=5).tokens
        assert a == b and len(a) == 4 and all(len(r) == 2 for r in a)


def test_rollout_batch_from_an_engine_has_the_native_layout(world_dir):
    model, tok = _model(world_dir)
    prompts = load_prompts(str(world_dir / "data" / "prompts_train.jsonl"))[:6]
    batch, texts, has_eos = sample_responses(model, tok, prompts, max_new_tokens=10, seed=0,
                                             engine=HFEngine(model, tok))
    P = batch["prompt_len"]
    response = batch["input_ids"][:, P:]
    assert batch["attention_mask"].shape == batch["input_ids"].shape and len(texts) == 6
    for row in range(6):
        n = int(batch["response_mask"][row].sum())
        assert (response[row, n:] == tok.pad_token_id).all()
        assert bool(has_eos[row]) == (response[row, n - 1].item() == tok.eos_token_id)


@pytest.mark.skipif(vllm_available(), reason="vllm is installed here: the error path needs an install without it")
def test_engine_vllm_without_vllm_stops_before_compute_naming_the_fix(tmp_path, capsys):
    run_dir = tmp_path / "run"
    ppo = {"name": "ppo", "kind": "ppo", "model": {"from": "sft"}, "prompts": "world",
           "reward": {"oracle": "goodness"}, "steps": 1, "rollout_batch": 2, "minibatch": 2, "engine": "vllm"}
    dpo = {"name": "dpo", "kind": "dpo", "model": {"from": "sft"}, "reward": {"oracle": "goodness"},
           "pairs": {"source": "policy", "data": "world.prompts_train", "engine": "vllm"}}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"run_dir": str(run_dir), "seed": 0,
                                      "stages": [world_stage(), sft_stage(), ppo, dpo]}, sort_keys=False))
    code = main(["run", str(recipe)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "stages[2] (ppo).engine" in err and "stages[3] (dpo).pairs.engine" in err
    assert "make install-vllm" in err
    assert not run_dir.exists()  # nothing ran, nothing was written
    assert main(["run", str(recipe), "--dry-run"]) == 2


def test_make_engine_vllm_without_vllm_raises_a_clear_error(world_dir):
    if vllm_available():
        pytest.skip("vllm is installed here")
    from align.engines import EngineError

    model, tok = _model(world_dir)
    with pytest.raises(EngineError, match="make install-vllm"):
        make_engine("vllm", model, tok)


def test_answers_for_evaluation_go_through_the_chosen_engine(world_dir, tmp_path, capsys):
    """`align eval --engine` / mtbench `generation.engine`: the same greedy answers from native and hf;
    --engine vllm without vllm stops at once with the fix named."""
    from evals.answers import LocalChatModel

    model, tok = _model(world_dir)
    convs = load_prompts(str(world_dir / "data" / "prompts_test.jsonl"))[:6]
    native = LocalChatModel(model, tok, max_new_tokens=12).complete(convs)
    chat = LocalChatModel(model, tok, max_new_tokens=12, engine="hf")
    assert chat.complete(convs) == native and isinstance(chat.engine, HFEngine)
    if not vllm_available():
        code = main(["eval", "--model", str(tmp_path), "--questions", "q.jsonl", "--engine", "vllm",
                     "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2 and "make install-vllm" in err and "Traceback" not in err
        assert not (tmp_path / "out").exists()
