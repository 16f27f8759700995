"""One evaluation run: answers for each model (generated or reused), judged, reported.

Used by the `mtbench` stage and by `align eval`. Writes under `out_dir`:
`answers/<model>.jsonl` (MT-Bench answer format), `judgements/<model>.jsonl` (per
question and turn), `results.json` (flat metrics per model), `report.md`, `radar.png`.
"""
from __future__ import annotations

import gc
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from align.attributes import ATTRIBUTES
from align.io_utils import atomic_write_json, write_jsonl
from evals.answers import (
    EndpointChatModel,
    LocalChatModel,
    generate_answers,
    load_answers,
    save_answers,
)
from evals.report import (
    aggregate,
    markdown_report,
    per_question_rows,
    radar_chart,
    ranking,
)

log = logging.getLogger("align")


@dataclass
class ModelUnderTest:
    """A local model (`path`: HF dir, hub id or .gguf) or an OpenAI-compatible `endpoint`."""

    name: str
    path: str | None = None
    endpoint: object | None = None  # evals.openai_client.ChatEndpoint
    prompt_suffix: str = ""  # local models: appended after the generation prompt (SteerLM labels)


@dataclass
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.0
    batch_size: int = 16
    seed: int = 0


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


def answers_for(m: ModelUnderTest, questions, gen: GenerationSettings, path: Path, reuse: bool) -> list[list[str]]:
    if reuse and path.is_file():
        log.info("%s: reusing answers from %s", m.name, path)
        return load_answers(path, questions)
    if m.endpoint is not None:
        chat = EndpointChatModel(m.endpoint, max_new_tokens=gen.max_new_tokens, temperature=gen.temperature)
    else:
        chat = LocalChatModel.load(m.path, max_new_tokens=gen.max_new_tokens, temperature=gen.temperature,
                                   batch_size=gen.batch_size, seed=gen.seed, prompt_suffix=m.prompt_suffix)
    answers = generate_answers(questions, chat)
    save_answers(path, m.name, questions, answers)
    del chat
    gc.collect()
    return answers


def evaluate(models: list[ModelUnderTest], questions, judge, out_dir: str | Path, *,
             gen: GenerationSettings | None = None, reuse_answers: bool = True,
             title: str = "MT-Bench-style evaluation", pairwise_baseline: str | None = None,
             extra: dict[str, dict[str, float]] | None = None) -> dict[str, dict[str, float]]:
    """Answer, judge and report every model; returns {model: flat metrics}.

    With `pairwise_baseline` (a model name), every other model is also compared with it
    turn by turn (`evals.pairwise`, position swap for LLM judges): metrics
    `pairwise/<baseline>/win_rate|win|loss|tie` of that model. `extra` ({model: metrics}
    measured elsewhere, e.g. evals.heldout) joins each model's metrics and the report.
    """
    out = Path(out_dir)
    gen = gen or GenerationSettings()
    results: dict[str, dict[str, float]] = {}
    all_answers: dict[str, list[list[str]]] = {}
    for m in models:
        stem = safe_name(m.name)
        answers = answers_for(m, questions, gen, out / "answers" / f"{stem}.jsonl", reuse_answers)
        ratings = judge.score(questions, answers)
        metrics = aggregate(questions, ratings)
        if hasattr(judge, "attributes"):  # the oracle also reports its mean attributes
            metrics.update({f"oracle/{a}": v for a, v in judge.attributes(questions, answers).items()})
        metrics.update((extra or {}).get(m.name, {}))
        results[m.name] = metrics
        all_answers[m.name] = answers
        rows = per_question_rows(m.name, questions, answers, ratings)
        write_jsonl(out / "judgements" / f"{stem}.jsonl", rows)
        log.info("%s: score %.2f (turn1 %s, turn2 %s)", m.name, metrics.get("mtbench/score", float("nan")),
                 _fmt(metrics.get("mtbench/turn1")), _fmt(metrics.get("mtbench/turn2")))
    if pairwise_baseline is not None:
        _pairwise(judge, questions, all_answers, pairwise_baseline, results)
    write_outputs(results, out, title=title, judge=judge.name, n_questions=len(questions))
    return results


def _pairwise(judge, questions, all_answers, baseline: str, results) -> None:
    from evals.pairwise import pairwise, summarize

    if baseline not in all_answers:
        raise ValueError(f"pairwise baseline {baseline!r} is not among the models: {', '.join(all_answers)}")
    for name, answers in all_answers.items():
        if name != baseline:
            summary = summarize(pairwise(judge, questions, answers, all_answers[baseline]))
            results[name].update({f"pairwise/{baseline}/{k}": float(v) for k, v in summary.items()})
            log.info("%s vs %s: win rate %.3f (%s)", name, baseline, summary["win_rate"], summary)


def write_outputs(results, out: Path, *, title: str, judge: str, n_questions: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", results)
    radar_chart(results, out / "radar.png", title=title)
    notes = _oracle_notes(results) + _pairwise_notes(results) + _heldout_notes(results)
    (out / "report.md").write_text(markdown_report(results, title=title, judge=judge, n_questions=n_questions,
                                                   chart="radar.png", notes=notes), encoding="utf-8")


def _oracle_notes(results) -> list[str]:
    attrs = sorted({k.split("/", 1)[1] for r in results.values() for k in r if k.startswith("oracle/")})
    if not attrs:
        return []
    order = ranking(results)
    lines = ["## Oracle attributes (mean over turns, 0..4)", "", "| | " + " | ".join(order) + " |",
             "|---|" + "---:|" * len(order)]
    for a in attrs:
        lines.append(f"| {a} | " + " | ".join(f"{results[m].get('oracle/' + a, float('nan')):.2f}" for m in order) + " |")
    return lines


def _pairwise_notes(results) -> list[str]:
    keys = sorted({k for r in results.values() for k in r if k.startswith("pairwise/") and k.endswith("/win_rate")})
    lines = []
    for key in keys:
        base = key.split("/")[1]
        lines += ["", f"## Pairwise against {base} (per turn; position swapped for LLM judges)", "",
                  "| model | win | loss | tie | win rate |", "|---|---:|---:|---:|---:|"]
        for m in ranking(results):
            r = results[m]
            if key in r:
                p = f"pairwise/{base}/"
                lines.append(f"| {m} | {r[p + 'win']:.0f} | {r[p + 'loss']:.0f} | {r[p + 'tie']:.0f} | {r[key]:.3f} |")
    return lines


HELDOUT_COLUMNS = [  # (key, header) of the held-out table; a column shows when any model has it
    *((f"heldout/oracle/{a}", f"oracle {a}") for a in ATTRIBUTES), ("heldout/oracle/coverage", "coverage"),
    ("heldout/rm/helpfulness", "RM helpfulness"), ("heldout/rm_reward", "RM reward (std.)"), ("heldout/kl", "KL"),
    ("heldout/gain/oracle_helpfulness", "oracle gain"), ("heldout/gain/rm_helpfulness", "RM gain"),
    ("heldout/hacking_gap", "hacking gap"),
]


def _heldout_notes(results) -> list[str]:
    cols = [(k, h) for k, h in HELDOUT_COLUMNS if any(k in r for r in results.values())]
    if not cols:
        return []
    lines = ["", "## Held-out prompts (greedy answers; oracle and RM attributes 0..4, KL in nats)", "",
             "| model | " + " | ".join(h for _, h in cols) + " |", "|---|" + "---:|" * len(cols)]
    for m in ranking(results):
        lines.append(f"| {m} | " + " | ".join("-" if k not in results[m] else f"{results[m][k]:.3f}"
                                              for k, _ in cols) + " |")
    return lines + ["", ("Gains are over the baseline model; hacking gap = RM gain - oracle gain. "
                         "`-`: not measured (an endpoint, no reward model or reference, or the baseline itself).")]


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def flat_metrics(results: dict[str, dict[str, float]]) -> dict[str, float]:
    """metrics.json: one model -> its keys as is (mtbench/score, ...); several -> `<model>/mtbench/...`,
    plus `rank/<model>` (1 = best)."""
    if len(results) == 1:
        return dict(next(iter(results.values())))
    out = {f"{m}/{k}": v for m, r in results.items() for k, v in r.items()}
    out.update({f"rank/{m}": float(k + 1) for k, m in enumerate(ranking(results))})
    return out
