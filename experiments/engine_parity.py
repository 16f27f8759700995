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

"within noise" (per seed) = |diff| is no larger than the largest seed-to-seed |difference| of the same
stage, same engine (training noise: an engine draws other samples, as another seed does). The paired
per-prompt interval is printed too, for the seed-to-seed pairs as well: it measures only how two fixed
models differ on these 200 prompts, so two runs of one engine with different seeds can fail it as
often as two engines do (until 2026-12-02 the verdict required it as well; the seed-to-seed rows show
why it cannot separate an engine effect from training noise). Over seeds: the per-seed differences'
mean and its 95 % t-interval; a systematic engine effect would move it off 0.

run: .venv-vllm/bin/python experiments/engine_parity.py runs/quickstart_vllm [--seeds 0,1] [--out FILE.json]
     [--stages steerlm2,idpo,ppo]   (the native stages whose pairs are compared; e.g. `--stages ppo` for a run
                                     of recipes/quickstart_vllm_ppo.yaml)
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

PAIRS = (("steerlm2", "steerlm2_vllm"), ("idpo", "idpo_vllm"), ("ppo", "ppo_vllm"), ("ppo_gold", "ppo_gold_vllm"))
# a stage's own figures compared over seeds too: what it trained to besides greedy helpfulness
FIGURES = ("oracle/correctness/after", "sampled/helpfulness/after", "rm/reward/after", "kl/after", "hacking_gap",
           "steer/mae_mean/iter2")  # steerlm2 (2 iterations): steering error of the final model


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
    ap.add_argument("--stages", default=",".join(native for native, _ in PAIRS))
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    wanted = set(args.stages.split(","))
    pairs = [pair for pair in PAIRS if pair[0] in wanted]
    root = Path(args.run_dir)
    scores: dict[tuple[int, str], list] = {}
    for seed in seeds:
        for stage in (s for pair in pairs for s in pair):
            if not (root / f"seed{seed}" / stage / "metrics.json").exists():
                print(f"seed {seed} {stage}: not finished, left out")
                continue
            per, recorded = per_prompt_helpfulness(root / f"seed{seed}", stage)
            known = [x for x in per if x is not None]
            mean = sum(known) / len(known)
            assert abs(mean - recorded) < 1e-6, (seed, stage, mean, recorded)  # the stage's own figure, re-derived
            scores[seed, stage] = per
    results = []
    mean = lambda xs: sum(x for x in xs if x is not None) / sum(x is not None for x in xs)
    print("\n| stage | engine | seeds | first | second | difference | paired 95% interval | interval contains 0 |\n"
          "|---|---|---|---:|---:|---:|---:|---|")
    spreads: dict[str, list[float]] = {}
    for native, vllm in pairs:
        for st in (native, vllm):
            for i, s0 in enumerate(seeds):
                for s1 in seeds[i + 1:]:
                    if (s0, st) not in scores or (s1, st) not in scores:
                        continue
                    p = paired(scores[s0, st], scores[s1, st])
                    spreads.setdefault(native, []).append(abs(p["diff"]))
                    print(f"| {native} | {'vllm' if st == vllm else 'native'} | {s0} vs {s1} | "
                          f"{mean(scores[s0, st]):.3f} | {mean(scores[s1, st]):.3f} | {p['diff']:+.3f} | "
                          f"[{p['lo']:+.3f}, {p['hi']:+.3f}] | {'yes' if p['lo'] <= 0 <= p['hi'] else 'no'} |")
    print("\n| stage | seed | native | vllm | vllm - native | paired se | paired 95% interval | seed-to-seed max |diff| "
          "| within noise |\n|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for native, vllm in pairs:
        worst = max(spreads[native]) if spreads.get(native) else None  # one seed: no noise figure, no verdict
        for seed in seeds:
            if (seed, native) not in scores or (seed, vllm) not in scores:
                continue
            a, b = scores[seed, native], scores[seed, vllm]
            p = paired(a, b)
            ok = None if worst is None else abs(p["diff"]) <= worst
            results.append({"stage": native, "seed": seed, "native": mean(a), "vllm": mean(b), **p,
                            "paired_interval_contains_0": p["lo"] <= 0 <= p["hi"],
                            "seed_to_seed_max_abs_diff": worst, "within_noise": ok})
            print(f"| {native} | {seed} | {mean(a):.3f} | {mean(b):.3f} | {p['diff']:+.3f} | {p['se']:.3f} | "
                  f"[{p['lo']:+.3f}, {p['hi']:+.3f}] | {'-' if worst is None else f'{worst:.3f}'} | "
                  f"{'n/a (one seed)' if ok is None else 'yes' if ok else 'no'} |")
    # over seeds: a systematic engine effect would move the per-seed differences off 0 together
    from evals.seed_stats import aggregate

    print("\n| stage | seeds | mean vllm - native over seeds | 95 % t-interval | contains 0 |\n|---|---:|---:|---:|---|")
    summary = []
    for native, _ in pairs:
        a = aggregate([r["diff"] for r in results if r["stage"] == native])
        if a.half_width is None:
            continue
        summary.append({"stage": native, **a.to_dict(), "contains_zero": a.low <= 0 <= a.high})
        print(f"| {native} | {a.n} | {a.mean:+.3f} | [{a.low:+.3f}, {a.high:+.3f}] | "
              f"{'yes' if a.low <= 0 <= a.high else 'no'} |")
    # the rest of each stage's own figures (metrics.json), native and vllm side by side over seeds
    print("\n| stage | figure (metrics.json) | native, mean over seeds | vllm | vllm - native, mean ± 95 % t |\n"
          "|---|---|---:|---:|---:|")
    figures = []
    for native, vllm in pairs:
        done = [s for s in seeds if (s, native) in scores and (s, vllm) in scores]
        metrics = {(s, st): json.loads((root / f"seed{s}" / st / "metrics.json").read_text())
                   for s in done for st in (native, vllm)}
        for key in FIGURES:
            if not all(key in metrics[s, st] for s in done for st in (native, vllm)):
                continue
            a = aggregate([metrics[s, native][key] for s in done])
            b = aggregate([metrics[s, vllm][key] for s in done])
            d = aggregate([metrics[s, vllm][key] - metrics[s, native][key] for s in done])
            figures.append({"stage": native, "figure": key, "native": a.to_dict(), "vllm": b.to_dict(),
                            "diff": d.to_dict()})
            width = "" if d.half_width is None else f" ± {d.half_width:.3f}"
            print(f"| {native} | {key} | {a.mean:.3f} | {b.mean:.3f} | {d.mean:+.3f}{width} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"per_seed": results, "over_seeds": summary, "figures": figures},
                                             indent=1))


if __name__ == "__main__":
    main()
