"""How often a policy's samples contain a helpfulness-4 answer, per sampling temperature (world oracle).

Asks whether a sharpened iterative-DPO policy can be made to explore again by sampling hotter: for each
temperature, the mean oracle helpfulness of --n samples per prompt, the best one's, and the share of
prompts with a helpfulness-4 answer among them (align.evaluation.best_of_n, the stages' headroom figure).

Measured on seed 0's iterative DPO policy after 16 best_rest rounds (200 training prompts, 8 samples):
a helpfulness-4 answer on 76 % of prompts at T=1.0, 78 % at 1.3, 76 % at 1.6; mean sample helpfulness
3.20, 3.07, 2.49: hotter sampling costs quality and finds few new right answers.

run: .venv/bin/python experiments/sample_coverage.py RUN_DIR/STAGE/model --prompts RUN_DIR/world/data/prompts_train.jsonl
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _temperatures(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}")
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"each must be > 0, got {text!r}")
    return values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a saved model directory (a stage's model/)")
    ap.add_argument("--prompts", required=True, help="world prompts (.jsonl)")
    ap.add_argument("--max-prompts", type=int, default=200)
    ap.add_argument("--n", type=int, default=8, help="samples per prompt")
    ap.add_argument("--temperatures", type=_temperatures, default="1.0,1.3,1.6",
                    help="comma-separated, each > 0")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()

    from align.config.model_spec import ModelSpec
    from align.data import load_prompts
    from align.evaluation import best_of_n
    from align.models import load_model

    model, tok = load_model(ModelSpec(path=args.model))
    prompts = load_prompts(args.prompts)[: args.max_prompts]
    print(f"{'T':>5}  {'mean sample':>11}  {'best of n':>9}  {'has a 4':>7}")
    for t in args.temperatures:
        out = best_of_n(model.eval(), tok, prompts, n=args.n, temperature=t, top_p=1.0,
                        max_new_tokens=args.max_new_tokens, batch_size=64, seed=args.seed)
        print(f"{t:>5.2f}  {out['headroom/sample_helpfulness']:>11.3f}  {out['headroom/best_of_n_helpfulness']:>9.3f}"
              f"  {out['headroom/best_is_4']:>7.2f}")


if __name__ == "__main__":
    main()
