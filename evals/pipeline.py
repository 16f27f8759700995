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
    FASTCHAT_MAX_NEW_TOKENS,
    EndpointChatModel,
    LocalChatModel,
    fastchat_temperature,
    generate_answers,
    load_answers,
    save_answers,
)
from evals.bootstrap import paired_difference, question_means
from evals.report import (
    aggregate,
    is_ranked,
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
    """How models under test answer. `temperature` "fastchat": FastChat's per-category table
    (0.7 writing and roleplay, 0.1 stem and humanities, 0 math, coding, reasoning, extraction,
    0.7 for any other category), as `gen_model_answer.py` samples; a number: every category."""

    max_new_tokens: int = FASTCHAT_MAX_NEW_TOKENS
    temperature: float | str = "fastchat"
    batch_size: int = 16
    seed: int = 0
    engine: str = "native"  # align.engines: native, hf or vllm

    def temperature_for(self, question) -> float:
        return fastchat_temperature(question.category) if self.temperature == "fastchat" else float(self.temperature)

    def record(self) -> dict:
        """The settings as written into results (the report prints them)."""
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "seed": self.seed,
                "engine": self.engine}


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


def answers_for(m: ModelUnderTest, questions, gen: GenerationSettings, path: Path, reuse: bool,
                stats: dict | None = None) -> list[list[str]]:
    """Answers of one model (reused from `path` when allowed); `stats` gets answers/truncated for
    answers generated here by a local model."""
    if reuse and path.is_file():
        log.info("%s: reusing answers from %s", m.name, path)
        return load_answers(path, questions)
    if m.endpoint is not None:
        chat = EndpointChatModel(m.endpoint, max_new_tokens=gen.max_new_tokens)
    else:
        chat = LocalChatModel.load(m.path, max_new_tokens=gen.max_new_tokens, batch_size=gen.batch_size,
                                   seed=gen.seed, prompt_suffix=m.prompt_suffix, engine=gen.engine)
    answers = generate_answers(questions, chat, gen.temperature_for)
    if stats is not None and hasattr(chat, "truncated"):
        stats["answers/truncated"] = float(chat.truncated)
        stats["answers/prompt_too_long"] = float(chat.too_long)
    save_answers(path, m.name, questions, answers)
    del chat
    gc.collect()
    return answers


def evaluate(models: list[ModelUnderTest], questions, judge, out_dir: str | Path, *,
             gen: GenerationSettings | None = None, reuse_answers: bool = True,
             title: str = "MT-Bench-style evaluation", pairwise_baseline: str | None = None,
             extra: dict[str, dict[str, float]] | None = None,
             references: str | None = None) -> dict[str, dict[str, float]]:
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
    fastchat_rows: list[dict] = []  # every model's judgements in one file, as FastChat's show_result.py reads
    per_question: dict[str, list[float | None]] = {}
    for m in models:
        stem = safe_name(m.name)
        stats: dict[str, float] = {}
        answers = answers_for(m, questions, gen, out / "answers" / f"{stem}.jsonl", reuse_answers, stats)
        ratings = judge.score(questions, answers)
        metrics = aggregate(questions, ratings)
        words = [len(a.split()) for turns in answers for a in turns]
        metrics.update(stats, **({"answers/mean_words": sum(words) / len(words)} if words else {}))
        per_question[m.name] = question_means(ratings)
        if hasattr(judge, "attributes"):  # the oracle also reports its mean attributes
            metrics.update({f"oracle/{a}": v for a, v in judge.attributes(questions, answers).items()})
        metrics.update((extra or {}).get(m.name, {}))
        results[m.name] = metrics
        all_answers[m.name] = answers
        details = judge.details() if hasattr(judge, "details") else None
        rows = per_question_rows(m.name, questions, answers, ratings, judge=judge.name, details=details)
        write_jsonl(out / "judgements" / f"{stem}.jsonl", rows)
        fastchat_rows += rows
        log.info("%s: score %.2f (turn1 %s, turn2 %s)", m.name, metrics.get("mtbench/score", float("nan")),
                 _fmt(metrics.get("mtbench/turn1")), _fmt(metrics.get("mtbench/turn2")))
    write_jsonl(out / "judgements" / f"{safe_name(judge.name)}_single.jsonl", fastchat_rows)
    if pairwise_baseline is not None:
        _pairwise(judge, questions, all_answers, pairwise_baseline, results)
    _differences(results, per_question, pairwise_baseline)
    write_jsonl(out / "per_question.jsonl", ({"question_id": q.question_id, "category": q.category,
                                              **{m: per_question[m][i] for m in per_question}}
                                             for i, q in enumerate(questions)))
    settings = {"judge": judge.name, "questions": len(questions), **gen.record(),
                **({"references": references} if references else {})}
    atomic_write_json(out / "settings.json", settings)
    write_outputs(results, out, title=title, judge=judge.name, n_questions=len(questions), settings=settings)
    return results


def _differences(results, per_question, baseline: str | None) -> None:
    """diff/<ref>/score|low|high|n for every model against `baseline`, else the top-ranked model."""
    ranked = [m for m in ranking(results) if is_ranked(results[m])]
    ref = baseline if baseline in per_question else (ranked[0] if ranked else None)
    if ref is None:
        return
    for m in per_question:
        if m != ref:
            d = paired_difference(per_question[m], per_question[ref])
            if d is not None:
                results[m].update({f"diff/{ref}/score": d["diff"], f"diff/{ref}/low": d["low"],
                                   f"diff/{ref}/high": d["high"], f"diff/{ref}/n": d["n"]})


def _pairwise(judge, questions, all_answers, baseline: str, results) -> None:
    from evals.pairwise import pairwise, summarize

    if baseline not in all_answers:
        raise ValueError(f"pairwise baseline {baseline!r} is not among the models: {', '.join(all_answers)}")
    for name, answers in all_answers.items():
        if name != baseline:
            summary = summarize(pairwise(judge, questions, answers, all_answers[baseline]))
            results[name].update({f"pairwise/{baseline}/{k}": float(v) for k, v in summary.items()})
            if summary["error"]:
                log.warning("%s vs %s: %d of %d verdicts unparseable, dropped", name, baseline, summary["error"],
                            summary["error"] + summary["valid"])
            log.info("%s vs %s: win rate %s (%s)", name, baseline, _fmt(summary.get("win_rate")), summary)


def write_outputs(results, out: Path, *, title: str, judge: str, n_questions: int, settings: dict | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", results)
    radar_chart(results, out / "radar.png", title=title)
    notes = _oracle_notes(results) + _pairwise_notes(results) + _heldout_notes(results)
    (out / "report.md").write_text(markdown_report(results, title=title, judge=judge, n_questions=n_questions,
                                                   chart="radar.png", notes=notes, settings=settings), encoding="utf-8")


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
    bases = sorted({k.split("/")[1] for r in results.values() for k in r if k.startswith("pairwise/")})
    lines = []
    for base in bases:
        p = f"pairwise/{base}/"
        lines += ["", f"## Pairwise against {base} (per turn; position swapped for LLM judges)", "",
                  "| model | win | loss | tie | unparseable (dropped) | win rate |", "|---|---:|---:|---:|---:|---:|"]
        for m in ranking(results):
            r = results[m]
            if p + "valid" in r:
                rate = f"{r[p + 'win_rate']:.3f}" if p + "win_rate" in r else "- (no valid verdict)"
                lines.append(f"| {m} | {r[p + 'win']:.0f} | {r[p + 'loss']:.0f} | {r[p + 'tie']:.0f} | "
                             f"{r[p + 'error']:.0f} | {rate} |")
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
