"""Stage `kind: steerlm2` (SPEC.md section 4): the SteerLM 2.0 loop, sampling included.

Per iteration k = 1..K: sample n responses per (prompt, target) from Q' (the SteerLM 1.0
model, then the previous iteration's); score log P(a|x,y) with the reward model, log P(y|x)
under the unconditional `reference`, log Q'(y|a,x) under Q'; train Q_theta (from Q') with
the SteerLM 2.0 loss; Q' <- Q_theta. Each finished iteration leaves
`iterations/iter{k}/{samples.jsonl, model/, metrics.json}`; a rerun of an interrupted stage
skips finished iterations and resumes the unfinished one's training from its checkpoint.

Distributed (DDP or DeepSpeed ZeRO-2/3 through `distributed`): each process loads Q' whole
from disk, samples and scores a contiguous shard of the iteration's (prompt, target) items
(sampling seeds depend on the rank, so a run is reproducible for a given process count), and
the records are gathered in rank order so every process trains on the same full sample set;
rank 0 writes samples.jsonl and metrics.json. Training goes through BaseTrainer (its engine
shards the weights); the trained Q_theta is saved whole (ZeRO-3 shards gathered) and reloaded
whole on every process for the next iteration's sampling. Steerability runs on rank 0 only, and
rank 0 samples with the copy of Q' it measured rather than loading it again.
"""
from __future__ import annotations

import json
import logging
import math
import random
import shutil
from typing import Annotated, Literal

from pydantic import Field, model_validator

from align.config.base import OracleEvalConfig, Ref, TrainConfig
from align.engines.base import ENGINE_HELP, EngineName
from align.errors import ConfigError
from align.io_utils import read_jsonl, write_jsonl
from align.stages.base import Stage, StageConfig, TrainerChoice, local_file, register_stage
from align.steerlm.labels import DEFAULT_MARKER, attribute_prefix, format_label
from align.steerlm.steer_eval import (
    WeightedTarget,
    draw_weighted,
    PAPER_TARGET,
    SteerEvalConfig,
    load_eval_prompts,
    load_scorer,
    steer_metrics,
)

log = logging.getLogger("align")
PAPER_CONCENTRATION = 24.0  # of the Beta model of P(a|x,y), for RM predictions (SPEC.md section 4)


class SteerLM2Config(StageConfig, TrainerChoice):
    """SteerLM 2.0: iterated importance-weighted fitting of Q_theta(y|a,x) to P(a|x,y) P(y|x)."""

    kind: Literal["steerlm2"] = "steerlm2"
    policy: Annotated[str, Ref(output="model")] = Field(description="Initial proposal Q' (the SteerLM 1.0 stage or dir).")
    reference: Annotated[str, Ref(output="model")] = Field(description="Unconditional SFT model for P(y|x).")
    reward_model: Annotated[str | None, Ref(output="model")] = Field(
        None, description="Attribute reward model: P(a|x,y) from its predictions, and the steer_rm figures.")
    attribute_source: Literal["reward_model", "oracle"] = Field(
        "reward_model", description="P(a|x,y) from the reward model's predictions, or from the world oracle's "
                                    "integer labels (the gold ablation; world prompts only).")
    concentration: float | dict[str, float] = Field(
        PAPER_CONCENTRATION, description="Concentration of the Beta model of P(a|x,y) (paper: 24, for RM "
                          "predictions), one for all attributes or per attribute ({verbosity: 96}; unnamed ones "
                          "keep 24). A sharper one trusts the scorer more: at 24 a label one step off keeps 6-11 % "
                          "of an exact hit's probability. Sharper values did not lower the world's steering error "
                          "(README, 'Where the verbosity error comes from'); the recipes keep 24.")
    prompts: Annotated[str, Ref(output="prompts_train")] = Field(description="Prompts to sample on.")
    max_prompts: int = Field(64, ge=1, description="Prompts per iteration (a fresh draw each iteration).")
    iterations: int = Field(2, ge=1, description="SteerLM 2.0 iterations (paper: 2).")
    samples_per_prompt: int = Field(8, ge=2, description="n responses per (prompt, target) (paper: 10).")
    temperature: float = Field(0.7, gt=0, description="Sampling temperature (paper: 0.7).")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling (paper: 0.9).")
    engine: EngineName = Field("native", description=ENGINE_HELP + " Weights synced at each iteration; log Q' "
                               "is always the trainer's.")
    max_new_tokens: int = Field(48, ge=1, description="Tokens per sampled response.")
    generation_batch_size: int = Field(32, ge=1, description="Prompts per generation batch.")
    logprob_batch_size: int = Field(64, ge=1, description="Sequences per log-probability forward pass.")
    target: dict[str, int] | None = Field(None, description="Fixed target a (default: the paper's 4,4,4,2,2).")
    target_distribution: list[WeightedTarget] | None = Field(
        None, description="Instead of `target`: draw a per prompt from these combinations.")
    marker: str = Field(DEFAULT_MARKER, description="Marker before the label string (as in SteerLM 1.0).")
    normalize_by_tokens: bool = Field(True, description="Divide each group's loss by its mean response tokens.")
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=2, lr=1e-5, batch_size=4),
                               description="Optimisation per iteration; batch_size counts (x, a) groups.")
    steerability: SteerEvalConfig | None = Field(None, description="Steering error of Q' before and after each iteration.")
    oracle_eval: OracleEvalConfig | None = Field(
        None, description="Oracle scores of greedy answers at `eval_target`: of Q' before, after each iteration.")
    eval_target: dict[str, int] = Field(default_factory=lambda: dict(PAPER_TARGET),
                                        description="Attributes requested in the oracle eval (as in steerlm_sft).")

    @model_validator(mode="after")
    def _one_target(self) -> "SteerLM2Config":
        if self.attribute_source == "reward_model" and self.reward_model is None:
            raise ValueError("attribute_source reward_model needs reward_model: (a reward_model stage or dir); "
                             "or set attribute_source: oracle")
        if self.target is not None and self.target_distribution is not None:
            raise ValueError("give `target` or `target_distribution`, not both")
        if self.target is not None:
            format_label(self.target)
        values = self.concentration.values() if isinstance(self.concentration, dict) else [self.concentration]
        if any(not v > 0 for v in values):
            raise ValueError(f"concentration must be > 0, got {self.concentration}")
        return self


def draw_targets(config: SteerLM2Config, count: int, rng: random.Random) -> list[dict[str, int]]:
    if config.target_distribution is None:
        return [dict(config.target or PAPER_TARGET)] * count
    return draw_weighted(config.target_distribution, count, rng)


def attribute_log_probs(attributes: list[str], pred, targets: list[dict[str, int]],
                        concentration: float | dict[str, float] = PAPER_CONCENTRATION):
    """log P(a|x,y) per row [N] from RM predictions pred [N, A] (columns in `attributes` order).

    `concentration`: one for every attribute, or per attribute name (unnamed ones: 24).

    The same Beta-bin sum as RewardScorer.log_prob (SPEC.md section 4), computed from
    predictions we need anyway, so the reward model runs once per sample.
    """
    import torch

    from rewards.beta import attribute_log_prob

    out = torch.zeros(len(targets))
    by_target: dict[str, list[int]] = {}
    for i, t in enumerate(targets):
        by_target.setdefault(format_label(t), []).append(i)
    for idx in by_target.values():
        target = targets[idx[0]]
        cols = [attributes.index(a) for a in target]
        values = torch.tensor([float(target[a]) for a in target])  # [K]
        kappa = (torch.tensor([float(concentration.get(a, PAPER_CONCENTRATION)) for a in target], dtype=torch.float64)
                 if isinstance(concentration, dict) else concentration)  # per column, broadcast over rows
        out[idx] = attribute_log_prob(pred[idx][:, cols].float(), values, concentration=kappa).cpu()
    return out


@register_stage
class SteerLM2Stage(Stage):
    """SteerLM 2.0 (sampling, Beta scoring, log-probabilities, weighted training), iterated."""

    kind = "steerlm2"
    Config = SteerLM2Config
    trainer_base = "align.trainers.steerlm2:SteerLM2Trainer"
    produces_model = True
    distributable = True

    @classmethod
    def outputs(cls, config) -> dict[str, str]:
        out = {"model": "model", "tokenizer": "model", "iterations": "iterations"}
        # each iteration's model by name (steerlm2.iter1), e.g. to compare iterations in an mtbench stage
        out.update({f"iter{k}": f"iterations/iter{k}/model" for k in range(1, config.iterations + 1)})
        return out

    @classmethod
    def input_checks(cls, config) -> list:
        from align.data import load_prompts

        return [("prompts", lambda: load_prompts(config.prompts))] if local_file(config.prompts) else []

    def run(self, config: SteerLM2Config, ctx) -> dict:
        from transformers import set_seed

        from align.data import load_prompts
        from align.distributed import process_state
        from align.models import load_saved

        state = process_state()  # before any model is placed: fixes the backend and this process's device
        set_seed(ctx.seed)
        reference, _ = load_saved(ctx.resolve(config.reference, "model"), seed=ctx.seed)
        reference.to(state.device).eval()
        from align.reward_sources import AttributeSourceSpec, build_attribute_scorer

        rm = load_scorer(ctx.resolve(config.reward_model, "model")) if config.reward_model else None
        source = (AttributeSourceSpec(oracle=True) if config.attribute_source == "oracle"
                  else AttributeSourceSpec(model=config.reward_model))
        scorer = rm if source.model else build_attribute_scorer(source, ctx)  # the RM is loaded once
        if isinstance(config.concentration, dict) and set(config.concentration) - set(scorer.attributes):
            unknown = sorted(set(config.concentration) - set(scorer.attributes))
            raise ConfigError(f"stage {ctx.name}: concentration names {unknown}, which its attribute scorer "
                              f"does not predict; it predicts {list(scorer.attributes)}")
        all_prompts = load_prompts(ctx.resolve(config.prompts, "prompts_train"))
        steer_prompts = load_eval_prompts(config.steerability, ctx) if config.steerability else None
        iter_root = ctx.work_dir / "iterations"
        metrics: dict = {"reward/source": source.describe()}
        proposal_dir = ctx.resolve(config.policy, "model")
        model = tok = None  # Q' (proposal_dir) when this process already holds it: rank 0 keeps what it measured
        evaluator = _Evaluations(config, ctx, state, steer_prompts, rm)
        if state.is_main_process and evaluator.wanted:
            model, tok = load_saved(proposal_dir, seed=ctx.seed)
            metrics.update(evaluator.start(model, tok))
        for k in range(1, config.iterations + 1):
            it_dir = iter_root / f"iter{k}"
            done = it_dir / "metrics.json"
            # Every process must take the same branch: rank 0 decides (it alone writes metrics.json).
            finished = _agree(state, done.exists())
            if finished:  # finished before an interruption: reuse it
                metrics.update(json.loads(done.read_text()))
                proposal_dir = str(it_dir / "model")
                model = tok = None
                log.info("iteration %d already done: reusing %s", k, it_dir)
                continue
            if model is None:
                model, tok = load_saved(proposal_dir, seed=ctx.seed)  # whole weights on every process, for sampling
            it_metrics = self._iteration(config, ctx, k, model.to(state.device), tok, reference, scorer,
                                         all_prompts, it_dir, state)
            model = tok = None
            proposal_dir = str(it_dir / "model")
            if state.is_main_process:
                if evaluator.wanted:  # the saved Q_theta, kept as the next iteration's Q'
                    model, tok = load_saved(proposal_dir, seed=ctx.seed)
                    it_metrics.update(evaluator.iteration(model, tok, k))
                done.write_text(json.dumps(it_metrics, indent=1))
            state.wait_for_everyone()
            metrics.update(it_metrics)
        if state.is_main_process:
            shutil.copytree(proposal_dir, ctx.work_dir / "model", dirs_exist_ok=True)
            final = load_saved(proposal_dir, seed=ctx.seed) if config.oracle_eval is not None else (None, None)
            metrics.update(evaluator.finish(metrics, *final))
        state.wait_for_everyone()
        return metrics

    def _iteration(self, config, ctx, k, model, tok, reference, scorer, all_prompts, it_dir, state) -> dict:
        """Sample, score, train; leaves samples.jsonl and model/ in it_dir; returns metrics for iteration k.

        Each process samples and scores its shard of the items; the records are gathered so
        every process trains on all of them.
        """
        import torch

        from align.steerlm.labels import attribute_prefix
        from align.steerlm.sequences import tokenize_response
        from align.steerlm.weights import (
            effective_sample_size,
            kl_divergence,
            log_normalized_weights,
        )
        from align.trainers.steerlm2 import SampleGroup

        rng = random.Random(ctx.seed * 1000 + k)
        prompts = rng.sample(all_prompts, min(config.max_prompts, len(all_prompts)))
        targets = draw_targets(config, len(prompts), rng)
        n = config.samples_per_prompt
        it_dir.mkdir(parents=True, exist_ok=True)
        samples_path = it_dir / "samples.jsonl"
        if _agree(state, samples_path.exists()):  # sampled and scored before an interruption
            records = read_jsonl(samples_path)
        else:
            rank, world = state.process_index, state.num_processes
            lo, hi = len(prompts) * rank // world, len(prompts) * (rank + 1) // world
            mine = self._sample_and_score(config, ctx, k, model, tok, reference, scorer, prompts[lo:hi],
                                          targets[lo:hi], first_group=lo, rank=rank)
            records = _gather_records(state, mine)
            if state.is_main_process:
                write_jsonl(samples_path, records)  # atomic: a resumed run never sees half a file
        groups = []
        for g in range(len(records) // n):
            recs = records[g * n:(g + 1) * n]
            prefix = attribute_prefix(recs[0]["target"], config.marker)
            groups.append(SampleGroup(
                [tokenize_response(tok, r["messages"], r["response"], prefix, max_length=config.train.max_length)
                 for r in recs],
                [r["log_p_attr"] for r in recs], [r["log_p_ref"] for r in recs], [r["log_q_prop"] for r in recs]))
        la = torch.tensor([g.log_p_attr for g in groups])
        log_w = log_normalized_weights(la, torch.tensor([g.log_p_ref for g in groups]),
                                       torch.tensor([g.log_q_prop for g in groups]))
        w = log_w.exp()
        log_uniform = torch.full_like(w, -math.log(n))  # b' at the start of the iteration (Q_theta = Q')
        out = {f"steerlm2/kl_w_b/iter{k}": float(kl_divergence(log_w, log_uniform).mean()),
               f"steerlm2/ess/iter{k}": float(effective_sample_size(w).mean()),
               f"steerlm2/log_p_attr/iter{k}": float(la.mean())}
        for a in scorer.attributes:  # the scorer's mean labels of the samples (RM predictions or oracle labels)
            out[f"steerlm2/rm/{a}/iter{k}"] = sum(r["rm"][a] for r in records) / len(records)
        trainer = self.build_trainer(config, model, tok, config.train, it_dir, seed=ctx.seed + k,
                                  normalize_by_tokens=config.normalize_by_tokens)
        _place_frozen(reference, scorer, "cpu")  # on a GPU: room for training; back for sampling / evaluation
        train_metrics = trainer.train(groups)
        _place_frozen(reference, scorer, state.device)
        out.update({f"{key}/iter{k}": v for key, v in train_metrics.items()})
        log.info("iteration %d: %s", k, "  ".join(f"{kk}={v:.4g}" for kk, v in out.items()))
        trainer.save_pretrained(it_dir / "model")  # every process: ZeRO-3 gathers the shards; then a barrier
        if trainer.is_main:
            shutil.rmtree(trainer.checkpoint_dir, ignore_errors=True)
        return out  # run() holds every process at a barrier before the next iteration

    def _sample_and_score(self, config, ctx, k, model, tok, reference, scorer, prompts, targets, *,
                          first_group: int, rank: int) -> list[dict]:
        """Sample n responses per (prompt, target) with Q' and score them: one record per response.

        Rank 0's seeds are those of a one-process run; other ranks' are offset by the rank.
        """
        from align.generation import SamplingConfig, generate
        from align.steerlm.labels import attribute_prefix
        from align.steerlm.sequences import sequence_log_probs, tokenize_response

        if not prompts:
            return []
        n = config.samples_per_prompt
        sampling = SamplingConfig(max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                                  top_p=config.top_p, n=n, batch_size=config.generation_batch_size)
        responses: list[list[str]] = [[] for _ in prompts]
        by_target: dict[str, list[int]] = {}
        for i, t in enumerate(targets):
            by_target.setdefault(format_label(t), []).append(i)
        from align.engines import reuse_or_start  # config.engine: started once per stage, synced each iteration

        self.sampler = sampler = reuse_or_start(getattr(self, "sampler", None), config.engine, model, tok,
                                                seed=ctx.seed + rank * 1_000_003)
        for j, (label, idx) in enumerate(sorted(by_target.items())):
            batch, seed = [prompts[i] for i in idx], ctx.seed * 7919 + k * 101 + j + rank * 1_000_003
            suffix = attribute_prefix(targets[idx[0]], config.marker)
            outs = (generate(model, tok, batch, sampling, seed=seed, prompt_suffix=suffix) if sampler is None
                    else sampler.generate_text(batch, sampling, seed=seed, prompt_suffix=suffix))
            for i, o in zip(idx, outs):
                responses[i] = o
        flat_p = [p for p in prompts for _ in range(n)]
        flat_t = [t for t in targets for _ in range(n)]
        flat_r = [r for rs in responses for r in rs]
        cond = [tokenize_response(tok, p, r, attribute_prefix(t, config.marker), max_length=config.train.max_length)
                for p, t, r in zip(flat_p, flat_t, flat_r)]
        plain = [tokenize_response(tok, p, r, "", max_length=config.train.max_length) for p, r in zip(flat_p, flat_r)]
        log_q = sequence_log_probs(model, tok, cond, config.logprob_batch_size)
        log_ref = sequence_log_probs(reference, tok, plain, config.logprob_batch_size)
        pred = scorer.predict(flat_p, flat_r)  # [N, A]
        log_attr = attribute_log_probs(scorer.attributes, pred, flat_t, config.concentration)
        return [{"group": first_group + i // n, "messages": p, "target": t, "response": r, "log_p_attr": float(a),
                 "log_p_ref": float(lr), "log_q_prop": float(lq), "rm": dict(zip(scorer.attributes, map(float, pr)))}
                for i, (p, t, r, a, lr, lq, pr) in enumerate(zip(flat_p, flat_t, flat_r, log_attr, log_ref,
                                                                  log_q, pred))]


class _Evaluations:
    """Rank 0's evaluations of Q' at the start and after each iteration: steerability and the oracle
    at `eval_target` (`oracle/<attr>/before`, `/iter<k>`, `/after`, headroom and gains)."""

    def __init__(self, config, ctx, state, steer_prompts, rm):
        from align.evaluation import StageEvaluator

        self.config, self.ctx, self.state, self.steer_prompts, self.rm = config, ctx, state, steer_prompts, rm
        self.oracle = StageEvaluator(config.oracle_eval if state.is_main_process else None, ctx)
        self.suffix = attribute_prefix(config.eval_target, config.marker)
        self.wanted = steer_prompts is not None or config.oracle_eval is not None

    def _both(self, model, tok, tag: str) -> dict:
        out = {}
        if self.steer_prompts is not None:
            out.update(_steer(self.config, self.ctx, self.state, model, tok, self.steer_prompts, self.rm, tag))
        if self.config.oracle_eval is not None:
            out.update(self.oracle.run(model.to(self.state.device), tok, tag, self.suffix))
        return out

    def start(self, model, tok) -> dict:
        out = self._both(model, tok, "iter0")
        out.update({k.replace("/iter0", "/before"): v for k, v in out.items()
                    if k.startswith(("oracle/", "rm/")) and k.endswith("/iter0")})
        out.update(self.oracle.headroom(model, tok, temperature=self.config.temperature, top_p=self.config.top_p,
                                        prompt_suffix=self.suffix, seed=self.ctx.seed + 11))
        return out

    def iteration(self, model, tok, k: int) -> dict:
        return self._both(model, tok, f"iter{k}")

    def finish(self, metrics: dict, model=None, tok=None) -> dict:
        last = f"/iter{self.config.iterations}"
        out = {k.replace(last, "/after"): v for k, v in metrics.items()
               if k.startswith(("oracle/", "rm/")) and k.endswith(last)}
        if model is not None:  # the final Q_theta, sampled as Q' was at the start
            out.update(self.oracle.headroom(model.to(self.state.device), tok, temperature=self.config.temperature,
                                            top_p=self.config.top_p, prompt_suffix=self.suffix,
                                            seed=self.ctx.seed + 11, when="after"))
        return {**out, **self.oracle.gains({**metrics, **out})}


def _steer(config, ctx, state, model, tok, prompts, scorer, tag: str) -> dict:
    """Steerability of `model` (rank 0 only), metrics suffixed with `tag`."""
    from align.steerlm.steerability import with_suffix

    found = steer_metrics(model.to(state.device), tok, prompts, config.steerability, config.marker, scorer, ctx.seed)
    log.info("steerability %s: %s", tag, "  ".join(f"{k}={v:.3f}" for k, v in found.items()))
    return with_suffix(found, tag)


def _place_frozen(reference, scorer, device) -> None:
    """Move the reference and reward models (a no-op when everything is on the CPU anyway)."""
    import torch

    if not torch.cuda.is_available():
        return
    reference.to(device)
    if hasattr(scorer, "model"):  # the oracle has no weights
        scorer.model.to(device)
    torch.cuda.empty_cache()


def _agree(state, flag: bool) -> bool:
    """Rank 0's `flag` on every process (a file rank 0 writes may appear mid-way for the others)."""
    if state.num_processes == 1:
        return flag
    from accelerate.utils import broadcast_object_list

    box = [flag]
    broadcast_object_list(box, from_process=0)
    return bool(box[0])


def _gather_records(state, mine: list[dict]) -> list[dict]:
    """Every process's records, concatenated in rank order (= item order: shards are contiguous)."""
    if state.num_processes == 1:
        return mine
    from accelerate.utils import gather_object

    return list(gather_object(mine))
