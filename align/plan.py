"""Human-readable views: the resolved plan (--dry-run) and the stage kinds (`align kinds`)."""
from __future__ import annotations

from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from align.memory import stage_memory
from align.stages import STAGE_KINDS


def print_plan(recipe, runner, console: Console | None = None) -> None:
    console = console or Console()
    if recipe.description:
        console.print(recipe.description)
    table = Table(title=f"plan: {recipe.source} -> {recipe.run_dir}  (seed {recipe.seed})")
    for col in ("#", "stage", "kind", "uses", "procs", "mem/proc (est.)", "action"):
        table.add_column(col)
    stages = {s.name: s for s in recipe.stages}
    notes = []
    for i, ((name, action), cfg) in enumerate(zip(runner.plan(), recipe.stages)):
        outputs = ", ".join(STAGE_KINDS[cfg.kind].outputs(cfg))
        mem = stage_memory(cfg, stages)
        shown = "-" if mem is None else "unknown" if "unknown" in mem else f"{mem['total']:.1f} GiB"
        if mem is not None:
            notes.append(_memory_note(name, mem))
        procs = str(cfg.distributed.world_size) if cfg.distributed else "1"
        if cfg.distributed and cfg.distributed.strategy != "ddp":
            procs += f" {cfg.distributed.strategy}" + (f"-{cfg.distributed.zero_stage}" if cfg.distributed.strategy == "deepspeed" else "")
        table.add_row(str(i), name, cfg.kind, ", ".join(recipe.depends_on.get(name, [])) or "-", procs, shown, action)
        notes.append(f"outputs {name}: {outputs or '-'}")
    console.print(table)
    for note in sorted(notes, key=lambda n: not n.startswith("outputs")):
        console.print(f"  {note}")
    if any(n.startswith("memory") for n in notes):
        console.print("  (the trained model, plus the frozen models steerlm2 and ppo hold; other stages' frozen "
                      "reference / reward models add their weights; see align/memory.py)")
    console.print(Syntax(recipe.to_yaml(), "yaml", word_wrap=True))


def _memory_note(name: str, mem: dict) -> str:
    if "unknown" in mem:
        return f"memory {name}: unknown ({mem['unknown']})"
    note = (f"memory {name}: {mem['params_b']:.3g}B params; per process: weights {mem['weights']:.2f}, "
            f"grads {mem['grads']:.2f}, optimizer {mem['optimizer']:.2f}, activations {mem['activations']:.2f} GiB")
    if mem.get("logprobs"):
        note += f" (of which log-probs {mem['logprobs']:.2f} GiB, {mem['logprobs_path']} path)"
    if "frozen" in mem:
        note += "; frozen models " + ("unknown (not counted)" if mem["frozen"] is None else f"{mem['frozen']:.2f} GiB")
    if mem.get("sampling") is not None:  # steerlm2, ppo: the larger phase is the total
        if mem.get("frozen_offloaded"):  # steerlm2: frozen models wait in CPU memory while the policy trains
            note += " (CPU while training)"
        what = mem.get("sampling_what", "whole policy + frozen")
        note += f"; sampling phase ({what}) {mem['sampling']:.2f} GiB"
        if mem.get("training") is not None:
            note += f", training phase {mem['training']:.2f} GiB"
    return note


def print_kinds(kind: str | None, console: Console | None = None, trainer: str | None = None) -> int:
    console = console or Console()
    if trainer is not None and kind is None:
        console.print("--trainer needs a stage kind: align kinds KIND --trainer SPEC")
        return 2
    if kind is None:
        table = Table(title="stage kinds")
        table.add_column("kind")
        table.add_column("what it does")
        for name, cls in sorted(STAGE_KINDS.items()):
            table.add_row(name, (cls.__doc__ or "").strip().splitlines()[0])
        console.print(table)
        return 0
    if kind not in STAGE_KINDS:
        console.print(f"unknown kind {kind!r}; known: {', '.join(sorted(STAGE_KINDS))}")
        return 2
    cls = STAGE_KINDS[kind]
    console.print((cls.__doc__ or "").strip())
    _print_fields(cls.Config, console, prefix="")
    if cls.trainer_base:
        console.print(f"trainer: built in {cls.trainer_base}; `trainer:` may name a subclass of it")
    if trainer is not None:
        return _print_trainer(cls, trainer, console)
    return 0


def _print_trainer(stage_cls, spec: str, console) -> int:
    """A plugin trainer's docstring and options (what `trainer_options` takes)."""
    from align.plugins import PluginError, trainer_class

    if not stage_cls.trainer_base:
        console.print(f"stage kind {stage_cls.kind!r} builds no trainer")
        return 2
    try:
        cls = trainer_class(stage_cls, type("Spec", (), {"trainer": spec})())
    except PluginError as exc:
        console.print(f"trainer: {exc}")
        return 2
    console.print(f"[bold]{spec}[/]: {(cls.__doc__ or '').strip().splitlines()[0] if cls.__doc__ else ''}")
    options = getattr(cls, "Options", None)
    if options is None:
        console.print("no options (trainer_options must be empty)")
    else:
        _print_fields(options, console, prefix="trainer_options.")
    return 0


def _print_fields(model, console, prefix: str) -> None:
    from pydantic import BaseModel

    table = Table(title=f"{model.__name__} fields" if not prefix else None, show_header=not prefix)
    for col in ("field", "type", "default", "help"):
        table.add_column(col)
    nested = []
    late = ("trainer", "trainer_options")  # the plugin fields (a mixin, so first in MRO order) go last
    fields = sorted(model.model_fields.items(), key=lambda kv: kv[0] in late)
    for name, f in fields:
        key = prefix + (f.alias or name)
        ann = f.annotation
        default = "required" if f.is_required() else repr(f.get_default(call_default_factory=True))
        table.add_row(key, _type_name(ann), default, f.description or "")
        for sub in _submodels(ann):
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                nested.append((key, sub))
    console.print(table)
    for key, sub in nested:
        console.print(f"[bold]{key}[/]: {sub.__name__}")
        _print_fields(sub, console, prefix=key + ".")


def _type_name(ann) -> str:
    return getattr(ann, "__name__", None) or str(ann).replace("typing.", "")


def _submodels(ann):
    from typing import get_args

    args = get_args(ann)
    return [a for a in args if isinstance(a, type)] if args else [ann]
