"""Held-out evaluation shared by the alignment stages: greedy answers scored by the world oracle,
the same answers scored by a reward model, the starting policy's headroom, and the gains.

What each alignment stage's metrics.json gets when `oracle_eval` is set (world prompts):
- `oracle/<attr>/before|after`: oracle attributes of greedy answers (the gold judge);
- `rm/<attr>/before|after`, `rm/reward/before|after`: the reward model's view of the same
  answers (`oracle_eval.reward_model`), standardised goodness for `rm/reward`;
- `headroom/...`: what the starting policy could gain, read off `best_of` samples per prompt at
  the stage's sampling settings: mean oracle helpfulness of the samples, of the best one and, with
  a reward model, of the one it ranks first (`headroom/rm_pick_helpfulness`); the same after
  training as `sampled/helpfulness/after`, `sampled/best_of_n_helpfulness/after` and
  `sampled/rm_pick_helpfulness/after`;
- `gain/oracle_helpfulness`, `gain/rm_helpfulness`, `gain/rm_reward`,
  `gain/oracle_sampled_helpfulness` (after - before) and
  `hacking_gap` = RM-predicted helpfulness gain - oracle helpfulness gain: positive when the
  policy learned what the reward model likes but the oracle does not.
"""
from __future__ import annotations

import copy
import logging

from align.attributes import ATTRIBUTES

log = logging.getLogger("align")


def oracle_eval(model, tokenizer, prompts: list[list[dict]], *, max_new_tokens: int, batch_size: int,
                prompt_suffix: str = "") -> dict[str, float]:
    """Mean oracle attributes of greedy answers, plus the fraction of prompts the oracle understood."""
    scores, _ = _greedy_oracle(model, tokenizer, prompts, max_new_tokens, batch_size, prompt_suffix)
    return scores


def _greedy_oracle(model, tokenizer, prompts, max_new_tokens, batch_size, prompt_suffix):
    from align.data import flatten_messages
    from align.generation import SamplingConfig, generate
    from align.world.oracle import OracleJudge

    answers = [a[0] for a in generate(model, tokenizer, prompts, SamplingConfig(max_new_tokens=max_new_tokens,
                                                                                  batch_size=batch_size),
                                      prompt_suffix=prompt_suffix)]
    means = OracleJudge().mean_attributes([flatten_messages(p) for p in prompts], answers)
    return {k: float(v) for k, v in means.items()}, answers


def oracle_metrics(scores: dict[str, float], when: str) -> dict[str, float]:
    """{'helpfulness': 2.1, ...} -> {'oracle/helpfulness/before': 2.1, ...}."""
    out = {f"oracle/{a}/{when}": scores[a] for a in ATTRIBUTES if a in scores}
    if "coverage" in scores:
        out[f"oracle/coverage/{when}"] = scores["coverage"]
    return out


def best_of_n(model, tokenizer, prompts: list[list[dict]], *, n: int, temperature: float, top_p: float,
              max_new_tokens: int, batch_size: int, prompt_suffix: str = "", seed: int = 0,
              scorer=None) -> dict[str, float]:
    """Headroom: oracle helpfulness of n samples per prompt, their mean and the best one's (per prompt, averaged).

    With a reward model (`scorer`, goodness weights), also the oracle helpfulness of the sample the
    RM ranks first (`headroom/rm_pick_helpfulness`, best-of-n selection by that RM): below the greedy
    answer's, the RM prefers worse answers than the greedy one among the policy's own samples.
    Prompts the oracle does not understand are left out; an empty result when none is understood.
    """
    from align.data import flatten_messages
    from align.generation import SamplingConfig, generate
    from align.world.oracle import annotate

    sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, n=n,
                              batch_size=max(1, batch_size // n))
    samples = generate(model, tokenizer, prompts, sampling, seed=seed, prompt_suffix=prompt_suffix)
    per_prompt, kept = [], []
    for p, rs in zip(prompts, samples):
        labels = [annotate(flatten_messages(p), r) for r in rs]
        if all(lab is not None for lab in labels):
            per_prompt.append([lab["helpfulness"] for lab in labels])
            kept.append((p, rs))
    if not per_prompt:
        return {}
    out = {"headroom/samples": float(n), "headroom/temperature": float(temperature),
           "headroom/sample_helpfulness": sum(sum(h) / len(h) for h in per_prompt) / len(per_prompt),
           "headroom/best_of_n_helpfulness": sum(max(h) for h in per_prompt) / len(per_prompt),
           "headroom/best_is_4": sum(max(h) == 4 for h in per_prompt) / len(per_prompt)}
    if scorer is not None:
        out.update(_rm_pick(scorer, kept, per_prompt))
    return out


def _rm_pick(scorer, kept: list[tuple[list[dict], list[str]]], helpfulness: list[list[int]]) -> dict[str, float]:
    """Mean oracle helpfulness of the sample with the highest RM goodness, per prompt."""
    from align.errors import AlignError

    try:
        rm = scorer.scalar([p for p, rs in kept for _ in rs], [r for _, rs in kept for r in rs], weights="goodness")
    except AlignError as exc:  # an RM without the goodness attributes
        log.warning("headroom/rm_pick_helpfulness not computed: %s", exc)
        return {}
    picked, i = [], 0
    for (_, rs), h in zip(kept, helpfulness):
        scores = rm[i:i + len(rs)].tolist()
        picked.append(h[max(range(len(rs)), key=scores.__getitem__)])
        i += len(rs)
    return {"headroom/rm_pick_helpfulness": sum(picked) / len(picked)}


def rm_metrics(scorer, prompts: list[list[dict]], answers: list[str], when: str) -> dict[str, float]:
    """The reward model's mean predicted attributes and standardised goodness on given answers."""
    from align.errors import AlignError
    from rewards.presets import resolve_weights

    pred = scorer.predict(prompts, answers)  # [N, A]: one RM pass serves both figures
    out = {f"rm/{a}/{when}": float(pred[:, i].mean()) for i, a in enumerate(scorer.attributes)}
    try:
        mean, std = scorer.reward_mean_std("goodness")
        out[f"rm/reward/{when}"] = float(((pred @ resolve_weights("goodness", scorer.attributes) - mean) / std).mean())
    except AlignError as exc:  # an RM without the goodness attributes or its statistics: attributes only
        log.warning("rm/reward not computed: %s", exc)
    return out


def gain_metrics(metrics: dict) -> dict[str, float]:
    """after - before for the oracle's and the RM's helpfulness and the RM reward, and the hacking gap."""
    out = {}
    pairs = {"gain/oracle_helpfulness": "oracle/helpfulness", "gain/oracle_correctness": "oracle/correctness",
             "gain/rm_helpfulness": "rm/helpfulness", "gain/rm_reward": "rm/reward"}
    for key, base in pairs.items():
        before, after = metrics.get(f"{base}/before"), metrics.get(f"{base}/after")
        if before is not None and after is not None:
            out[key] = float(after) - float(before)
    if "headroom/sample_helpfulness" in metrics and "sampled/helpfulness/after" in metrics:
        out["gain/oracle_sampled_helpfulness"] = metrics["sampled/helpfulness/after"] - metrics["headroom/sample_helpfulness"]
    if "gain/rm_helpfulness" in out and "gain/oracle_helpfulness" in out:
        out["hacking_gap"] = out["gain/rm_helpfulness"] - out["gain/oracle_helpfulness"]
    return out


class StageEvaluator:
    """The `oracle_eval` block of one stage: held-out prompts, the optional reward model, evaluations.

    `run(model, tok, when, prompt_suffix)` gives oracle (and RM) figures of greedy answers;
    `headroom(...)` the best-of-n figures of the starting policy; `gains(metrics)` the differences.
    With `cfg` None every call returns {} (the stage has no oracle_eval).
    """

    def __init__(self, cfg, ctx):
        self.cfg, self.ctx = cfg, ctx
        self.prompts = self.scorer = None
        if cfg is None:
            return
        from align.data import load_prompts

        self.prompts = load_prompts(ctx.resolve(cfg.prompts, "prompts_test"))[: cfg.max_prompts]
        if cfg.reward_model is not None:
            from rewards.scoring import RewardScorer

            self.scorer = RewardScorer.load(ctx.resolve(cfg.reward_model, "model"))

    def run(self, model, tokenizer, when: str, prompt_suffix: str = "") -> dict[str, float]:
        if self.cfg is None:
            return {}
        scores, answers = _greedy_oracle(model, tokenizer, self.prompts, self.cfg.max_new_tokens,
                                         self.cfg.batch_size, prompt_suffix)
        out = oracle_metrics(scores, when)
        if self.scorer is not None:
            out.update(rm_metrics(self.scorer, self.prompts, answers, when))
        log.info("oracle %s: %s", when, "  ".join(f"{k}={v:.3f}" for k, v in out.items()))
        return out

    def headroom(self, model, tokenizer, *, temperature: float, top_p: float = 1.0, prompt_suffix: str = "",
                 seed: int = 0, when: str = "before") -> dict[str, float]:
        """Best-of-n figures: `headroom/*` of the starting policy (when='before'); after training the
        same measurement as `sampled/helpfulness/after`, `sampled/best_of_n_helpfulness/after`."""
        if self.cfg is None or not self.cfg.best_of:
            return {}
        out = best_of_n(model, tokenizer, self.prompts, n=self.cfg.best_of, temperature=temperature, top_p=top_p,
                        max_new_tokens=self.cfg.max_new_tokens, batch_size=self.cfg.batch_size,
                        prompt_suffix=prompt_suffix, seed=seed, scorer=self.scorer)
        if when != "before":
            renamed = {"headroom/sample_helpfulness": "sampled/helpfulness/", "headroom/best_of_n_helpfulness":
                       "sampled/best_of_n_helpfulness/", "headroom/rm_pick_helpfulness": "sampled/rm_pick_helpfulness/"}
            out = {new + when: out[old] for old, new in renamed.items() if old in out}
        if out:
            log.info("best of %d samples (%s): %s", self.cfg.best_of, when,
                     "  ".join(f"{k}={v:.3f}" for k, v in out.items()))
        return out

    @staticmethod
    def gains(metrics: dict) -> dict[str, float]:
        out = gain_metrics(metrics)
        if out:
            log.info("gains: %s", "  ".join(f"{k}={v:+.3f}" for k, v in out.items()))
        return out


# ---- sampled-response metrics (the DPO and PPO stages) ------------------------------------------
def reference_for_eval(model, ref_model=None):
    """A frozen reference for KL metrics: the given one, None for peft (adapter disabled), else a copy."""
    if ref_model is not None or hasattr(model, "disable_adapter"):
        return ref_model
    ref = copy.deepcopy(model).eval()
    ref.requires_grad_(False)
    return ref


def policy_sample_metrics(model, ref_model, tokenizer, config, ctx, reward_fn, when: str, *,
                          prompt_suffix: str = "", target: dict | None = None) -> dict[str, float]:
    """Reward, KL(policy || reference) and length of one sampled (T=1) response per held-out prompt.

    KL is the sequence-level k1 estimate (sum over tokens of log pi - log ref), unbiased for
    samples of pi. Prompts are the oracle_eval prompts; empty when either is off. `prompt_suffix`
    (a SteerLM attribute prefix) asks every prompt for `target`, which an attribute-target reward gets.
    """
    import torch

    from align.data import load_prompts
    from align.rollouts import positions as _positions
    from align.rollouts import sample_responses
    from align.logprobs import logprobs_from_model
    from align.trainers.dpo import reference_context

    if config.oracle_eval is None or config.eval_samples == 0:
        return {}
    prompts = load_prompts(ctx.resolve(config.oracle_eval.prompts, "prompts_test"))[: config.eval_samples]
    batch, texts, _ = sample_responses(model, tokenizer, prompts, max_new_tokens=config.oracle_eval.max_new_tokens,
                                       seed=ctx.seed + 7, prompt_suffix=prompt_suffix)
    P, mask = batch["prompt_len"], batch["response_mask"]

    @torch.no_grad()
    def logps(m):
        was = m.training
        m.eval()
        out = logprobs_from_model(m, batch["input_ids"], attention_mask=batch["attention_mask"],
                                  position_ids=_positions(batch["attention_mask"]), use_cache=False, start=P - 1,
                                  mask=mask)
        m.train(was)
        return out.logps.sum(1)

    policy = logps(model)
    if ref_model is None:
        with reference_context(model):
            ref = logps(model)
    else:
        ref = logps(ref_model.to(policy.device))
    out = {f"kl/{when}": (policy - ref).mean().item(), f"response_length/{when}": mask.sum(1).mean().item()}
    if reward_fn is not None:
        kwargs = {"targets": [target] * len(texts)} if getattr(reward_fn, "uses_targets", False) else {}
        scores = reward_fn(prompts, texts, **kwargs)
        out[f"reward/{when}"] = float(sum(scores) / len(scores))
    log.info("samples %s: %s", when, "  ".join(f"{k}={v:.3f}" for k, v in out.items()))
    return out
