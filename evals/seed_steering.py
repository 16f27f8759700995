"""The seed report's steering section: each `steerability` stage's steering error per model over seeds.

A `steerability` stage writes `steer/mae_mean/<model>` (mean |requested - achieved| over its grid
of targets and attributes, by the world oracle on greedy answers) and `steer/mae/<attr>/<model>`.
Per model: the mean and 95 % t-interval over seeds, the per-seed values, and the change against
the stage's first model (SteerLM 1.0 in the replication recipe) on each seed, so a floor such as
"20 % below SteerLM 1.0 on every seed" can be read off directly.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from evals.seed_stats import aggregate

ATTRS = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


def collect_steering(root: Path, seeds: list[int]) -> dict[str, dict]:
    """{stage: {"models": [...], "values": {model: {metric: {seed: value | None}}}}}."""
    out: dict[str, dict] = {}
    for seed in seeds:
        d = root / f"seed{seed}"
        try:
            specs = [s for s in yaml.safe_load((d / "recipe.yaml").read_text())["stages"] if isinstance(s, dict)]
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            continue
        for spec in (s for s in specs if s.get("kind") == "steerability" and isinstance(s.get("name"), str)):
            entry = out.setdefault(spec["name"], {"models": [], "values": {}})
            try:
                metrics = json.loads((d / spec["name"] / "metrics.json").read_text())
            except (OSError, json.JSONDecodeError):
                metrics = {}
            for ref in spec.get("models") or []:
                name = str(ref).replace("/", "_")
                if name not in entry["models"]:
                    entry["models"].append(name)
                vals = entry["values"].setdefault(name, {})
                for key in ("steer/mae_mean", *(f"steer/mae/{a}" for a in ATTRS)):
                    v = metrics.get(f"{key}/{name}")
                    vals.setdefault(key, {})[seed] = float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None
    for entry in out.values():
        for name in entry["models"]:
            for key, per_seed in entry["values"][name].items():
                for seed in seeds:
                    per_seed.setdefault(seed, None)
    return out


def steering_summary(entry: dict, seeds: list[int]) -> dict:
    models, values = entry["models"], entry["values"]
    base = models[0] if models else None
    out = {"baseline": base, "models": models, "per_seed": {}, "aggregates": {}, "change_vs_baseline": {}}
    for m in models:
        out["per_seed"][m] = {k: {str(s): v for s, v in per.items()} for k, per in values[m].items()}
        out["aggregates"][m] = {k: aggregate(per.values()).to_dict() for k, per in values[m].items()}
        changes = {}
        for s in seeds:
            b, v = values[base]["steer/mae_mean"].get(s), values[m]["steer/mae_mean"].get(s)
            changes[str(s)] = None if b in (None, 0) or v is None else (v - b) / b
        out["change_vs_baseline"][m] = changes
    return out


def steering_markdown(name: str, summary: dict, seeds: list[int]) -> list[str]:
    base = summary["baseline"]
    lines = [f"## {name}: steering error (oracle, greedy; lower is better)", "",
             f"Mean |requested - achieved| over the stage's targets and attributes; change against {base} per seed.",
             "", "| model | steering error | " + " | ".join(f"seed {s}" for s in seeds) + " | "
             + " | ".join(f"vs {base}, seed {s}" for s in seeds) + " |",
             "|---|---:|" + "---:|" * (2 * len(seeds))]
    for m in summary["models"]:
        a = summary["aggregates"][m]["steer/mae_mean"]
        mean = "-" if a["mean"] is None else f"{a['mean']:.3f}" + (
            "" if a["half_width"] is None else f" ± {a['half_width']:.3f}")
        per = summary["per_seed"][m]["steer/mae_mean"]
        vals = ["-" if per[str(s)] is None else f"{per[str(s)]:.3f}" for s in seeds]
        ch = summary["change_vs_baseline"][m]
        rel = ["-" if ch[str(s)] is None else f"{100 * ch[str(s)]:+.0f} %" for s in seeds]
        lines.append(f"| {m} | {mean} | " + " | ".join(vals) + " | " + " | ".join(rel) + " |")
    lines += ["", "Per attribute (mean over seeds):", "",
              "| model | " + " | ".join(ATTRS) + " |", "|---|" + "---:|" * len(ATTRS)]
    for m in summary["models"]:
        cells = []
        for a in ATTRS:
            agg = summary["aggregates"][m].get(f"steer/mae/{a}", {})
            cells.append("-" if agg.get("mean") is None else f"{agg['mean']:.3f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines
