"""Scores (SPEC.md section 6): means over turn-level ratings, dropping -1; a Markdown
table and a radar chart of the categories, one column / polygon per model."""
from __future__ import annotations

from pathlib import Path

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
    out["mtbench/invalid"] = float(sum(s < 0 for s in flat))
    return out


def per_question_rows(model: str, questions: list[Question], answers, ratings) -> list[dict]:
    return [{"model": model, "question_id": q.question_id, "category": q.category, "turn": t + 1,
             "rating": r[t], "answer": a[t]} for q, a, r in zip(questions, answers, ratings) for t in range(len(r))]


def categories_of(results: dict[str, dict[str, float]]) -> list[str]:
    pre = "mtbench/category/"
    return sorted({k[len(pre):] for m in results.values() for k in m if k.startswith(pre)})


def ranking(results: dict[str, dict[str, float]]) -> list[str]:
    return sorted(results, key=lambda m: -results[m].get("mtbench/score", -1.0))


def markdown_report(results: dict[str, dict[str, float]], *, title: str, judge: str, n_questions: int,
                    chart: str | None = None, notes: list[str] | None = None) -> str:
    """Models ranked by overall score; rows = overall, turns, categories."""
    order = ranking(results)
    cats = categories_of(results)

    def cell(m, key):
        v = results[m].get(key)
        return "-" if v is None else f"{v:.2f}"

    header = f"Judge: `{judge}`. Questions: {n_questions}. Scale 1..10; unparseable judgements are dropped."
    lines = [f"# {title}", "", header, "", "## Ranking", ""]
    lines += [f"{k + 1}. **{m}**: {cell(m, 'mtbench/score')}" for k, m in enumerate(order)]
    lines += ["", "## Scores", "", "| | " + " | ".join(order) + " |", "|---|" + "---:|" * len(order)]
    rows = [("overall", "mtbench/score"), ("turn 1", "mtbench/turn1"), ("turn 2", "mtbench/turn2")]
    rows += [(c, f"mtbench/category/{c}") for c in cats]
    rows += [("invalid judgements", "mtbench/invalid")]
    for label, key in rows:
        lines.append(f"| {label} | " + " | ".join(cell(m, key) for m in order) + " |")
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
        vals = [results[m].get(f"mtbench/category/{c}", 0.0) for c in cats] or [0.0]
        ax.plot(angles + angles[:1], vals + vals[:1], label=f"{m} ({results[m].get('mtbench/score', 0):.2f})")
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
