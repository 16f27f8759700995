"""How many training steps a reward model needs before it can judge the world's copy task.

The task: "Repeat the word X." answered "The answer is Y."; correctness 4 when Y == X, else 1.
Only the comparison of X and Y separates the labels, so until the model forms that
comparison it predicts the same score for right and wrong answers. This script trains a
fresh reward head on a model (default: the quickstart's SFT model) on fresh samples with
X, Y drawn from the first N world items, and prints the mean prediction for right and wrong
answers as training goes. It measures why a reward model on the world can miss a wrong item
or number (issue 3). Measured on 2 CPU cores with the earlier quickstart (4 rated responses
per prompt, its SFT model trained on 3,600 rows): right and wrong answers got the same
prediction (gap 0.00) after 800 steps of 32 with the world's 48 items, and after 400 steps
even with 4 items; from an SFT model trained twice as long, 4 items separated fully by step
200 and 16 items began to by step 800. The current quickstart's RM, trained on 32 rated
responses per prompt, judges most task kinds but still not single-turn copying.

run: .venv/bin/python experiments/rm_copy_learnability.py --items 48 --steps 800
"""
from __future__ import annotations

import argparse
import random


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="runs/quickstart/sft/model")
    ap.add_argument("--items", type=int, default=48, help="how many world items X and Y range over")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from align.chat import pad_with_mask
    from align.config.model_spec import ModelSpec
    from align.models import load_model
    from align.world.tasks import ALL_ITEMS
    from rewards.data import encode_response
    from rewards.model import AttributeRewardModel

    if not 2 <= args.items <= len(ALL_ITEMS):
        raise SystemExit(f"--items must be in 2..{len(ALL_ITEMS)}")
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    items = ALL_ITEMS[: args.items]
    lm, tok = load_model(ModelSpec(path=args.model))
    rm = AttributeRewardModel.from_causal_lm(lm, ["correctness"])

    def batch(n: int):
        seqs, labels = [], []
        for _ in range(n):
            x = rng.choice(items)
            y = x if rng.random() < 0.5 else rng.choice([i for i in items if i != x])
            answer = f"The answer is {y}. I hope this helps." if rng.random() < 0.5 else f"It is {y}."
            # encoded as the reward-model trainer encodes a rated response
            seqs.append(encode_response(tok, [{"role": "user", "content": f"Repeat the word {x}."}], answer, 256)[0])
            labels.append([4.0 if x == y else 1.0])
        ids, mask = pad_with_mask(seqs, tok.pad_token_id, left=False)
        return {"input_ids": ids, "attention_mask": mask}, torch.tensor(labels)

    test_enc, test_y = batch(400)
    opt = torch.optim.AdamW(rm.parameters(), lr=args.lr)
    print(f"{args.items} items, lr {args.lr}, batch {args.batch_size}; mean prediction (right answers 4, wrong 1)")
    for step in range(1, args.steps + 1):
        enc, y = batch(args.batch_size)
        loss = ((rm(**enc).rewards - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % max(1, args.steps // 8) == 0:
            with torch.no_grad():
                pred = rm(**test_enc).rewards[:, 0]
            right, wrong = pred[test_y[:, 0] == 4].mean(), pred[test_y[:, 0] == 1].mean()
            print(f"step {step:5d}  train loss {loss.item():.3f}  right {right:.2f}  wrong {wrong:.2f}  "
                  f"gap {right - wrong:.2f}", flush=True)


if __name__ == "__main__":
    main()
