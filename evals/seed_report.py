"""The seed report of `align run RECIPE --seeds ...` (also `align report RUN_DIR`).

Reads every seed's resolved recipe (`<run_dir>/seed<N>/recipe.yaml`) to find its `mtbench`
stage(s) and their `results.json`, and aggregates per model over seeds (mean and 95 %
t-interval, evals.seed_stats) the MT-Bench score and the held-out figures. With the stage's
`paper_methods`, the paper's Table 4 order (evals.paper) is set beside the measured one and
every inversion is listed. Writes `<run_dir>/report.md`, `report.png`, `summary.json`.

Missing figures (a failed seed, a model without held-out figures) are shown as `-` with a
note; a directory that is not a sweep is an AlignError.
"""
from __future__ import annotations

import io
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from align.errors import AlignError
from align.io_utils import atomic_write_bytes, atomic_write_json, atomic_write_text
from evals.paper import PAPER_MTBENCH, paper_order
from evals.seed_stats import Aggregate, aggregate, ascending, inversions
from evals.seed_steering import collect_steering, steering_markdown, steering_summary

log = logging.getLogger("align")

LEVEL = 0.95
# (results.json key, column header, decimals)
METRICS = [
    ("mtbench/score", "MT-Bench", 2),
    ("heldout/oracle/helpfulness", "oracle helpfulness", 3),
    ("heldout/oracle/correctness", "oracle correctness", 3),
    ("heldout/sampled/oracle/helpfulness", "sampled helpfulness", 3),
    ("heldout/rm_reward", "RM reward (std.)", 3),
    ("heldout/hacking_gap", "hacking gap", 3),
    ("heldout/kl", "KL", 3),
]
ORDER_METRICS = ["mtbench/score", "heldout/oracle/helpfulness"]  # paper vs measured order, by each
SEED_DIR = re.compile(r"^seed(\d+)$")


@dataclass
class StageData:
    """One mtbench stage over the seeds: values[model][metric][seed] (None: missing)."""

    name: str
    title: str
    models: list[str] = field(default_factory=list)
    methods: dict[str, str] = field(default_factory=dict)  # model -> paper method
    baseline: str | None = None  # the held-out gains' baseline
    heldout: dict | None = None  # the stage's heldout block (first seed that has one)
    values: dict[str, dict[str, dict[int, float | None]]] = field(default_factory=dict)
    present: dict[str, set[int]] = field(default_factory=dict)  # seeds whose results.json has the model

    def stats(self, metric: str) -> dict[str, Aggregate]:
        return {m: aggregate(self.values[m][metric].values(), LEVEL) for m in self.models}


def find_seeds(root: Path) -> tuple[list[int], dict]:
    """The sweep's seeds (sweep.json, else the seed<N>/ dirs with a recipe.yaml) and its run statuses."""
    from align.sweep import SWEEP_FILE

    if not root.is_dir():
        raise AlignError(f"{root}: no such directory (expected the run_dir of `align run RECIPE --seeds 0,1,2`)")
    sweep = root / SWEEP_FILE
    if sweep.is_file():
        try:
            data = json.loads(sweep.read_text())
            return [int(s) for s in data["seeds"]], data.get("runs", {})
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise AlignError(f"{sweep}: not a sweep file ({exc}); delete it to use the seed<N>/ dirs") from exc
    seeds = sorted(int(m.group(1)) for p in root.iterdir()
                   if (m := SEED_DIR.match(p.name)) and (p / "recipe.yaml").is_file())
    if not seeds:
        hint = " (it is a single run: use `align run RECIPE --seeds 0,1,2`)" if (root / "recipe.yaml").is_file() else ""
        raise AlignError(f"{root}: not a seed sweep: no {SWEEP_FILE} and no seed<N>/recipe.yaml{hint}")
    return seeds, {}


def collect(root: Path, seeds: list[int], runs: dict) -> tuple[dict[str, StageData], list[str]]:
    """Every mtbench stage's values over the seeds, and notes on what is missing."""
    from evals.answers import model_name

    stages: dict[str, StageData] = {}
    notes: list[str] = []
    for seed in seeds:
        d = root / f"seed{seed}"
        run = runs.get(str(seed), {})
        failed = f" (run {run['status']}: {_short(run.get('error', ''))})" if run.get("status") == "failed" else ""
        try:
            raw = yaml.safe_load((d / "recipe.yaml").read_text())
            specs = [s for s in raw["stages"] if isinstance(s, dict)]
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            notes.append(f"seed {seed}: no readable {d / 'recipe.yaml'} ({type(exc).__name__}){failed}")
            continue
        names = [s.get("name") for s in specs]
        status = _manifest_status(d)
        for spec in (s for s in specs if s.get("kind") == "mtbench" and isinstance(s.get("name"), str)):
            data = stages.setdefault(spec["name"], StageData(spec["name"], spec.get("title", spec["name"])))
            _add_models(data, spec, names, model_name)
            results = _results(d / spec["name"] / "results.json", seed, status.get(spec["name"]), failed, notes)
            for m in data.models:
                r = results.get(m) if results is not None else None
                r = r if isinstance(r, dict) else None
                if results is not None and r is None:
                    notes.append(f"seed {seed}: {spec['name']}/results.json has no model {m!r}")
                if r is not None:
                    data.present.setdefault(m, set()).add(seed)
                for key, _h, _d in METRICS:
                    v = r.get(key) if r else None
                    ok = isinstance(v, (int, float)) and math.isfinite(v)
                    data.values.setdefault(m, {}).setdefault(key, {})[seed] = float(v) if ok else None
    for data in stages.values():
        for m in data.models:  # every model has every seed and metric, missing ones as None
            for key, _h, _d in METRICS:
                data.values.setdefault(m, {}).setdefault(key, {})
                for seed in seeds:
                    data.values[m][key].setdefault(seed, None)
        notes += _missing_metric_notes(data)
    if not stages:
        notes.append("no mtbench stage in any seed's recipe: nothing to compare")
    return stages, notes


def _add_models(data: StageData, spec: dict, stage_names: list, model_name) -> None:
    entries = {ref: model_name(ref, stage_names) for ref in spec.get("models") or []}
    entries.update({(e.get("name") or e.get("model")): (e.get("name") or e.get("model"))
                    for e in spec.get("endpoints") or [] if isinstance(e, dict)})
    for name in entries.values():
        if name not in data.models:
            data.models.append(name)
    for ref, method in (spec.get("paper_methods") or {}).items():
        if ref in entries and method in PAPER_MTBENCH:
            data.methods.setdefault(entries[ref], method)
    if isinstance(spec.get("heldout"), dict) and data.heldout is None:
        data.heldout = spec["heldout"]
    base = (spec.get("heldout") or {}).get("baseline") or spec.get("pairwise_baseline")
    if base and data.baseline is None:
        data.baseline = entries.get(base, base)


def _results(path: Path, seed: int, status: dict | None, failed: str, notes: list[str]) -> dict | None:
    if not path.is_file():
        state = (status or {}).get("status", "not run")
        error = f": {_short(status['error'])}" if status and status.get("error") else ""
        notes.append(f"seed {seed}: no {path.parent.name}/results.json (stage {state}{error}){failed}")
        return None
    try:
        out = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        notes.append(f"seed {seed}: {path} unreadable ({exc})")
        return None
    if not isinstance(out, dict):
        notes.append(f"seed {seed}: {path} is not a mapping of model -> metrics")
        return None
    return out


def _manifest_status(d: Path) -> dict[str, dict]:
    try:
        return {s["name"]: s for s in json.loads((d / "manifest.json").read_text())["stages"]}
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return {}


def _missing_metric_notes(data: StageData) -> list[str]:
    """Per model, the figures its results lack, grouped by the seeds that lack them, and why."""
    out = [] if data.heldout else [f"{data.name}: no heldout block: the held-out figures are not measured"]
    keys = [k for k, _h, _d in METRICS if data.heldout or not k.startswith("heldout/")]
    for m in data.models:
        groups: dict[tuple[int, ...], list[str]] = {}
        for k in keys:
            seeds = tuple(s for s in sorted(data.present.get(m, ())) if data.values[m][k][s] is None)
            if seeds:
                groups.setdefault(seeds, []).append(k)
        for seeds, missing in groups.items():
            if "heldout/oracle/helpfulness" in missing:
                shown = ", ".join(k for k in missing if not k.startswith("heldout/"))
                shown = (shown + ", " if shown else "") + "held-out figures (an endpoint, or not measured)"
            else:
                shown = ", ".join(k + (f" ({why})" if (why := _why_missing(data, m, k)) else "") for k in missing)
            out.append(f"{data.name}: {m}: no {shown} in seed(s) {', '.join(map(str, seeds))}")
    return out


def _why_missing(data: StageData, model: str, key: str) -> str:
    h = data.heldout or {}
    if key == "heldout/kl" and not h.get("kl_reference"):
        return "no heldout.kl_reference"
    if key == "heldout/sampled/oracle/helpfulness" and not h.get("sample_temperature"):
        return "no heldout.sample_temperature"
    if key == "heldout/rm_reward" and not h.get("reward_model"):
        return "no heldout.reward_model"
    if key == "heldout/hacking_gap":
        if model == data.baseline:
            return "the gains' baseline"
        if not h.get("reward_model"):
            return "no heldout.reward_model"
        if data.baseline is None:
            return "no heldout.baseline or pairwise_baseline"
    return ""


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- rendering ---------------------------------------------------------------------------------

def cell(a: Aggregate, decimals: int, n_seeds: int) -> str:
    if a.mean is None:
        return "-"
    text = f"{a.mean:.{decimals}f}" + ("" if a.half_width is None else f" ± {a.half_width:.{decimals}f}")
    return text + (f" (n={a.n})" if a.n < n_seeds else "")


def stage_summary(data: StageData) -> dict:
    stats = {key: data.stats(key) for key, _h, _d in METRICS}
    out = {
        "title": data.title,
        "models": data.models,
        "paper_methods": data.methods,
        "baseline": data.baseline,
        "per_seed": {m: {k: {str(s): v for s, v in data.values[m][k].items()} for k, _h, _d in METRICS}
                     for m in data.models},
        "aggregates": {m: {k: stats[k][m].to_dict() for k, _h, _d in METRICS} for m in data.models},
    }
    if data.methods:
        out["paper_order"] = [{"method": meth, "paper_mtbench": PAPER_MTBENCH[meth],
                               "models": [m for m in data.models if data.methods.get(m) == meth]}
                              for meth in paper_order()]
        mapped = {k: {m: a for m, a in stats[k].items() if m in data.methods} for k in ORDER_METRICS}
        out["measured_order"] = {k: ascending(mapped[k]) for k in ORDER_METRICS}
        out["inversions"] = {k: [i.to_dict() for i in inversions(data.methods, mapped[k], PAPER_MTBENCH)]
                             for k in ORDER_METRICS}
    return out


def stage_markdown(data: StageData, summary: dict, seeds: list[int], chart: str) -> list[str]:
    n = len(seeds)
    headers = [h for _k, h, _d in METRICS]
    lines = [f"## {data.name}: {data.title}", "",
             "| model | method | " + " | ".join(headers) + " |", "|---|---|" + "---:|" * len(headers)]
    stats = {key: data.stats(key) for key, _h, _d in METRICS}
    for m in data.models:
        row = [cell(stats[key][m], dec, n) for key, _h, dec in METRICS]
        lines.append(f"| {m} | {data.methods.get(m, '-')} | " + " | ".join(row) + " |")
    lines += ["", f"![per model]({chart})", ""]
    lines += _paper_lines(data, summary)
    lines += ["", "### Per seed", "", "| model | figure | " + " | ".join(f"seed {s}" for s in seeds) + " |",
              "|---|---|" + "---:|" * n]
    for m in data.models:
        for key, head, dec in METRICS[:2]:
            vals = [data.values[m][key][s] for s in seeds]
            lines.append(f"| {m} | {head} | " + " | ".join("-" if v is None else f"{v:.{dec}f}" for v in vals) + " |")
    return lines


def _paper_lines(data: StageData, summary: dict) -> list[str]:
    if not data.methods:
        return ["### Paper's Table 4 vs measured", "",
                "No `paper_methods` in this mtbench stage: no comparison with the paper's order."]
    lines = ["### Paper's Table 4 vs measured (lowest first)", "",
             "- paper (Llama 3 70B, MT-Bench): " + " < ".join(
                 f"{e['method']} {e['paper_mtbench']:.2f}" + (f" [{', '.join(e['models'])}]" if e["models"] else "")
                 for e in summary["paper_order"])]
    labels = {"mtbench/score": "MT-Bench score", "heldout/oracle/helpfulness": "oracle helpfulness"}
    for key in ORDER_METRICS:
        means = {m: summary["aggregates"][m][key]["mean"] for m in summary["measured_order"][key]}
        lines.append(f"- measured, by mean {labels[key]}: " + (" < ".join(
            f"{m} [{data.methods[m]}] {means[m]:.3f}" for m in means) or "no figures"))
        left = [m for m in data.methods if summary["aggregates"][m][key]["mean"] is None]
        if left:
            lines.append(f"  (no {labels[key]} for: {', '.join(left)})")
    for key in ORDER_METRICS:
        found = summary["inversions"][key]
        lines += ["", f"Inversions by {labels[key]}: {len(found) if found else 'none'}"]
        for i in found:
            ov = {True: "yes", False: "no", None: "n/a (one seed)"}[i["overlap"]]
            lines.append(f"- {i['lower']} ({i['lower_method']}, paper {PAPER_MTBENCH[i['lower_method']]:.2f}) measured "
                         f"above {i['higher']} ({i['higher_method']}, paper {PAPER_MTBENCH[i['higher_method']]:.2f}): "
                         f"{i['lower_mean']:.3f} vs {i['higher_mean']:.3f}; 95 % intervals overlap: {ov}")
    return lines


def chart_png(stages: dict[str, StageData], summaries: dict[str, dict]) -> bytes:
    """Per stage: MT-Bench score and oracle helpfulness per model, 95 % intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(len(stages), 1)
    fig, axes = plt.subplots(rows, 2, figsize=(12, 3.8 * rows), squeeze=False)
    if not stages:
        for ax in axes[0]:
            ax.text(0.5, 0.5, "no mtbench results", ha="center", va="center")
            ax.set_axis_off()
    for (name, data), ax_row in zip(stages.items(), axes):
        for ax, (key, head, _d) in zip(ax_row, METRICS[:2]):
            aggs = [summaries[name]["aggregates"][m][key] for m in data.models]
            xs = list(range(len(data.models)))
            means = [a["mean"] if a["mean"] is not None else float("nan") for a in aggs]
            errs = [a["half_width"] or 0.0 for a in aggs]
            ax.bar(xs, means, yerr=errs, capsize=4, color="#4c72b0")
            for x, a in zip(xs, aggs):
                if a["mean"] is None or a["half_width"] is None:  # no figure / one seed: no interval
                    ax.text(x, a["mean"] or 0.0, "-" if a["mean"] is None else "n=1", ha="center", va="bottom")
            ax.set_xticks(xs)
            ax.set_xticklabels([f"{m}\n{data.methods[m]}" if m in data.methods else m for m in data.models],
                               rotation=30, ha="right", fontsize=8)
            ax.set_title(f"{name}: {head} (mean, 95 % interval)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def write_seed_report(run_dir: str | Path) -> Path:
    """Write report.md, report.png and summary.json into the sweep directory; returns report.md's path."""
    root = Path(run_dir)
    seeds, runs = find_seeds(root)
    stages, notes = collect(root, seeds, runs)
    summaries = {name: stage_summary(data) for name, data in stages.items()}
    failed = [s for s in seeds if runs.get(str(s), {}).get("status") == "failed"]
    lines = [f"# Seed report: {root}", "",
             f"Seeds: {', '.join(map(str, seeds))}" + (f" (failed: {', '.join(map(str, failed))})" if failed else "")
             + ". Each cell: mean ± half-width of the 95 % t-interval over seeds (t with n-1 degrees of "
             "freedom; no interval with one seed); (n=k): only k seeds have the figure; `-`: none.", ""]
    for name, data in stages.items():
        lines += stage_markdown(data, summaries[name], seeds, "report.png") + [""]
    steering = {name: steering_summary(entry, seeds) for name, entry in collect_steering(root, seeds).items()}
    for name, summary in steering.items():
        lines += steering_markdown(name, summary, seeds) + [""]
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes)]
    atomic_write_json(root / "summary.json", {"run_dir": str(root), "seeds": seeds, "runs": runs, "level": LEVEL,
                                              "stages": summaries, "steering": steering, "notes": notes})
    atomic_write_bytes(root / "report.png", chart_png(stages, summaries))
    atomic_write_text(root / "report.md", "\n".join(lines) + "\n")
    return root / "report.md"
