"""Run a validated recipe stage by stage, honouring the run-directory contract.

<run_dir>/recipe.yaml            the resolved recipe
<run_dir>/manifest.json          versions, seed, and each stage's status and times
<run_dir>/<stage>/config.yaml    the resolved stage config
<run_dir>/<stage>/metrics.json   the stage's final metrics (flat)
<run_dir>/<stage>/model/         a Hugging Face directory, for stages that make a model

A stage works in <run_dir>/.work/<stage>/ (checkpoints live there, so an interrupted
stage resumes) and is published by renaming that directory into place only when it
succeeds: a failed or killed rerun never damages the previous result.
"""
from __future__ import annotations

import json
import logging
import math
import os
import platform
import shutil
import subprocess
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import yaml

from align.context import StageContext
from align.errors import AlignError, ConfigError, TrainingError
from align.io_utils import atomic_write_json, atomic_write_text
from align.launch import LAUNCHED_ENV, METRICS_FILE, launch_command, needs_launch
from align.recipe import Recipe, check_data, stage_dump
from align.run_lock import RunDirLock
from align.stages import STAGE_KINDS

log = logging.getLogger("align")

STAGE_MARKER = "stage.json"
PACKAGES = ("steeralign", "torch", "transformers", "accelerate", "trl", "peft", "datasets", "deepspeed", "pydantic")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Runner:
    """Plans (what is up to date, what must run) and runs a recipe."""

    def __init__(self, recipe: Recipe, force: list[str] | None = None, *, check_inputs: bool = True):
        if check_inputs:
            check_data(recipe)  # every user data file read once, before any stage (or --dry-run plan)
        self.recipe = recipe
        self.run_dir = recipe.run_dir
        names = [s.name for s in recipe.stages]
        unknown = [f for f in force or [] if f not in names]
        if unknown:
            raise ConfigError([f"--force {u}: no such stage (stages: {', '.join(names)})" for u in unknown])
        self.forced: set[str] = set()
        for f in force or []:
            self.forced.add(f)
            self.forced.update(recipe.dependents(f))

    # ---- planning -------------------------------------------------------------------
    def stage_marker(self, name: str) -> dict | None:
        path = self.run_dir / name / STAGE_MARKER
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def plan(self) -> list[tuple[str, str]]:
        """(stage, action) for each stage: 'run', 'skip (up to date)', 'run (forced)', ..."""
        actions = []
        for cfg in self.recipe.stages:
            marker = self.stage_marker(cfg.name)
            fp = self.recipe.fingerprint(cfg.name)
            if cfg.name in self.forced:
                actions.append((cfg.name, "run (forced)"))
            elif marker is None:
                work = self.run_dir / ".work" / cfg.name
                resumable = (work / "fingerprint").is_file() and (work / "fingerprint").read_text().strip() == fp
                actions.append((cfg.name, "resume" if resumable else "run"))
            elif marker.get("fingerprint") != fp:
                actions.append((cfg.name, "run (config or inputs changed)"))
            else:
                actions.append((cfg.name, "skip (up to date)"))
        return actions

    # ---- manifest --------------------------------------------------------------------
    def _load_manifest(self) -> dict:
        path = self.run_dir / "manifest.json"
        old = {}
        if path.is_file():
            try:
                old = {s["name"]: s for s in json.loads(path.read_text()).get("stages", [])}
            except (json.JSONDecodeError, KeyError, TypeError):
                old = {}
        stages = []
        for cfg in self.recipe.stages:
            entry = {"name": cfg.name, "kind": cfg.kind, "status": "pending"}
            prev = old.get(cfg.name)
            if prev and prev.get("kind") == cfg.kind and self.stage_marker(cfg.name):
                entry.update({k: prev[k] for k in ("started_at", "finished_at", "duration_s") if k in prev})
            stages.append(entry)
        return {
            "recipe": self.recipe.source,
            "run_dir": str(self.run_dir),
            "seed": self.recipe.seed,
            "versions": package_versions(),
            "updated_at": _now(),
            "stages": stages,
        }

    def _save_manifest(self, manifest: dict) -> None:
        manifest["updated_at"] = _now()
        atomic_write_json(self.run_dir / "manifest.json", manifest)

    # ---- running ---------------------------------------------------------------------
    @property
    def machine_rank(self) -> int:
        """This machine's rank in a multi-node recipe (0 on the main node and for single-node runs)."""
        return max((s.distributed.machine_rank for s in self.recipe.stages if s.distributed), default=0)

    def preflight(self, plan: list[tuple[str, str]]) -> list[str]:
        """What stops a stage that `plan` runs from launching on this machine (engines, devices)."""
        import importlib.util

        import torch

        problems = []
        for (name, action), cfg in zip(plan, self.recipe.stages):
            dist = cfg.distributed
            if action.startswith("skip") or not needs_launch(dist):
                continue
            if dist.strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
                problems.append(f"stages.{name}.distributed: strategy deepspeed needs the deepspeed package "
                                "(pip install 'steeralign[deepspeed]')")
            if dist.strategy == "fsdp" and not torch.cuda.is_available():
                problems.append(f"stages.{name}.distributed: strategy fsdp needs CUDA GPUs and this machine has none "
                                "(accelerate runs FSDP on GPUs only; ddp and deepspeed also run on CPU processes)")
        return problems

    def run(self) -> dict:
        self._check_preflight(self.plan())  # before the lock: a refused recipe creates nothing
        if self.machine_rank > 0:  # rank 0's run holds the lock and does all the writing
            return self._run_as_worker()
        with RunDirLock(self.run_dir):  # a second run on this run_dir stops here, touching nothing
            return self._run_locked()

    def _check_preflight(self, plan: list[tuple[str, str]]) -> None:
        problems = self.preflight(plan)
        if problems:
            raise AlignError("cannot run this recipe here:\n" + "\n".join(f"  - {p}" for p in problems))

    def _run_locked(self) -> dict:
        plan = self.plan()  # again under the lock; stage markers are only written by the stages below
        atomic_write_text(self.run_dir / "recipe.yaml", self.recipe.to_yaml())
        manifest = self._load_manifest()
        entries = {e["name"]: e for e in manifest["stages"]}
        self._save_manifest(manifest)
        for (name, action), cfg in zip(plan, self.recipe.stages):
            entry = entries[name]
            entry["fingerprint"] = self.recipe.fingerprint(name)
            if action.startswith("skip"):
                entry["status"] = "skipped"
                log.info("[bold]%s[/] (%s): up to date, skipped", name, cfg.kind, extra={"markup": True})
                self._save_manifest(manifest)
                continue
            entry.update(status="running", started_at=_now(), finished_at=None, duration_s=None)
            entry.pop("error", None)
            self._save_manifest(manifest)
            t0 = time.time()
            try:
                metrics = self._run_stage(cfg, entry["fingerprint"], action)
            except BaseException as exc:
                entry.update(status="failed", finished_at=_now(), duration_s=round(time.time() - t0, 2))
                entry["error"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
                self._save_manifest(manifest)
                if isinstance(exc, AlignError):
                    exc.args = (f"stage {name!r} ({cfg.kind}) failed: {exc}",)
                raise
            entry.update(status="done", finished_at=_now(), duration_s=round(time.time() - t0, 2))
            self._save_manifest(manifest)
            shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(metrics.items())[:8])
            log.info("[bold green]%s[/] done in %.1fs  %s", name, time.time() - t0, shown, extra={"markup": True})
        return manifest

    def _run_stage(self, cfg, fingerprint: str, action: str) -> dict:
        name = cfg.name
        work = self.run_dir / ".work" / name
        fp_file = work / "fingerprint"
        if work.exists() and (not fp_file.is_file() or fp_file.read_text().strip() != fingerprint or "forced" in action):
            shutil.rmtree(work)  # stale partial work from another config
        work.mkdir(parents=True, exist_ok=True)
        fp_file.write_text(fingerprint)
        if action == "resume":
            log.info("[bold]%s[/] (%s): resuming in %s", name, cfg.kind, work, extra={"markup": True})
        else:
            log.info("[bold]%s[/] (%s): running", name, cfg.kind, extra={"markup": True})
        ctx = StageContext(
            name=name,
            run_dir=self.run_dir,
            work_dir=work,
            seed=self.recipe.stage_seed(cfg),
            stages={s.name: s for s in self.recipe.stages},
        )
        if needs_launch(cfg.distributed):
            metrics = self._launch(cfg, work)
        else:
            handler = logging.FileHandler(work / "stage.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logging.getLogger().addHandler(handler)
            try:
                metrics = STAGE_KINDS[cfg.kind]().run(cfg, ctx) or {}
            finally:
                logging.getLogger().removeHandler(handler)
                handler.close()
        bad = [k for k, v in metrics.items() if not isinstance(v, (int, float, str, bool))]
        if bad:
            raise TypeError(f"stage {name!r} returned non-scalar metrics: {bad}")
        non_finite = [f"{k}={v}" for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
        if non_finite:  # a diverged stage is never published as done; its checkpoints stay in the work dir
            raise TrainingError(f"non-finite metrics: {', '.join(non_finite[:8])}"
                                f"{' ...' if len(non_finite) > 8 else ''}; the stage diverged (try a lower lr) and is "
                                f"not marked done; its checkpoints are kept in {work}")
        atomic_write_json(work / "metrics.json", metrics)
        atomic_write_text(work / "config.yaml", yaml.safe_dump(stage_dump(cfg), sort_keys=False))
        atomic_write_json(work / STAGE_MARKER, {"kind": cfg.kind, "fingerprint": fingerprint, "finished_at": _now()})
        fp_file.unlink(missing_ok=True)
        self._publish(work, self.run_dir / name)
        return metrics

    def _run_as_worker(self, poll_s: float = 5.0) -> dict:
        """Machines other than rank 0 join each distributed stage's launch and leave all writing to rank 0."""
        for cfg in self.recipe.stages:
            fp = self.recipe.fingerprint(cfg.name)
            if needs_launch(cfg.distributed):
                work = self.run_dir / ".work" / cfg.name
                while not (work / "fingerprint").is_file() and (self.stage_marker(cfg.name) or {}).get("fingerprint") != fp:
                    time.sleep(poll_s)  # rank 0 prepares the work dir first
                if (self.stage_marker(cfg.name) or {}).get("fingerprint") != fp:
                    cmd = self._launch_command(cfg)
                    log.info("machine %d joins %s: %s", self.machine_rank, cfg.name, " ".join(cmd))
                    if subprocess.run(cmd, env=self._launch_env(cfg)).returncode != 0:
                        raise AlignError(f"distributed run of stage {cfg.name!r} failed on machine {self.machine_rank}")
            log.info("waiting for machine 0 to publish %s", cfg.name)
            while (self.stage_marker(cfg.name) or {}).get("fingerprint") != fp:
                time.sleep(poll_s)
        return {}

    def _launch_command(self, cfg) -> list[str]:
        train = getattr(cfg, "train", None)
        return launch_command(cfg.distributed, self.run_dir, cfg.name, precision=getattr(train, "precision", "no"),
                              grad_accum=getattr(train, "grad_accum", 1),
                              max_grad_norm=getattr(train, "max_grad_norm", 1.0))

    @staticmethod
    def _launch_env(cfg) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != LAUNCHED_ENV}
        if cfg.distributed.cpu:
            env["CUDA_VISIBLE_DEVICES"] = ""  # CPU processes even on a GPU machine (DeepSpeed picks its CPU accelerator)
        return env

    def _launch(self, cfg, work: Path) -> dict:
        """Run the stage on several processes (accelerate launch / torchrun) and collect rank 0's metrics."""
        cmd = self._launch_command(cfg)
        log.info("launching %s on %d process(es): %s", cfg.name, cfg.distributed.world_size, " ".join(cmd))
        result = subprocess.run(cmd, env=self._launch_env(cfg))
        metrics_file = work / METRICS_FILE
        if result.returncode != 0 or not metrics_file.is_file():
            raise AlignError(f"distributed run of stage {cfg.name!r} exited with code {result.returncode}; "
                             f"see {work / 'stage.log'} and the output above")
        metrics = json.loads(metrics_file.read_text())
        metrics_file.unlink()
        return metrics

    def _publish(self, work: Path, final: Path) -> None:
        """Swap the finished work dir into place; the old result is removed only after."""
        trash = None
        if final.exists():
            trash = self.run_dir / ".work" / f".old-{final.name}-{int(time.time() * 1000)}"
            final.rename(trash)
        work.rename(final)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
