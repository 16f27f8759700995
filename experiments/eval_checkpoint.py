"""Greedy oracle helpfulness of a PPO checkpoint (its policy weights) on a run's held-out prompts, scored by
the function a stage's `oracle_eval` uses (align.evaluation.oracle_eval): the first --prompts test prompts,
--max-new-tokens, batches of --batch-size. Used to read the step-480 state of a longer gold-reward PPO run (LR constant, KL
coefficient fixed: the checkpoint is what a 480-step run ends in).

run: .venv/bin/python experiments/eval_checkpoint.py RUN_DIR CHECKPOINT_DIR   (or `sft` for the run's SFT model)
     e.g. runs/world_ppo_gold/seed0 runs/world_ppo_gold/seed0/.work/ppo_gold/checkpoints/step-00000480
(checkpoints are pruned to train.keep_checkpoints, 2 by default: copy the one you want while the run goes on)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("checkpoint", help="a PPO checkpoint directory (model.safetensors), or `sft`")
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    from safetensors.torch import load_file

    from align.config.model_spec import ModelSpec
    from align.data import load_prompts
    from align.evaluation import oracle_eval
    from align.models import load_model

    run = Path(args.run_dir)
    model, tok = load_model(ModelSpec(path=str(run / "sft" / "model")))  # the architecture and tokenizer
    if args.checkpoint != "sft":
        state = load_file(str(Path(args.checkpoint) / "model.safetensors"))  # policy.* and value_head.*
        policy = {k.removeprefix("policy."): v for k, v in state.items() if k.startswith("policy.")}
        missing, unexpected = model.load_state_dict(policy, strict=False)
        if unexpected or any("lm_head" not in m for m in missing):  # a tied head may be absent
            raise SystemExit(f"{args.checkpoint}: not a PPO checkpoint of this run's model "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    prompts = load_prompts(str(run / "world" / "data" / "prompts_test.jsonl"))[: args.prompts]
    scores = oracle_eval(model.eval(), tok, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    print(f"{args.checkpoint}: oracle helpfulness {scores['helpfulness']:.3f}, correctness {scores['correctness']:.3f} "
          f"({len(prompts)} prompts, coverage {scores['coverage']:.3f})")


if __name__ == "__main__":
    main()
