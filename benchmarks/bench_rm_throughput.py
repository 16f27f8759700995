"""Reward-model training throughput: our RewardModelTrainer vs plain transformers.Trainer.

Both train the same tiny Llama (same init) on the same tokenized world rows (five
attribute labels, MSE), the same micro-batch, steps, optimizer (AdamW) and learning rate.
The baseline is `transformers.Trainer` + `AutoModelForSequenceClassification` with
`problem_type="regression"` and dynamic padding (DataCollatorWithPadding). Wall time of
`.train()` is measured for both, side by side in one run; samples/s = steps x batch / time.
What differs is ours: length-grouped batches (less padding), the last layer computed only at
the token the head reads (rewards/last_token_layer.py), and a lean loop. Both take the fused
AdamW step (the Trainer's default `optim`).
The default model is the quickstart's (hidden 128, 4 layers); the two trainers alternate over
`--repeats` runs and the median ratio is printed.

run: .venv/bin/python benchmarks/bench_rm_throughput.py [--steps 100] [--batch-size 16] [--repeats 3] [--hidden 128 --layers 4]
"""
from __future__ import annotations

import argparse
import copy
import logging
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--prompts", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs of each; the median ratio is reported")
    args = ap.parse_args()
    logging.getLogger("align").setLevel(logging.WARNING)

    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

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

        cfg = lm.config.__class__(**{**lm.config.to_dict(), "num_labels": len(attrs), "problem_type": "regression",
                                     "id2label": None, "label2id": None})
        cfg.num_labels = len(attrs)
        data = [{"input_ids": ids, "labels": labels} for ids, labels in encoded]
        examples = [RegressionExample(ids, labels) for ids, labels in encoded]

        def run_baseline(rep: int) -> float:
            """transformers.Trainer + AutoModelForSequenceClassification(regression): seconds of .train()."""
            torch.manual_seed(0)
            baseline = AutoModelForSequenceClassification.from_config(cfg)
            baseline.model.load_state_dict(lm.model.state_dict())
            targs = TrainingArguments(output_dir=str(tmp / f"hf{rep}"), per_device_train_batch_size=args.batch_size,
                                      max_steps=args.steps, learning_rate=1e-3, lr_scheduler_type="constant",
                                      logging_steps=10**6, save_strategy="no", report_to=[], use_cpu=True,
                                      dataloader_num_workers=0, disable_tqdm=True, seed=0)
            hf = Trainer(model=baseline, args=targs, train_dataset=data,
                         data_collator=DataCollatorWithPadding(tok))
            t0 = time.perf_counter()
            hf.train()
            return time.perf_counter() - t0

        def run_ours(rep: int) -> float:
            """RewardModelTrainer on the same backbone init, data, batch and steps: seconds of .train()."""
            ours_model = AttributeRewardModel.from_causal_lm(copy.deepcopy(lm), attrs)
            cfg_ours = TrainConfig(max_steps=args.steps, lr=1e-3, batch_size=args.batch_size, save_every=0,
                                   log_every=10**6, max_length=256)
            trainer = RewardModelTrainer(ours_model, tok, cfg_ours, tmp / f"ours{rep}", seed=0)
            t0 = time.perf_counter()
            trainer.train(examples)
            return time.perf_counter() - t0

        # Alternate the two so that a change in the machine's load falls on both alike.
        ours_times, hf_times = [], []
        for rep in range(args.repeats):
            if rep % 2 == 0:
                hf_times.append(run_baseline(rep))
                ours_times.append(run_ours(rep))
            else:
                ours_times.append(run_ours(rep))
                hf_times.append(run_baseline(rep))

    ours = [n_samples / t for t in ours_times]
    base = [n_samples / t for t in hf_times]
    ratios = [o / b for o, b in zip(ours, base)]
    fmt = lambda xs: ", ".join(f"{x:.1f}" for x in xs)
    print(f"model: tiny Llama hidden={args.hidden} layers={args.layers}; {len(examples)} rows; "
          f"batch {args.batch_size}; {args.steps} steps; {args.repeats} repeats; torch threads {torch.get_num_threads()}")
    print(f"ours (RewardModelTrainer):                           {fmt(ours)} samples/s")
    print(f"baseline (transformers.Trainer + SeqCls regression): {fmt(base)} samples/s")
    print(f"ratio ours / baseline: {', '.join(f'{r:.2f}x' for r in ratios)} (median {statistics.median(ratios):.2f}x)")


if __name__ == "__main__":
    main()
