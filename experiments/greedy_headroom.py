"""Where a policy's greedy answers lose oracle helpfulness on the world, per task kind.

For each held-out world prompt: the greedy answer's oracle labels, and the probability the
policy gives the right answer's first token right after the answer frame "The answer is"
(numeric and copy tasks). Losses are split by cause: helpfulness below 4 with a wrong or
missing answer (correctness <= 2: the model does not know the answer), a hedge (correctness
3), incoherence or rambling with a right answer (style). An alignment algorithm can only
win back the style share by preferring answers the policy already writes; the knowledge
share needs the policy to learn the task, which best-of-n "headroom" overstates, since n
samples over a handful of small numbers or items hit the right one by chance.

Measured on the quickstart's SFT model (seed 0, 200 test prompts, 48 new tokens): greedy
helpfulness 2.62, every greedy answer coherent and concise (style loss 0), and every point
lost a wrong answer. Copying a word is at chance: p(right item) 0.02 over 48 items, even on
training prompts (greedy right on 9 %); subtraction greedy right on 17 % of test prompts and
45 % of training prompts.

run: .venv/bin/python experiments/greedy_headroom.py runs/quickstart/sft/model \
         --prompts runs/quickstart/world/data/prompts_test.jsonl
"""
from __future__ import annotations

import argparse
from collections import defaultdict

ANSWER_FRAME = "The answer is"


def main() -> None:
    import torch

    from align.chat import render
    from align.data import flatten_messages, load_prompts
    from align.generation import SamplingConfig, generate
    from align.models import load_saved
    from align.world import tasks as T
    from align.world.oracle import annotate

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a saved policy (a stage's model/ directory)")
    ap.add_argument("--prompts", required=True, help="world prompts (prompts_test.jsonl or prompts_train.jsonl)")
    ap.add_argument("--max-prompts", type=int, default=200)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()

    model, tok = load_saved(args.model)
    model.eval()
    prompts = load_prompts(args.prompts)[: args.max_prompts]
    answers = [r[0] for r in generate(model, tok, prompts, SamplingConfig(max_new_tokens=args.max_new_tokens,
                                                                           batch_size=64), seed=0)]
    rows = defaultdict(lambda: defaultdict(float))
    for messages, answer in zip(prompts, answers):
        flat = flatten_messages(messages)
        task, labels = T.parse_prompt(flat), annotate(flat, answer)
        kind = T.kind_label(flat)
        row = rows[kind]
        row["n"] += 1
        row["helpfulness"] += labels["helpfulness"]
        lost = 4 - labels["helpfulness"]
        cause = ("knowledge" if labels["correctness"] <= 2 else "hedge" if labels["correctness"] == 3 else "style")
        row[f"lost/{cause}"] += lost
        if task.kind in T.NUMERIC_KINDS or task.kind == "copy":
            ids = tok(render(tok, messages, add_generation_prompt=True) + ANSWER_FRAME, add_special_tokens=False,
                      return_tensors="pt")["input_ids"]
            with torch.no_grad():
                probs = model(ids).logits[0, -1].float().softmax(-1)
            right = tok(" " + str(task.answer), add_special_tokens=False)["input_ids"][0]
            row["p_right"] += float(probs[right])
            row["greedy_right"] += float(int(probs.argmax()) == right)
            row["scored"] += 1

    print(f"{'task kind':24s} {'n':>4s} {'helpful':>8s} {'lost: knowledge':>16s} {'hedge':>6s} {'style':>6s} "
          f"{'p(right)':>9s} {'argmax right':>13s}")
    total = defaultdict(float)
    for kind in sorted(rows):
        r = rows[kind]
        for k, v in r.items():
            total[k] += v
        p = f"{r['p_right'] / r['scored']:9.2f} {r['greedy_right'] / r['scored']:13.2f}" if r["scored"] else ""
        print(f"{kind:24s} {int(r['n']):4d} {r['helpfulness'] / r['n']:8.2f} {r['lost/knowledge'] / r['n']:16.2f} "
              f"{r['lost/hedge'] / r['n']:6.2f} {r['lost/style'] / r['n']:6.2f} {p}")
    n = total["n"]
    print(f"{'all':24s} {int(n):4d} {total['helpfulness'] / n:8.2f} {total['lost/knowledge'] / n:16.2f} "
          f"{total['lost/hedge'] / n:6.2f} {total['lost/style'] / n:6.2f}")


if __name__ == "__main__":
    main()
