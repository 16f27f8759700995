"""A world reward model's pairwise accuracy per task kind, on the held-out rated rows.

Every pair of responses to the same validation prompt whose gold scalar differs counts: the
RM is right when its scalar (the same weights over its predicted attributes) orders the pair
as the gold labels do. Printed for the goodness preset (what PPO and iterative DPO rank by)
and for helpfulness alone. Where a kind is judged worst is where an RM-driven algorithm is
steered wrong.

Measured on the quickstart's RM (seed 0): 0.93 sort, 0.91 larger, 0.90 count, 0.89 add,
0.80 copy, 0.73 subtract, 0.68 follow-up questions (goodness).

run: .venv/bin/python experiments/rm_pairwise_by_task.py runs/quickstart
"""
from __future__ import annotations

import argparse
import itertools
from collections import defaultdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", help="a run with world/ and rm/ stages (e.g. runs/quickstart)")
    ap.add_argument("--rm", default="rm", help="the reward-model stage's name")
    args = ap.parse_args()

    from align.data import flatten_messages, load_helpsteer
    from align.world import tasks as T
    from rewards.presets import WEIGHT_PRESETS
    from rewards.scoring import RewardScorer

    rows = load_helpsteer(f"{args.run_dir}/world/data/helpsteer_validation.jsonl")
    scorer = RewardScorer.load(f"{args.run_dir}/{args.rm}/model", device="cpu")
    predicted = scorer.predict([r.messages for r in rows], [r.response for r in rows])  # [N, A]
    column = {a: i for i, a in enumerate(scorer.attributes)}
    weights = {"goodness": WEIGHT_PRESETS["goodness"], "helpfulness": {"helpfulness": 1.0}}
    # Each row's gold and predicted scalar under each weighting, computed once.
    gold = {n: [sum(v * r.attributes[a] for a, v in w.items()) for r in rows] for n, w in weights.items()}
    ours = {n: (predicted[:, [column[a] for a in w]] @ predicted.new_tensor(list(w.values()))).tolist()
            for n, w in weights.items()}

    by_prompt = defaultdict(list)
    for i, r in enumerate(rows):
        by_prompt[flatten_messages(r.messages)].append(i)
    counts = defaultdict(lambda: [0, 0])  # (kind, weighting) -> [right, pairs]
    for flat, idx in by_prompt.items():
        kind = T.kind_label(flat)
        for a, b in itertools.combinations(idx, 2):
            for n in weights:
                if gold[n][a] != gold[n][b]:
                    counts[kind, n][0] += (ours[n][a] > ours[n][b]) == (gold[n][a] > gold[n][b])
                    counts[kind, n][1] += 1

    print(f"{'task kind':24s} {'pairs':>7s} {'goodness':>9s} {'helpfulness':>12s}")
    for kind in sorted({k for k, _ in counts}):
        g, h = counts[kind, "goodness"], counts[kind, "helpfulness"]
        print(f"{kind:24s} {g[1]:7d} {g[0] / max(1, g[1]):9.3f} {h[0] / max(1, h[1]):12.3f}")


if __name__ == "__main__":
    main()
