"""Reward-model training throughput: our RewardModelTrainer vs plain transformers.Trainer.

Both train the same tiny Llama (same init) on the same tokenized world rows (five
attribute labels, MSE), the same micro-batch, steps, optimizer (AdamW) and learning rate.
The baseline is `transformers.Trainer` + `AutoModelForSequenceClassification` with
`problem_type="regression"` and dynamic padding (DataCollatorWithPadding). Wall time of
`.train()` is measured for both, side by side in one run; samples/s = steps x batch / time.
What differs is ours: length-grouped batches (less padding), the head applied to the last
token only, and a lean loop.

run: .venv/bin/python benchmarks/bench_rm_throughput.py [--steps 60] [--batch-size 16]
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=400)
    args = ap.parse_args()
    logging.getLogger("align").setLevel(logging.WARNING)

    import torch
    from transformers import (AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    from align.config.base import TrainConfig
    from align.config.model_spec import ModelSpec, TinyModelSpec
    from align.data import load_helpsteer
    from align.models import load_model
    from align.world.generator import generate_world
    from rewards.data import RegressionExample, encode_response
    from rewards.model import AttributeRewardModel
    from rewards.trainer import RewardModelTrainer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate_world(tmp / "w", prompts=args.prompts, test_prompts=4)
        rows = load_helpsteer(str(tmp / "w/data/helpsteer_train.jsonl"))
        spec = ModelSpec(tiny=TinyModelSpec(hidden_size=args.hidden, layers=args.layers, heads=4),
                         tokenizer=str(tmp / "w/tokenizer"))
        lm, tok = load_model(spec, seed=0)
        attrs = list(rows[0].attributes)
        encoded = [(encode_response(tok, r.messages, r.response, 256)[0], [float(r.attributes[a]) for a in attrs])
                   for r in rows]
        n_samples = args.steps * args.batch_size

        # --- baseline: transformers.Trainer + AutoModelForSequenceClassification(regression) ---
        cfg = lm.config.__class__(**{**lm.config.to_dict(), "num_labels": len(attrs), "problem_type": "regression",
                                     "id2label": None, "label2id": None})
        cfg.num_labels = len(attrs)
        torch.manual_seed(0)
        baseline = AutoModelForSequenceClassification.from_config(cfg)
        baseline.model.load_state_dict(lm.model.state_dict())
        data = [{"input_ids": ids, "labels": labels} for ids, labels in encoded]
        targs = TrainingArguments(output_dir=str(tmp / "hf"), per_device_train_batch_size=args.batch_size,
                                  max_steps=args.steps, learning_rate=1e-3, lr_scheduler_type="constant",
                                  logging_steps=10**6, save_strategy="no", report_to=[], use_cpu=True,
                                  dataloader_num_workers=0, disable_tqdm=True, seed=0)
        hf = Trainer(model=baseline, args=targs, train_dataset=data,
                     data_collator=DataCollatorWithPadding(tok))
        t0 = time.perf_counter()
        hf.train()
        hf_time = time.perf_counter() - t0

        # --- ours: RewardModelTrainer on the same backbone init, data, batch and steps ---
        ours_model = AttributeRewardModel.from_causal_lm(lm, attrs)
        examples = [RegressionExample(ids, labels) for ids, labels in encoded]
        cfg_ours = TrainConfig(max_steps=args.steps, lr=1e-3, batch_size=args.batch_size, save_every=0,
                               log_every=10**6, max_length=256)
        trainer = RewardModelTrainer(ours_model, tok, cfg_ours, tmp / "ours", seed=0)
        t0 = time.perf_counter()
        trainer.train(examples)
        ours_time = time.perf_counter() - t0

    ours, base = n_samples / ours_time, n_samples / hf_time
    print(f"model: tiny Llama hidden={args.hidden} layers={args.layers}; {len(examples)} rows; "
          f"batch {args.batch_size}; {args.steps} steps; torch threads {torch.get_num_threads()}")
    print(f"ours (RewardModelTrainer):                         {ours:8.1f} samples/s")
    print(f"baseline (transformers.Trainer + SeqCls regression): {base:8.1f} samples/s")
    print(f"ratio ours / baseline: {ours / base:.2f}x")


if __name__ == "__main__":
    main()
