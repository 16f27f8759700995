"""`align score`: score (prompt, response) pairs, or a RewardBench-format file, with a reward model.

Thin: parse, load, hand over to rewards.scoring / rewards.rewardbench, print JSON lines.
"""
from __future__ import annotations

import argparse
import json
import sys

EPILOG = """\
input rows (JSONL/JSON/parquet):
  HelpSteer2 schema   {"prompt": "...", "response": "..."}   (multi-turn prompts flattened with <extra_id_1>)
  chat schema         {"messages": [..., {"role": "assistant", "content": "..."}]}
examples:
  align score runs/quickstart/rm/model data.jsonl                       per-attribute scores + goodness
  align score runs/quickstart/rm/model data.jsonl --weights llama3_70b --standardize
  align score runs/quickstart/rm/model data.jsonl --target helpfulness=4,verbosity=2   adds log P(a|x,y)
  align score runs/quickstart/rm/model --rewardbench rb.jsonl           subset and section accuracies
"""


def add_parser(sub) -> None:
    p = sub.add_parser("score", help="score responses with a reward model (attributes, scalar, log P(a|x,y))",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="reward-model directory (a reward_model stage's model/, or a "
                                 "sequence-classification checkpoint)")
    p.add_argument("data", nargs="?", help="rows to score (see below)")
    p.add_argument("--weights", default="goodness",
                   help="scalar weights: a preset (nemotron4_340b, llama3_70b, goodness) or a comma list in "
                        "attribute order (default: goodness)")
    p.add_argument("--standardize", action="store_true", help="standardise the scalar with the stored mean/std")
    p.add_argument("--target", help="attribute target for log P(a|x,y), e.g. helpfulness=4,verbosity=2")
    p.add_argument("--rewardbench", metavar="FILE", help="RewardBench-format pairs: print subset/section scores")
    p.add_argument("--rewardbench-split", metavar="SPLIT",
                   help="split of a saved dataset or hub id (default: filtered, as upstream, when present)")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per forward pass")
    p.add_argument("--max-length", type=int, default=1024, help="tokens kept per sequence (start cut)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("-o", "--output", help="write JSON lines here instead of stdout")
    p.set_defaults(func=run)


def _weights(text: str):
    if "," in text or text.replace(".", "", 1).lstrip("-").isdigit():
        return [float(x) for x in text.split(",")]
    return text


def _target(text: str, attributes: list[str]) -> dict[str, int]:
    """--target NAME=INT,...: names the reward model predicts, values on the label scale."""
    from align.attributes import MAX_VALUE, MIN_VALUE
    from align.errors import ConfigError

    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not value.strip().lstrip("-").isdigit():
            raise ConfigError(f"--target: expected NAME=INT pairs like helpfulness=4, got {part!r}")
        if name not in attributes:
            raise ConfigError(f"--target: {name!r} is not an attribute of this reward model "
                              f"({', '.join(attributes)})")
        if not MIN_VALUE <= int(value) <= MAX_VALUE:
            raise ConfigError(f"--target: {name}={int(value)} is outside the label scale {MIN_VALUE}..{MAX_VALUE}")
        out[name] = int(value)
    return out


def _rows(source: str) -> tuple[list[list[dict]], list[str]]:
    from align.data import load_rows, parse_helpsteer_prompt
    from align.errors import DataError

    prompts, responses = [], []
    for i, row in enumerate(load_rows(source), start=1):
        if "messages" in row:
            msgs = row["messages"]
            if not msgs or msgs[-1].get("role") != "assistant":
                raise DataError(f"{source}: row {i}: 'messages' must end with an assistant turn")
            prompts.append(msgs[:-1])
            responses.append(msgs[-1]["content"])
        elif "prompt" in row and "response" in row:
            try:
                prompts.append(parse_helpsteer_prompt(row["prompt"]))
            except ValueError as exc:
                raise DataError(f"{source}: row {i}: field 'prompt': {exc}") from None
            responses.append(row["response"])
        else:
            raise DataError(f"{source}: row {i}: needs 'prompt' + 'response' or 'messages'")
    return prompts, responses


def run(args) -> int:
    from align.errors import AlignError
    from rewards.scoring import RewardScorer

    if not args.data and not args.rewardbench:
        raise AlignError("give DATA to score, or --rewardbench FILE")
    scorer = RewardScorer.load(args.model, device=args.device, batch_size=args.batch_size,
                               max_length=args.max_length)
    target = _target(args.target, scorer.attributes) if args.target else None
    weights = _weights(args.weights)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        if args.rewardbench:
            from rewards.rewardbench import load_rewardbench, score_rewardbench

            rows = load_rewardbench(args.rewardbench, args.rewardbench_split)
            print(json.dumps(score_rewardbench(scorer, rows, weights)), file=out)
        if args.data:
            prompts, responses = _rows(args.data)
            pred = scorer.predict(prompts, responses)
            scalar = scorer.scalar(prompts, responses, weights=weights, standardize=args.standardize)
            logp = scorer.log_prob(prompts, responses, target) if target else None
            for i in range(len(responses)):
                row = {"index": i, **{a: round(float(pred[i, j]), 4) for j, a in enumerate(scorer.attributes)},
                       "reward": round(float(scalar[i]), 4)}
                if logp is not None:
                    row["log_p_target"] = round(float(logp[i]), 4)
                print(json.dumps(row), file=out)
    finally:
        if out is not sys.stdout:
            out.close()
    return 0
