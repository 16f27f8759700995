"""`align generate`: sample responses from a (SteerLM) model at a target attribute vector."""
from __future__ import annotations

import argparse

DESCRIPTION = """\
Answer each prompt with N sampled responses, conditioned on an attribute vector (SteerLM 1.0
/ 2.0 models put it at the start of the assistant turn). Writes JSONL rows
{"messages", "target", "responses"} to --out, or prints them.

examples:
  align generate --model runs/quickstart/steerlm2/model --prompts runs/quickstart/world/data/prompts_test.jsonl \\
      --attributes helpfulness:4,correctness:4,coherence:4,complexity:2,verbosity:1 --max-prompts 5
  align generate --model my_steerlm --prompt "Add 2 and 3." --attributes verbosity:3 -n 4 --temperature 0.7
"""


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="sample responses at a target attribute vector (SteerLM)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model dir / hub id (or dir/file.gguf)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompts", help="prompt file (prompt / messages / turns rows), dir or hub id")
    src.add_argument("--prompt", action="append", help="a single user prompt (repeatable)")
    p.add_argument("--attributes", default="", help="label string name:value,... (empty: unconditioned)")
    p.add_argument("--marker", default=None, help="marker before the label string (default <extra_id_2>)")
    p.add_argument("--max-prompts", type=int, help="use only the first N prompts")
    p.add_argument("-n", type=int, default=1, help="responses per prompt")
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling")
    p.add_argument("--max-new-tokens", type=int, default=64, help="tokens per response")
    p.add_argument("--batch-size", type=int, default=32, help="prompts per generation batch")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--out", help="output JSONL (default: print)")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    from pathlib import Path

    from align.config.model_spec import ModelSpec
    from align.data import load_prompts
    from align.errors import ConfigError
    from align.generation import SamplingConfig
    from align.models import load_model
    from align.steerlm.generate import steered_generate
    from align.steerlm.labels import DEFAULT_MARKER, parse_label

    try:
        target = parse_label(args.attributes) if args.attributes.strip() else None
    except ValueError as exc:
        raise ConfigError(f"--attributes: {exc}") from None
    if args.n < 1 or args.max_new_tokens < 1:
        raise ConfigError("-n and --max-new-tokens must be >= 1")
    prompts = load_prompts(args.prompts) if args.prompts else [[{"role": "user", "content": t}] for t in args.prompt]
    prompts = prompts[: args.max_prompts] if args.max_prompts else prompts
    model, tok = load_model(ModelSpec(path=args.model))
    sampling = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                              n=args.n, batch_size=args.batch_size)
    outs = steered_generate(model, tok, prompts, target, sampling, marker=args.marker or DEFAULT_MARKER,
                            seed=args.seed)
    lines = [json.dumps({"messages": p, "target": target, "responses": r}) for p, r in zip(prompts, outs)]
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")
        print(f"wrote {len(lines)} rows to {args.out}")
    else:
        print("\n".join(lines))
    return 0
