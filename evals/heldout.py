"""Per-model figures on held-out prompts (the `mtbench` stage's `heldout:` block).

For each local model (a steered one behind its attribute label prefix):
- greedy answers scored by the world oracle: `heldout/oracle/<attribute>`, `heldout/oracle/coverage`;
- with a reward model, its view of the same answers: `heldout/rm/<attribute>` (means) and
  `heldout/rm_reward` (mean standardised scalar);
- with a reference, `heldout/kl`: KL(model || reference) as the mean over prompts of the
  sequence-level k1 estimate log pi(y|x) - log ref(y|x) on one response y ~ pi (temperature 1);
  pi sees the label prefix, the reference the plain prompt.
After all models, against a baseline model: `heldout/gain/oracle_helpfulness`,
`heldout/gain/rm_helpfulness` and `heldout/hacking_gap` = RM gain - oracle gain (the part of
the RM's improvement the gold judge does not see).

Each model's figures and answers are kept in `out_dir` (`<model>.json`, `<model>.jsonl`), so
an interrupted stage resumes without measuring a model twice.
"""
from __future__ import annotations

import gc
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from align.io_utils import atomic_write_json, write_jsonl

log = logging.getLogger("align")

PREFIX = "heldout/"


@dataclass
class HeldoutSettings:
    max_new_tokens: int = 48
    batch_size: int = 64
    weights: str | list[float] | dict[str, float] = "goodness"
    kl_samples: int = 64
    max_length: int = 1024
    seed: int = 0
    sample_temperature: float | None = None
    samples_per_prompt: int = 4


def _load(path: str):
    """(model, tokenizer) of a saved model, in eval mode on the inference device."""
    from align.config.model_spec import ModelSpec
    from align.models import inference_device, load_saved

    model, tok = load_saved(path)
    return model.to(inference_device(ModelSpec(path=path))).eval(), tok


def greedy_answers(model, tokenizer, prompts, s: HeldoutSettings, prompt_suffix: str = "") -> list[str]:
    from align.generation import SamplingConfig, generate

    sampling = SamplingConfig(max_new_tokens=s.max_new_tokens, temperature=0.0, batch_size=s.batch_size)
    return [a[0] for a in generate(model, tokenizer, prompts, sampling, prompt_suffix=prompt_suffix)]


def oracle_figures(prompts, answers) -> tuple[dict[str, float], list]:
    """heldout/oracle/<attribute> and heldout/oracle/coverage; and the per-row labels (None: not a world task)."""
    from align.data import flatten_messages
    from align.world.oracle import OracleJudge

    flat = [flatten_messages(p) for p in prompts]
    judge = OracleJudge()
    means = judge.mean_attributes(flat, answers)
    return {f"{PREFIX}oracle/{k}": float(v) for k, v in means.items()}, judge.score(flat, answers)


def rm_figures(scorer, prompts, answers, weights) -> tuple[dict[str, float], list[dict]]:
    """heldout/rm/<attribute> (mean predictions) and heldout/rm_reward (mean standardised scalar)."""
    from rewards.presets import resolve_weights

    pred = scorer.predict(prompts, answers)  # [N, A]: one RM pass serves both figures
    mean, std = scorer.reward_mean_std(weights)
    scalar = (pred @ resolve_weights(weights, scorer.attributes) - mean) / std  # [N], as RewardScorer.scalar
    out = {f"{PREFIX}rm/{a}": float(pred[:, j].mean()) for j, a in enumerate(scorer.attributes)}
    out[f"{PREFIX}rm_reward"] = float(scalar.mean())
    rows = [{**{a: round(float(pred[i, j]), 4) for j, a in enumerate(scorer.attributes)},
             "reward": round(float(scalar[i]), 4)} for i in range(len(answers))]
    return out, rows


def kl_estimate(model, tokenizer, reference, prompts, s: HeldoutSettings, prompt_suffix: str = "") -> dict[str, float]:
    """heldout/kl: mean k1 = log pi(y|x, prefix) - log ref(y|x), one y ~ pi(.|x, prefix) per prompt."""
    from align.generation import SamplingConfig, generate
    from align.steerlm.sequences import sequence_log_probs, tokenize_response

    ref_model, ref_tok = reference
    sampling = SamplingConfig(max_new_tokens=s.max_new_tokens, temperature=1.0, batch_size=s.batch_size)
    ys = [a[0] for a in generate(model, tokenizer, prompts, sampling, seed=s.seed, prompt_suffix=prompt_suffix)]
    pi_ex = [tokenize_response(tokenizer, p, y, prompt_suffix, max_length=s.max_length) for p, y in zip(prompts, ys)]
    ref_ex = [tokenize_response(ref_tok, p, y, "", max_length=s.max_length) for p, y in zip(prompts, ys)]
    cut = sum(e.truncated for e in pi_ex + ref_ex)
    if cut:
        log.warning("heldout KL: %d sequence(s) longer than max_length %d were cut", cut, s.max_length)
    k1 = (sequence_log_probs(model, tokenizer, pi_ex, s.batch_size)
          - sequence_log_probs(ref_model, ref_tok, ref_ex, s.batch_size))
    return {f"{PREFIX}kl": float(k1.mean()), f"{PREFIX}kl_truncated": float(cut)}


def sampled_figures(model, tokenizer, prompts, s: HeldoutSettings, prompt_suffix: str = "") -> dict[str, float]:
    """heldout/sampled/oracle/<attribute>: oracle means over samples_per_prompt answers per prompt at
    sample_temperature (what the policy's sampling distribution gives, beside its greedy answer)."""
    from align.data import flatten_messages
    from align.generation import SamplingConfig, generate
    from align.world.oracle import OracleJudge

    sampling = SamplingConfig(max_new_tokens=s.max_new_tokens, temperature=s.sample_temperature,
                              n=s.samples_per_prompt, batch_size=max(1, s.batch_size // s.samples_per_prompt))
    out = generate(model, tokenizer, prompts, sampling, seed=s.seed + 1, prompt_suffix=prompt_suffix)
    flat = [flatten_messages(p) for p, rs in zip(prompts, out) for _ in rs]
    means = OracleJudge().mean_attributes(flat, [r for rs in out for r in rs])
    return {f"{PREFIX}sampled/oracle/{k}": float(v) for k, v in means.items() if k != "coverage"}


def measure(model, tokenizer, prompts, s: HeldoutSettings, *, prompt_suffix: str = "", scorer=None,
            reference=None) -> tuple[dict[str, float], list[dict]]:
    """One model's heldout/* figures and its per-prompt rows (prompt, answer, oracle and RM labels)."""
    from align.data import flatten_messages

    answers = greedy_answers(model, tokenizer, prompts, s, prompt_suffix)
    metrics, labels = oracle_figures(prompts, answers)
    rm_rows = [None] * len(answers)
    if scorer is not None:
        rm_metrics, rm_rows = rm_figures(scorer, prompts, answers, s.weights)
        metrics.update(rm_metrics)
    if s.sample_temperature:
        metrics.update(sampled_figures(model, tokenizer, prompts, s, prompt_suffix))
    if reference is not None:
        metrics.update(kl_estimate(model, tokenizer, reference, prompts[: s.kl_samples], s, prompt_suffix))
    rows = [{"prompt": flatten_messages(p), "answer": a, "oracle": o, "rm": r}
            for p, a, o, r in zip(prompts, answers, labels, rm_rows)]
    return metrics, rows


def heldout_results(models, prompts, s: HeldoutSettings, out_dir: str | Path, *, reward_model: str | None = None,
                    kl_reference: str | None = None, baseline: str | None = None) -> dict[str, dict[str, float]]:
    """{model name: heldout/* figures} for every local model of `models` (evals.pipeline.ModelUnderTest)."""
    from evals.pipeline import safe_name

    out = Path(out_dir)
    scorer = reference = None
    if reward_model:
        from align.errors import AlignError
        from rewards.scoring import RewardScorer

        scorer = RewardScorer.load(reward_model)
        try:  # heldout/rm_reward is standardised: without the RM's statistics, fail now, not after a model
            scorer.reward_mean_std(s.weights)
        except AlignError as exc:
            raise AlignError(f"heldout.reward_model {reward_model}: {exc}") from exc
    if kl_reference:
        reference = _load(kl_reference)
    results: dict[str, dict[str, float]] = {}
    for m in models:
        if m.path is None:
            log.info("%s: an endpoint, no held-out figures", m.name)
            continue
        cache = out / f"{safe_name(m.name)}.json"
        if cache.is_file():
            log.info("%s: reusing held-out figures from %s", m.name, cache)
            results[m.name] = json.loads(cache.read_text())
            continue
        model, tok = _load(m.path)
        metrics, rows = measure(model, tok, prompts, s, prompt_suffix=m.prompt_suffix, scorer=scorer,
                                reference=reference)
        write_jsonl(out / f"{safe_name(m.name)}.jsonl", rows)
        atomic_write_json(cache, metrics)
        results[m.name] = metrics
        log.info("%s held-out: %s", m.name, "  ".join(f"{k[len(PREFIX):]}={v:.3f}" for k, v in metrics.items()))
        del model, tok
        gc.collect()
    add_gains(results, baseline)
    return results


def add_gains(results: dict[str, dict[str, float]], baseline: str | None) -> None:
    """Gains of every other model over `baseline` (in place); nothing when the baseline was not measured."""
    if baseline is None:
        return
    if baseline not in results:
        log.warning("held-out gains: baseline %r has no held-out figures (measured: %s)", baseline,
                    ", ".join(results) or "none")
        return
    base = results[baseline]
    oracle, rm = f"{PREFIX}oracle/helpfulness", f"{PREFIX}rm/helpfulness"
    for name, r in results.items():
        if name == baseline:
            continue
        r[f"{PREFIX}gain/oracle_helpfulness"] = r[oracle] - base[oracle]
        if rm in r and rm in base:
            r[f"{PREFIX}gain/rm_helpfulness"] = r[rm] - base[rm]
            r[f"{PREFIX}hacking_gap"] = r[f"{PREFIX}gain/rm_helpfulness"] - r[f"{PREFIX}gain/oracle_helpfulness"]
