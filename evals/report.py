"""Scores (SPEC.md section 6): means over turn-level ratings, dropping -1; a Markdown
table and a radar chart of the categories, one column / polygon per model."""
from __future__ import annotations

from pathlib import Path

from evals.bootstrap import score_interval
from evals.questions import Question


def _mean(xs: list[float]) -> float | None:
    valid = [x for x in xs if x >= 0]
    return sum(valid) / len(valid) if valid else None


def aggregate(questions: list[Question], ratings: list[list[float]]) -> dict[str, float]:
    """Flat metrics: mtbench/score (mean of all valid turn ratings), mtbench/turn1,
    mtbench/turn2, mtbench/category/<c> (mean over that category's turns),
    mtbench/invalid (judgements dropped). A mean with no valid rating is left out."""
    flat = [s for r in ratings for s in r]
    out: dict[str, float] = {}
    parts = {"mtbench/score": flat}
    for t in range(max((len(r) for r in ratings), default=0)):
        parts[f"mtbench/turn{t + 1}"] = [r[t] for r in ratings if len(r) > t]
    for c in sorted({q.category for q in questions}):
        parts[f"mtbench/category/{c}"] = [s for q, r in zip(questions, ratings) if q.category == c for s in r]
    for key, xs in parts.items():
        m = _mean(xs)
        if m is not None:
            out[key] = m
        out[key.replace("mtbench/", "mtbench/n/", 1) if key != "mtbench/score" else "mtbench/valid"] = \
            float(sum(x >= 0 for x in xs))
    out["mtbench/invalid"] = float(sum(s < 0 for s in flat))
    out["mtbench/judged"] = float(len(flat))
    interval = score_interval(ratings)
    if interval is not None:
        out["mtbench/score_low"], out["mtbench/score_high"] = interval
    return out


MIN_VALID_FRACTION = 0.5  # a model with fewer valid judgements than this share is flagged, not ranked


def is_ranked(metrics: dict[str, float]) -> bool:
    judged = metrics.get("mtbench/judged", 0.0)
    return "mtbench/score" in metrics and metrics.get("mtbench/valid", 0.0) >= MIN_VALID_FRACTION * judged > 0


def per_question_rows(model: str, questions: list[Question], answers, ratings, *, judge: str = "",
                      details: list[list[dict]] | None = None) -> list[dict]:
    """One row per judged turn, in FastChat's single-answer judgement schema (`question_id`, `model`,
    `judge` [judge, prompt name], `user_prompt`, `judgment`, `score` (-1: unparseable), `turn`, `tstamp`:
    what its show_result.py reads) plus `category` and `answer`."""
    import time

    now = time.time()
    rows = []
    for i, (q, a, r) in enumerate(zip(questions, answers, ratings)):
        for t in range(len(r)):
            d = details[i][t] if details and i < len(details) and t < len(details[i]) else {}
            rows.append({"question_id": q.question_id, "model": model, "judge": [judge, d.get("prompt", judge)],
                         "user_prompt": d.get("user_prompt", ""), "judgment": d.get("judgment", ""),
                         "score": r[t], "turn": t + 1, "tstamp": now, "category": q.category, "answer": a[t]})
    return rows


def categories_of(results: dict[str, dict[str, float]]) -> list[str]:
    """Every category judged, including those without a valid rating (their count key says so)."""
    out = set()
    for m in results.values():
        for k in m:
            for pre in ("mtbench/category/", "mtbench/n/category/"):
                if k.startswith(pre):
                    out.add(k[len(pre):])
    return sorted(out)


def ranking(results: dict[str, dict[str, float]]) -> list[str]:
    """Models by score; those with too few valid judgements (`is_ranked`) after all the others."""
    return sorted(results, key=lambda m: (not is_ranked(results[m]) if "mtbench/judged" in results[m] else False,
                                          -results[m].get("mtbench/score", -1.0)))


def markdown_report(results: dict[str, dict[str, float]], *, title: str, judge: str, n_questions: int,
                    chart: str | None = None, notes: list[str] | None = None, settings: dict | None = None) -> str:
    """Models ranked by overall score; rows = overall, turns, categories."""
    order = ranking(results)
    cats = categories_of(results)

    def cell(m, key):
        v = results[m].get(key)
        text = "-" if v is None else f"{v:.2f}"
        n_key = "mtbench/valid" if key == "mtbench/score" else key.replace("mtbench/", "mtbench/n/", 1)
        return text + (f" (n={results[m][n_key]:.0f})" if n_key in results[m] else "")

    def interval(m):
        r = results[m]
        return f" [{r['mtbench/score_low']:.2f}, {r['mtbench/score_high']:.2f}]" if "mtbench/score_low" in r else ""

    header = (f"Judge: `{judge}`. Questions: {n_questions}. Scale 1..10; unparseable judgements are dropped "
              "(n = valid judgements per cell; `-`: none valid). Intervals: 95 % bootstrap over questions.")
    lines = [f"# {title}", "", header, ""]
    if settings:
        lines += ["Settings: " + ", ".join(f"{k} `{v}`" for k, v in settings.items()), ""]
    lines += ["## Ranking", ""]
    rank = 0
    for m in order:
        r = results[m]
        if "mtbench/judged" in r and not is_ranked(r):
            lines.append(f"- **{m}**: not ranked, only {r.get('mtbench/valid', 0):.0f} of {r['mtbench/judged']:.0f} "
                         f"judgements valid (score {cell(m, 'mtbench/score')})")
        else:
            rank += 1
            lines.append(f"{rank}. **{m}**: {cell(m, 'mtbench/score')}{interval(m)}")
    lines += ["", "## Scores", "", "| | " + " | ".join(order) + " |", "|---|" + "---:|" * len(order)]
    rows = [("overall", "mtbench/score"), ("turn 1", "mtbench/turn1"), ("turn 2", "mtbench/turn2")]
    rows += [(c, f"mtbench/category/{c}") for c in cats]
    for label, key in rows:
        lines.append(f"| {label} | " + " | ".join(cell(m, key) for m in order) + " |")
    plain = [("invalid judgements", "mtbench/invalid"), ("answer words (mean)", "answers/mean_words"),
             ("answers cut at max_new_tokens", "answers/truncated"),
             ("prompts too long to answer", "answers/prompt_too_long")]
    for label, key in plain:
        if any(key in results[m] for m in order):
            lines.append(f"| {label} | " + " | ".join("-" if key not in results[m] else f"{results[m][key]:.4g}"
                                                      for m in order) + " |")
    diffs = sorted({k.split("/")[1] for m in order for k in results[m] if k.startswith("diff/")})
    for ref in diffs:
        lines += ["", f"## Differences against {ref} (per question, paired 95 % bootstrap)", "",
                  "| model | difference | 95 % interval | questions |", "|---|---:|---:|---:|"]
        for m in order:
            r, p = results[m], f"diff/{ref}/"
            if p + "score" in r:
                lines.append(f"| {m} | {r[p + 'score']:+.2f} | [{r[p + 'low']:+.2f}, {r[p + 'high']:+.2f}] | "
                             f"{r[p + 'n']:.0f} |")
    if chart:
        lines += ["", f"![categories]({chart})"]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def radar_chart(results: dict[str, dict[str, float]], path: str | Path, *, title: str = "") -> Path:
    """One polygon per model over the categories (PNG, matplotlib Agg backend)."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = categories_of(results)
    angles = [2 * math.pi * k / len(cats) for k in range(len(cats))] if cats else [0.0]
    fig = plt.figure(figsize=(6, 6))
    ax = fig.add_subplot(111, polar=True)
    for m in ranking(results):
        # a category without a valid rating is a gap in the polygon, not a 0
        vals = [results[m].get(f"mtbench/category/{c}", float("nan")) for c in cats] or [float("nan")]
        score = results[m].get("mtbench/score")
        ax.plot(angles + angles[:1], vals + vals[:1], label=f"{m} ({'-' if score is None else f'{score:.2f}'})")
        if not any(math.isnan(v) for v in vals):
            ax.fill(angles + angles[:1], vals + vals[:1], alpha=0.1)
    ax.set_xticks(angles)
    ax.set_xticklabels(cats or [""])
    ax.set_ylim(0, 10)
    ax.set_title(title)
    ax.legend(loc="upper right", bbox_to_anchor=(1.3, 1.1), fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
