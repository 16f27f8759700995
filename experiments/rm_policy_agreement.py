"""Does a world reward model rank a policy's own samples as the oracle does? Per task kind.

For each held-out prompt, n samples from the policy at the given temperature (what PPO's
rollouts look like), scored by the RM and labelled by the oracle. Every pair of samples to the
same prompt whose oracle goodness differs counts: the RM agrees when its goodness orders the
pair the same way. `answer only` counts the pairs whose oracle coherence, complexity and
verbosity are equal, so they differ in correctness alone: how well the RM tells a right answer
from a wrong one written the same way, which is what a greedy answer that is already coherent
and concise can still gain (experiments/greedy_headroom.py).

rm_pairwise_by_task.py measures the RM on the world's rated rows. Those mix hedges, rambling
and noise with right and wrong answers. This script measures the comparisons an RL step
actually makes.

Measured on the quickstart's SFT and RM (seed 0, 200 test prompts, 8 samples at T 0.7, 2026-12-04): agreement
0.80 over all 2,951 pairs and 0.82 over the 432 answer-only pairs. Answer-only agreement is near chance where
SFT's greedy answers lose points: add 0.66, subtract 0.70, multi-turn count 0.57, follow-ups 0.54. It is high
on sort 0.91 and larger 0.94, which SFT already answers right.

The last four columns are the oracle's helpfulness of the greedy answer, of a sample (mean), of the
sample the RM ranks first (its best-of-n) and of the best sample. Measured on the quickstart's SFT and RM (seed 0, two threads, AMD EPYC with AVX-512,
2026-12-04): greedy 2.65, sample 2.08, RM pick 2.31, best 3.23 with 8 samples; with 32 (`--samples
32`) the RM pick 2.37 and the best 3.63. The RM's best of 32 is below the greedy answer: among the
policy's own samples it prefers answers worse than the greedy one, and PPO on it loses greedy
helpfulness (quickstart: -0.125).

run: .venv/bin/python experiments/rm_policy_agreement.py runs/quickstart [--policy runs/quickstart/sft/model]
"""
from __future__ import annotations

import argparse
import itertools
from collections import defaultdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", help="a run with world/ and rm/ stages (e.g. runs/quickstart)")
    ap.add_argument("--policy", help="a saved policy (default: RUN_DIR/sft/model)")
    ap.add_argument("--rm", default="rm", help="the reward-model stage's name")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-prompts", type=int, default=200)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()

    from align.data import flatten_messages, load_prompts
    from align.generation import SamplingConfig, generate
    from align.models import load_saved
    from align.world import tasks as T
    from align.world.oracle import annotate
    from rewards.presets import WEIGHT_PRESETS
    from rewards.scoring import RewardScorer

    run, n = args.run_dir, args.samples
    prompts = load_prompts(f"{run}/world/data/prompts_test.jsonl")[: args.max_prompts]
    policy, tok = load_saved(args.policy or f"{run}/sft/model")
    rows = generate(policy.eval(), tok, prompts, SamplingConfig(max_new_tokens=args.max_new_tokens, n=n,
                                                                temperature=args.temperature, batch_size=64), seed=1)
    scorer = RewardScorer.load(f"{run}/{args.rm}/model", device="cpu")
    weights = WEIGHT_PRESETS["goodness"]
    rm = scorer.scalar([p for p in prompts for _ in range(n)], [a for r in rows for a in r], weights=weights)
    rm = rm.view(len(prompts), n).tolist()
    greedy = generate(policy, tok, prompts, SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=0.0,
                                                           batch_size=64), seed=1)
    counts = defaultdict(lambda: defaultdict(int))  # kind -> {pairs, agree, answer_pairs, answer_agree}
    for i, messages in enumerate(prompts):
        flat = flatten_messages(messages)
        kind = T.kind_label(flat)
        labels = [annotate(flat, a) for a in rows[i]]
        gold = [sum(w * lab[a] for a, w in weights.items()) for lab in labels]
        c = counts[kind]
        c["prompts"] += 1
        # helpfulness (x1000, so the counts stay integers) of the greedy answer, a sample, the RM's pick, the oracle's
        helpful = [lab["helpfulness"] for lab in labels]
        c["h_greedy"] += 1000 * annotate(flat, greedy[i][0])["helpfulness"]
        c["h_sample"] += round(1000 * sum(helpful) / n)
        c["h_rm_pick"] += 1000 * helpful[max(range(n), key=lambda j: rm[i][j])]
        c["h_best"] += 1000 * max(helpful)
        for a, b in itertools.combinations(range(n), 2):
            if gold[a] == gold[b]:
                continue
            agree = (rm[i][a] > rm[i][b]) == (gold[a] > gold[b])
            c["pairs"] += 1
            c["agree"] += agree
            if all(labels[a][k] == labels[b][k] for k in ("coherence", "complexity", "verbosity")):
                c["answer_pairs"] += 1
                c["answer_agree"] += agree

    def rate(hits: int, total: int) -> str:
        return f"{hits / total:6.2f}" if total else "     -"

    def helpfulness(c) -> str:
        return "  ".join(f"{c[k] / 1000 / c['prompts']:6.2f}" for k in ("h_greedy", "h_sample", "h_rm_pick", "h_best"))

    print(f"{args.policy or 'sft'}: {n} samples a prompt at T={args.temperature}; RM goodness vs oracle goodness")
    print(f"{'task kind':24s} {'prompts':>7s} {'pairs':>6s} {'agree':>6s} {'answer-only pairs':>18s} {'agree':>6s}"
          f"  oracle helpfulness: {'greedy':>6s}  {'sample':>6s}  {'RM pick':>7s} {'best':>6s}")
    total = defaultdict(int)
    for kind in sorted(counts):
        c = counts[kind]
        for k, v in c.items():
            total[k] += v
        print(f"{kind:24s} {c['prompts']:7d} {c['pairs']:6d} {rate(c['agree'], c['pairs'])} "
              f"{c['answer_pairs']:18d} {rate(c['answer_agree'], c['answer_pairs'])}{' ' * 22}{helpfulness(c)}")
    print(f"{'all':24s} {total['prompts']:7d} {total['pairs']:6d} {rate(total['agree'], total['pairs'])} "
          f"{total['answer_pairs']:18d} {rate(total['answer_agree'], total['answer_pairs'])}{' ' * 22}{helpfulness(total)}")


if __name__ == "__main__":
    main()
