"""DPO step throughput: ours vs trl.DPOTrainer, same tiny model, pairs, batch and optimizer, one run.

run: .venv/bin/python benchmarks/bench_dpo_throughput.py [--steps 20] [--batch 8] [--hidden 64]

Both train from the same initial weights with AdamW for the same number of steps on the
same world pairs (ratings pairs, the same tokenization). TRL runs with its defaults for the
reference (a reference model forward every step), fp32 (bf16=False) and without gradient
checkpointing (ours has none). Our time includes the one-off reference pass. Printed:
pairs/s for each, and ours / TRL.
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    args = ap.parse_args()

    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig
    from trl import DPOTrainer as TRLDPOTrainer

    from align.config.base import TrainConfig
    from align.config.model_spec import TinyModelSpec
    from align.data import load_helpsteer, pairs_from_ratings
    from align.trainers.dpo import DPOTrainer, tokenize_pair
    from align.world.generator import generate_world
    from align.world.tiny_model import build_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="bench_dpo_"))
    paths = generate_world(tmp / "world", prompts=600, test_prompts=5)
    tok = AutoTokenizer.from_pretrained(paths["tokenizer"])
    n = args.steps * args.batch
    pairs = pairs_from_ratings(load_helpsteer(str(paths["helpsteer_train"])))[:n]
    if len(pairs) < n:
        raise SystemExit(f"only {len(pairs)} pairs for {n} needed: lower --steps or --batch")
    spec = TinyModelSpec(hidden_size=args.hidden, layers=args.layers, heads=4)
    base = build_tiny_model(spec, tok, seed=0)

    # ours
    model = copy.deepcopy(base)
    cfg = TrainConfig(lr=1e-4, batch_size=args.batch, max_steps=args.steps, max_grad_norm=1.0, save_every=0,
                      log_every=10**6)
    trainer = DPOTrainer(model, tok, cfg, tmp / "ours", beta=0.1)
    examples = [tokenize_pair(tok, p.messages, p.chosen, p.rejected, p.strength) for p in pairs]
    t0 = time.perf_counter()
    trainer.precompute_reference(examples)
    trainer.train(examples)
    ours_s = time.perf_counter() - t0

    # TRL
    rows = [{"prompt": p.messages, "chosen": [{"role": "assistant", "content": p.chosen}],
             "rejected": [{"role": "assistant", "content": p.rejected}]} for p in pairs]
    targs = DPOConfig(output_dir=str(tmp / "trl"), per_device_train_batch_size=args.batch, max_steps=args.steps,
                      learning_rate=1e-4, lr_scheduler_type="constant", max_grad_norm=1.0, beta=0.1,
                      report_to=[], use_cpu=True, bf16=False, gradient_checkpointing=False, save_strategy="no",
                      logging_steps=10**6, disable_tqdm=True, warmup_steps=0)
    trl_trainer = TRLDPOTrainer(model=copy.deepcopy(base), ref_model=copy.deepcopy(base), args=targs,
                                train_dataset=Dataset.from_list(rows), processing_class=tok)
    t0 = time.perf_counter()
    trl_trainer.train()
    trl_s = time.perf_counter() - t0

    ours_rate, trl_rate = n / ours_s, n / trl_s
    print(f"model: tiny llama hidden={args.hidden} layers={args.layers}; {args.steps} steps x {args.batch} pairs; "
          f"torch threads={torch.get_num_threads()}")
    print(f"ours (steeralign DPOTrainer): {ours_rate:8.2f} pairs/s  ({ours_s:.2f} s)")
    print(f"TRL  (trl.DPOTrainer):        {trl_rate:8.2f} pairs/s  ({trl_s:.2f} s)")
    print(f"ratio ours / TRL: {ours_rate / trl_rate:.2f}x")


if __name__ == "__main__":
    main()
