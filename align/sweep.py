"""`align run RECIPE --seeds 0,1,2`: the same recipe once per seed, then one comparison report.

Each seed is an ordinary, resumable run in `<run_dir>/seed<N>/` with `seed` overridden
(`--set` and `--force` apply to every seed). Every seed's recipe is validated before any
runs. A seed whose run fails is recorded and the next one runs; the report
(`evals.seed_report`: `<run_dir>/report.md`, `report.png`, `summary.json`) shows its
figures as missing. `<run_dir>/sweep.json` lists the seeds and how each run ended.
"""
from __future__ import annotations

import argparse
import copy
import logging
from pathlib import Path

from align.errors import AlignError
from align.io_utils import atomic_write_json

log = logging.getLogger("align")

SWEEP_FILE = "sweep.json"


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2] (argparse `type`: a bad value exits with code 2 and this message)."""
    parts = [p.strip() for p in text.split(",")]
    bad = [p for p in parts if not p.isdigit()]
    if not text.strip() or bad:
        shown = ", ".join(repr(p) for p in bad) if text.strip() else "nothing"
        raise argparse.ArgumentTypeError(
            f"expected comma-separated non-negative integers like 0,1,2; got {text!r} (bad: {shown})")
    seeds = [int(p) for p in parts]
    dupes = sorted({s for s in seeds if seeds.count(s) > 1})
    if dupes:
        raise argparse.ArgumentTypeError(f"seed(s) {', '.join(map(str, dupes))} given twice in {text!r}")
    return seeds


def seed_dir(run_dir: str | Path, seed: int) -> Path:
    return Path(run_dir) / f"seed{seed}"


def seed_recipes(path: str | Path, seeds: list[int], overrides: list[str] | None = None):
    """(base run_dir, [(seed, Recipe)]): every seed's recipe validated (a ConfigError lists all problems)."""
    from align.recipe import load_recipe, validate_recipe

    base = load_recipe(path, overrides)
    out = []
    for seed in seeds:
        raw = copy.deepcopy(base.raw)
        raw.update(seed=seed, run_dir=str(seed_dir(base.run_dir, seed)))
        out.append((seed, validate_recipe(raw, source=str(path))))
    fixed = [s.name for s in base.stages if s.seed is not None]
    if fixed:
        log.warning("stage(s) %s set their own seed: the same in every seed's run", ", ".join(fixed))
    return base.run_dir, out


def run_sweep(path: str | Path, seeds: list[int], *, overrides: list[str] | None = None,
              force: list[str] | None = None, dry_run: bool = False) -> int:
    """Run (or resume) the recipe once per seed, then write the seed report. Returns the exit code."""
    from align.plan import print_plan
    from align.runner import Runner

    run_dir, recipes = seed_recipes(path, seeds, overrides)
    # the seeds differ only in `seed`: their data files are checked once, with the first
    runners = [(seed, recipe, Runner(recipe, force=force, check_inputs=k == 0))
               for k, (seed, recipe) in enumerate(recipes)]
    if dry_run:
        for seed, recipe, runner in runners:
            print(f"\n== seed {seed}: {recipe.run_dir}")
            print_plan(recipe, runner)
        print(f"\nthen: the seed report in {run_dir}/report.md")
        return 0
    status: dict[str, dict] = {}
    code = 0
    for seed, recipe, runner in runners:
        status[str(seed)] = {"run_dir": str(recipe.run_dir), "status": "running"}
        _save(run_dir, path, seeds, overrides, status)
        log.info("[bold]seed %d[/]: %s", seed, recipe.run_dir, extra={"markup": True})
        try:
            runner.run()
            status[str(seed)]["status"] = "done"
        except AlignError as exc:
            log.error("seed %d failed: %s", seed, exc)
            status[str(seed)].update(status="failed", error=str(exc))
            code = code or exc.exit_code
        except Exception as exc:  # one broken seed must not cost the others
            log.exception("seed %d failed", seed)
            status[str(seed)].update(status="failed", error=f"{type(exc).__name__}: {exc}")
            code = code or 1
        _save(run_dir, path, seeds, overrides, status)
    from evals.seed_report import write_seed_report

    report = write_seed_report(run_dir)
    log.info("seed report: %s", report)
    return code


def _save(run_dir: Path, path, seeds, overrides, status) -> None:
    atomic_write_json(Path(run_dir) / SWEEP_FILE, {"recipe": str(path), "seeds": list(seeds),
                                                   "overrides": list(overrides or []), "runs": status})
