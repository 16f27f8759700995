"""align/memory.py counts the log-prob path the trainers take (align/logprobs.py), not [B, T, V] fp32 logits."""
from __future__ import annotations

from pathlib import Path

import pytest

from align.memory import (
    GIB,
    KNOWN_CONFIGS,
    arch_from_dict,
    estimate,
    logprob_bytes,
    logprob_path,
    stage_memory,
)
from align.recipe import load_recipe

LLAMA8B = arch_from_dict(KNOWN_CONFIGS["meta-llama/Llama-3.1-8B-Instruct"])
RECIPE_8B = Path(__file__).parents[1] / "recipes" / "gpu" / "helpsteer2_llama31_8b_8gpu.yaml"


def _est(**kw):
    base = dict(dtype="bfloat16", precision="bf16", batch=8, seq=4096, lora_r=None, grad_ckpt=True, world=8,
                strategy="ddp", zero_stage=3, fsdp_sharding="FULL_SHARD", offload=False, kind="dpo")
    return estimate(LLAMA8B, **{**base, **kw})


def test_path_per_engine_and_kind():
    assert logprob_path("dpo", "ddp", 3) == "lean"
    assert logprob_path("dpo", "deepspeed", 2) == "lean"
    assert logprob_path("dpo", "deepspeed", 3) == "logits"  # the head is sharded outside its forward
    assert logprob_path("sft", "fsdp", 3) == "logits"
    assert logprob_path("reward_model", "ddp", 3) == "none"  # a scalar head


def test_lean_path_is_chunks_not_full_fp32_logits(monkeypatch):
    monkeypatch.delenv("ALIGN_LOGPROB_CHUNK", raising=False)
    rows, V, H = 8 * 4096, LLAMA8B.vocab, LLAMA8B.hidden
    lean = logprob_bytes(LLAMA8B, rows=rows, path="lean", wbytes=2, compute_bytes=2, trainable_head=True)
    # two fp32 1024 x V chunk buffers, the hidden rows and their gradient, the head gradient's fp32 accumulator
    assert lean == 8 * 1024 * V + 2 * rows * H * 2 + V * H * 4
    old = 2 * rows * V * 4  # what memory.py counted before: fp32 logits and their gradient
    assert lean < old / 8
    assert logprob_bytes(LLAMA8B, rows=rows, path="lean", wbytes=2, compute_bytes=2, trainable_head=False) == \
        lean - V * H * 4  # LoRA: the head is frozen
    logits = logprob_bytes(LLAMA8B, rows=rows, path="logits", wbytes=2, compute_bytes=2, trainable_head=True)
    assert logits == 2 * rows * V * 2 + 8 * 1024 * V  # the model's bf16 logits and their gradient, no fp32 copy
    monkeypatch.setenv("ALIGN_LOGPROB_CHUNK", "256")
    assert logprob_bytes(LLAMA8B, rows=rows, path="lean", wbytes=2, compute_bytes=2, trainable_head=True) == \
        lean - 8 * (1024 - 256) * V


def test_estimate_reports_the_logprob_path_inside_activations():
    lean, sharded = _est(), _est(strategy="deepspeed")
    assert lean["logprobs_path"] == "lean" and sharded["logprobs_path"] == "logits"
    assert sharded["logprobs"] > 4 * lean["logprobs"]
    for out in (lean, sharded):
        assert out["activations"] > out["logprobs"] > 0
        assert out["total"] == pytest.approx(out["weights"] + out["grads"] + out["optimizer"] + out["activations"])
    rm = _est(kind="reward_model")
    assert rm["logprobs"] == 0 and rm["activations"] == pytest.approx(lean["activations"] - lean["logprobs"])


def test_8b_recipe_stages_count_their_logprob_path():
    recipe = load_recipe(RECIPE_8B)
    stages = {s.name: s for s in recipe.stages}
    mem = {name: stage_memory(cfg, stages) for name, cfg in stages.items()}
    assert mem["rm"]["logprobs_path"] == "none"
    for name in ("steerlm1", "steerlm2", "dpo"):  # ZeRO-3: the model's bf16 logits, chunked fp32
        assert mem[name]["logprobs_path"] == "logits", name
    assert mem["ppo"]["logprobs_path"] == "logits"  # full-parameter under ZeRO-3: the response positions' logits
    dpo = stages["dpo"]
    rows = 2 * dpo.train.batch_size * dpo.train.max_length  # a pair is two sequences
    assert mem["dpo"]["logprobs"] * GIB == pytest.approx(2 * rows * LLAMA8B.vocab * 2 + 8 * 1024 * LLAMA8B.vocab)
    ppo = stages["ppo"]
    assert mem["ppo"]["logprobs"] * GIB < 2 * ppo.minibatch // 8 * ppo.train.max_length * LLAMA8B.vocab * 4 / 2
    assert mem["ppo"]["logprobs"] < 2  # GiB: one 1024-row chunk of the 128k vocabulary


def test_sharded_ppo_counts_its_training_and_sampling_phases():
    """The 8B recipe's PPO: full-parameter under ZeRO-3 on 8 GPUs, frozen reference and RM whole on each."""
    recipe = load_recipe(RECIPE_8B)
    stages = {s.name: s for s in recipe.stages}
    ppo = stages["ppo"]
    assert ppo.model.lora is None and ppo.distributed.strategy == "deepspeed" and ppo.distributed.zero_stage == 3
    mem = stage_memory(ppo, stages)
    P, world = LLAMA8B.params, 8
    whole = P * 2 / GIB  # bf16
    assert mem["weights"] == pytest.approx(whole / world) and mem["optimizer"] == pytest.approx(12 * P / world / GIB)
    assert mem["frozen"] == pytest.approx(2 * whole)  # the reference copy and the (8B) reward model
    kv = ppo.rollout_batch // world * ppo.train.max_length * LLAMA8B.layers * 2 * 1024 * 2 / GIB
    assert mem["kv_cache"] == pytest.approx(kv)
    states = mem["weights"] + mem["grads"] + mem["optimizer"] + mem["frozen"]
    assert mem["training"] == pytest.approx(states + mem["activations"])
    assert mem["sampling"] == pytest.approx(states + whole + kv)  # the policy gathered whole for the rollouts
    assert mem["total"] == max(mem["training"], mem["sampling"]) < 80 * 1e9 / GIB  # fits an 80 GB GPU

    def variant(**dist):
        return stage_memory(ppo.model_copy(update={"distributed": ppo.distributed.model_copy(update=dist)}), stages)

    ddp = variant(strategy="ddp")  # whole weights everywhere: nothing to gather, but no sharding either
    assert ddp["weights"] == pytest.approx(whole) and ddp["sampling"] == pytest.approx(
        ddp["weights"] + ddp["grads"] + ddp["optimizer"] + ddp["frozen"] + kv)
    assert ddp["total"] > 80 * 1e9 / GIB  # why the recipe's full-parameter PPO needs ZeRO-3
    fsdp = variant(strategy="fsdp")  # a whole policy copy kept for sampling, in both phases
    assert fsdp["sampling_copy"] == pytest.approx(whole)
    assert fsdp["training"] == pytest.approx(fsdp["weights"] + fsdp["grads"] + fsdp["optimizer"] + fsdp["frozen"]
                                             + whole + fsdp["activations"])
    separate = stage_memory(ppo.model_copy(update={"critic": "separate"}), stages)  # the critic is gathered too
    assert separate["sampling"] == pytest.approx(
        separate["weights"] + separate["grads"] + separate["optimizer"] + separate["frozen"] + 2 * whole + kv)
