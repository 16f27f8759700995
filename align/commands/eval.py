"""`align eval`: MT-Bench-style evaluation from the command line (thin: parse, hand over)."""
from __future__ import annotations

import argparse

DESCRIPTION = """\
Answer a question set with one or more models, judge every turn, and write answers,
judgements, results.json, report.md and radar.png into --out. Answers already in --out
are reused (judging reruns without regenerating) unless --regenerate.

examples:
  align eval --model runs/quickstart/sft/model --questions runs/quickstart/world/data/mtbench_questions.jsonl \\
      --references runs/quickstart/world/data/mtbench_references.jsonl --judge oracle --out runs/eval_world
  align eval --model runs/quickstart/sft/model --questions mt_bench --judge rm --reward-model runs/quickstart/rm/model
  align eval --endpoint http://127.0.0.1:8000/v1 --endpoint-model sft --questions mt_bench \\
      --judge llm --judge-url https://api.openai.com/v1 --judge-model gpt-4-turbo --judge-key-env OPENAI_API_KEY
"""


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="MT-Bench-style evaluation of models (answers, judge, report, chart)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=[], metavar="PATH[=NAME]",
                   help="model dir / hub id / .gguf under test, optionally named (repeatable)")
    p.add_argument("--endpoint", help="base URL of an OpenAI-compatible server with the model under test")
    p.add_argument("--endpoint-model", default="model", help="model name sent to --endpoint")
    p.add_argument("--endpoint-key-env", help="environment variable holding --endpoint's API key")
    p.add_argument("--questions", required=True, help="mt_bench (the real 80), a JSONL file, dir or hub dataset")
    p.add_argument("--references", help="reference answers JSONL (or a dir of them)")
    p.add_argument("--split", help="split of a hub dataset")
    p.add_argument("--max-questions", type=int, help="use only the first N questions")
    p.add_argument("--judge", choices=["oracle", "rm", "llm"], default="oracle", help="who rates the answers")
    p.add_argument("--reward-model", help="--judge rm: reward model directory")
    p.add_argument("--weights", default="goodness", help="--judge rm: weight preset")
    p.add_argument("--judge-url", help="--judge llm: base URL of the judge endpoint")
    p.add_argument("--judge-model", help="--judge llm: judge model name")
    p.add_argument("--judge-key-env", help="--judge llm: environment variable holding the judge's API key")
    p.add_argument("--judge-prompts", default="mt_bench", help="--judge llm: judge-prompt JSONL (default: MT-Bench's)")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight per endpoint (halved on a timeout)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds per request; a timed-out request is retried with twice as long")
    p.add_argument("--retries", type=int, default=4, help="retries of a failed request (exponential backoff)")
    p.add_argument("--max-new-tokens", type=int, default=1024, help="tokens per answer turn (FastChat: 1024)")
    p.add_argument("--engine", choices=["native", "hf", "vllm"], default="native",
                   help="how local models generate answers (vllm: `make install-vllm`)")
    p.add_argument("--temperature", default="fastchat",
                   help="answer temperature: fastchat (FastChat's per-category table, the default) or a number (0: greedy)")
    p.add_argument("--batch-size", type=int, default=16, help="conversations per generation batch (local)")
    p.add_argument("--steered", action="append", default=[], metavar="NAME",
                   help="a SteerLM model (by NAME): answers behind the paper's attribute labels (repeatable)")
    p.add_argument("--pairwise", metavar="NAME", help="also compare every model with model NAME (position swap)")
    p.add_argument("--out", default="runs/eval", help="output directory")
    p.add_argument("--regenerate", action="store_true", help="regenerate answers even if saved ones exist")
    p.add_argument("--title", default="MT-Bench-style evaluation", help="report title")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from align.engines import INSTALL_HINT, vllm_available
    from align.errors import ConfigError

    if args.engine == "vllm" and not vllm_available():
        raise ConfigError([f"--engine vllm needs the vllm package, which is not installed: {INSTALL_HINT}"],
                          "align eval")
    from align.stages.mtbench import (
        EndpointSpec,
        JudgeConfig,
        MTBenchConfig,
        build_judge,
    )
    from align.steerlm.labels import attribute_prefix
    from evals.answers import model_label
    from evals.pipeline import GenerationSettings, ModelUnderTest, evaluate
    from evals.questions import load_questions

    defaults = MTBenchConfig.model_fields
    suffix = attribute_prefix(defaults["steer_target"].default_factory(), defaults["steer_marker"].default)
    models = []
    for item in args.model:
        path, _, name = item.partition("=")
        name = name or model_label(path)
        models.append(ModelUnderTest(name, path=path, prompt_suffix=suffix if name in args.steered else ""))
    if args.endpoint:
        ep = EndpointSpec(base_url=args.endpoint, model=args.endpoint_model, api_key_env=args.endpoint_key_env,
                          concurrency=args.concurrency, timeout=args.timeout, retries=args.retries)
        models.append(ModelUnderTest(args.endpoint_model, endpoint=ep.client()))
    if not models:
        raise ConfigError(["give --model PATH (repeatable) or --endpoint URL"], "align eval")
    try:
        judge_cfg = JudgeConfig(
            kind={"rm": "reward_model"}.get(args.judge, args.judge), reward_model=args.reward_model,
            weights=args.weights, prompts=args.judge_prompts,
            endpoint=EndpointSpec(base_url=args.judge_url, model=args.judge_model, api_key_env=args.judge_key_env,
                                  concurrency=args.concurrency, timeout=args.timeout, retries=args.retries)
            if args.judge == "llm" and args.judge_url else None)
    except ValueError as exc:
        raise ConfigError([str(exc)], "align eval") from exc
    questions = load_questions(args.questions, references=args.references, split=args.split)
    if args.max_questions:
        questions = questions[: args.max_questions]
    results = evaluate(models, questions, build_judge(judge_cfg), args.out, reuse_answers=not args.regenerate,
                       gen=GenerationSettings(args.max_new_tokens, _temperature(args.temperature), args.batch_size,
                                              engine=args.engine),
                       title=args.title, pairwise_baseline=args.pairwise,
                       references=args.references or ("mt_bench/reference_answer/gpt-4.jsonl"
                                                      if args.questions == "mt_bench" else None))
    for name, r in results.items():
        score = r.get("mtbench/score")
        print(f"{name}: mtbench/score {'-' if score is None else f'{score:.2f}'} "
              f"({r.get('mtbench/valid', 0):.0f} of {r.get('mtbench/judged', 0):.0f} judgements valid)")
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0


def _temperature(text: str) -> float | str:
    from align.errors import ConfigError

    if text == "fastchat":
        return text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < float("inf"):
        raise ConfigError(f"--temperature: expected 'fastchat' or a number >= 0, got {text!r}")
    return value
