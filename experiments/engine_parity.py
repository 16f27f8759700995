"""Does `engine: vllm` train to the same results as `native`? Oracle helpfulness per stage and seed,
with the noise of the comparison (issue 17's done-when).

Reads a run of recipes/quickstart_vllm.yaml (`align run ... --seeds 0,1`): for each seed and each
pair of stages (steerlm2 / steerlm2_vllm, idpo / idpo_vllm, ppo / ppo_vllm) it re-answers the
stage's 200 held-out prompts greedily with the published model, exactly as the stage's oracle_eval
did (same prompts, suffix, 48 tokens; the script checks its mean against the stage's
`oracle/helpfulness/after`), and scores each answer with the oracle. Per pair:

- diff = vllm - native mean oracle helpfulness, on the prompts the oracle understands in both;
- se = the standard error of the per-prompt difference (paired over the same prompts) and a
  95 % paired bootstrap interval (10,000 resamples of prompts);
- the same paired test between the two seeds of one engine (native s0 vs s1, vllm s0 vs s1): the
  seed-to-seed difference, i.e. what training noise alone does.

"within noise" = the paired 95 % interval of vllm - native contains 0 AND |diff| is no larger than
the largest seed-to-seed |difference| of the same stage. Both, since either alone is weak: the per-
prompt interval ignores training noise (an engine gives other samples, as another seed does), and
two seeds give a crude seed-to-seed figure.

run: .venv-vllm/bin/python experiments/engine_parity.py runs/quickstart_vllm [--seeds 0,1] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

PAIRS = (("steerlm2", "steerlm2_vllm"), ("idpo", "idpo_vllm"), ("ppo", "ppo_vllm"))


def per_prompt_helpfulness(run: Path, stage: str) -> tuple[list[float | None], float]:
    """Greedy answers of `stage`'s published model on its oracle_eval prompts: per-prompt oracle
    helpfulness (None: not understood), and the stage's own recorded mean (to check against)."""
    from align.config.model_spec import ModelSpec
    from align.data import flatten_messages, load_prompts
    from align.generation import SamplingConfig, generate
    from align.models import load_model
    from align.recipe import load_recipe
    from align.steerlm.labels import attribute_prefix
    from align.world.oracle import OracleJudge

    recipe = load_recipe(run / "recipe.yaml")
    cfg = recipe.stage(stage)
    ev = cfg.oracle_eval
    prompts = load_prompts(str(run / "world" / "data" / "prompts_test.jsonl"))[: ev.max_prompts]
    steered = cfg.kind == "steerlm2" or getattr(cfg, "target_distribution", None) is not None
    suffix = attribute_prefix(cfg.eval_target, cfg.marker) if steered else ""
    model, tok = load_model(ModelSpec(path=str(run / stage / "model")))
    answers = [a[0] for a in generate(model.eval(), tok, prompts,
                                      SamplingConfig(max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size),
                                      prompt_suffix=suffix)]
    rows = OracleJudge().score([flatten_messages(p) for p in prompts], answers)
    recorded = json.loads((run / stage / "metrics.json").read_text())["oracle/helpfulness/after"]
    return [None if r is None else float(r["helpfulness"]) for r in rows], float(recorded)


def paired(a: list[float | None], b: list[float | None], resamples: int = 10_000) -> dict[str, float]:
    """mean(b) - mean(a) over prompts both understood, its paired standard error and bootstrap 95 % interval."""
    d = [y - x for x, y in zip(a, b) if x is not None and y is not None]
    n = len(d)
    mean = sum(d) / n
    se = (sum((x - mean) ** 2 for x in d) / (n - 1) / n) ** 0.5
    rng = random.Random(0)
    boots = sorted(sum(d[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return {"diff": mean, "se": se, "lo": boots[int(0.025 * resamples)], "hi": boots[int(0.975 * resamples) - 1],
            "prompts": float(n)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", help="the sweep's run_dir (seed<N>/ below it)")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--out", help="also write the figures as JSON here")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    root = Path(args.run_dir)
    scores: dict[tuple[int, str], list] = {}
    for seed in seeds:
        for stage in (s for pair in PAIRS for s in pair):
            if not (root / f"seed{seed}" / stage / "metrics.json").exists():
                print(f"seed {seed} {stage}: not finished, left out")
                continue
            per, recorded = per_prompt_helpfulness(root / f"seed{seed}", stage)
            known = [x for x in per if x is not None]
            mean = sum(known) / len(known)
            assert abs(mean - recorded) < 1e-6, (seed, stage, mean, recorded)  # the stage's own figure, re-derived
            scores[seed, stage] = per
    results = []
    print("\n| stage | seed | native | vllm | vllm - native | paired se | 95% interval | seed-to-seed max |diff| "
          "| within noise |\n|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for native, vllm in PAIRS:
        spread = [abs(paired(scores[s0, st], scores[s1, st])["diff"]) for st in (native, vllm)
                  for i, s0 in enumerate(seeds) for s1 in seeds[i + 1:] if (s0, st) in scores and (s1, st) in scores]
        worst = max(spread) if spread else float("nan")
        for seed in seeds:
            if (seed, native) not in scores or (seed, vllm) not in scores:
                continue
            a, b = scores[seed, native], scores[seed, vllm]
            p = paired(a, b)
            mean = lambda xs: sum(x for x in xs if x is not None) / sum(x is not None for x in xs)
            ok = p["lo"] <= 0 <= p["hi"] and (not spread or abs(p["diff"]) <= worst)
            results.append({"stage": native, "seed": seed, "native": mean(a), "vllm": mean(b), **p,
                            "seed_to_seed_max_abs_diff": worst, "within_noise": ok})
            print(f"| {native} | {seed} | {mean(a):.3f} | {mean(b):.3f} | {p['diff']:+.3f} | {p['se']:.3f} | "
                  f"[{p['lo']:+.3f}, {p['hi']:+.3f}] | {worst:.3f} | {'yes' if ok else 'no'} |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
