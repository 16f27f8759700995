"""Batched generation (align.generation.generate, KV cache, left padding) vs one prompt at a time.

Prints sampled tokens/s of both on the same model, prompts and sampling settings, and the ratio.
Model: runs/quickstart/sft/model if present (run the quickstart first), else a tiny random
Llama on a freshly generated world tokenizer.

run: .venv/bin/python benchmarks/bench_generation.py [--prompts 16] [--max-new-tokens 48]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def load(model_dir: str | None, tmp: Path):
    from align.config.model_spec import ModelSpec, TinyModelSpec
    from align.models import load_model

    if model_dir and Path(model_dir).exists():
        return load_model(ModelSpec(path=model_dir))
    from align.world.generator import generate_world

    generate_world(tmp / "w", prompts=100, test_prompts=32)
    return load_model(ModelSpec(tiny=TinyModelSpec(hidden_size=128, layers=4), tokenizer=str(tmp / "w/tokenizer")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="runs/quickstart/sft/model")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    import torch

    from align.generation import SamplingConfig, generate

    torch.set_grad_enabled(False)
    with tempfile.TemporaryDirectory() as tmp:
        model, tok = load(args.model, Path(tmp))
        from align.world.generator import generate_world

        generate_world(Path(tmp) / "p", prompts=60, test_prompts=args.prompts)
        from align.data import load_prompts

        prompts = load_prompts(str(Path(tmp) / "p/data/prompts_test.jsonl"))[: args.prompts]

    def run(batch: bool) -> tuple[int, float]:
        # ours: one batch, finished rows dropped each step; baseline: plain transformers `generate`, one prompt a call
        cfg = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=0.9,
                             batch_size=len(prompts) if batch else 1, compact=batch)
        start = time.perf_counter()
        if batch:
            outs = generate(model, tok, prompts, cfg, seed=0)
        else:
            outs = [generate(model, tok, [p], cfg, seed=i)[0] for i, p in enumerate(prompts)]
        elapsed = time.perf_counter() - start
        tokens = sum(len(tok(o[0], add_special_tokens=False)["input_ids"]) + 1 for o in outs)  # +1: the stop token
        return tokens, elapsed

    run(True)  # warm-up
    best = {}
    for batch in (True, False):
        results = [run(batch) for _ in range(args.repeats)]
        best[batch] = max(t / e for t, e in results)
    print(f"model: {args.model if Path(args.model).exists() else 'tiny random (hidden 128, 4 layers)'}; "
          f"{len(prompts)} prompts, max_new_tokens={args.max_new_tokens}, T={args.temperature}, top_p=0.9")
    print(f"batched generate (batch {len(prompts)}):   {best[True]:8.1f} tokens/s")
    print(f"one prompt at a time (transformers generate loop): {best[False]:8.1f} tokens/s")
    print(f"ratio: {best[True] / best[False]:.1f}x")


if __name__ == "__main__":
    main()
