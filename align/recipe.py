"""Load and validate a recipe before any compute.

A recipe is a run directory, a seed and an ordered list of named stages. Validation
collects every problem (schema, unknown kinds, references to unknown or later stages,
missing files) with its YAML path and raises one `ConfigError` (exit code 2).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from align.config.base import MAX_SEED, Ref, StrictModel
from align.config.model_spec import ModelSpec
from align.engines import engine_problems
from align.errors import AlignError, ConfigError, DataError
from align.models import PACKAGE_SCHEME, looks_local, resolve_package_path
from align.overrides import apply_overrides
from align.plugins import plugin_file, trainer_problems
from align.stages import STAGE_KINDS, StageConfig
from align.yaml_strict import safe_load_unique, yaml_problem

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
STAGE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class RecipeHeader(StrictModel):
    """Top-level recipe fields."""

    run_dir: str = Field(description="Where the run writes (recipe.yaml, manifest.json, one dir per stage).")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed for every stage unless a stage sets its own (0 .. 2**32 - 1).")
    description: str | None = Field(None, description="Free text shown by --dry-run.")
    distributed: dict | None = Field(
        None, description="Default `distributed` block for every training stage that sets none."
    )
    stages: list[Any] = Field(description="Ordered list of stages; each has name, kind and its own fields.")

    @field_validator("run_dir")
    @classmethod
    def _usable_run_dir(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a directory (empty would write into the current directory)")
        p = Path(value).expanduser()
        existing = next((q for q in (p, *p.parents) if q.exists()), None)  # the nearest part already there
        if existing is not None and not existing.is_dir():
            raise ValueError(f"{existing} exists and is not a directory" if existing == p
                             else f"{value} would be inside {existing}, which is a file, not a directory")
        return value


@dataclass
class Recipe:
    """A validated recipe: typed stage configs, their dependencies and fingerprints."""

    source: str
    run_dir: Path
    seed: int
    description: str | None
    stages: list[StageConfig]
    raw: dict
    depends_on: dict[str, list[str]] = field(default_factory=dict)

    def stage(self, name: str) -> StageConfig:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_yaml(self) -> str:
        data = {"run_dir": str(self.run_dir), "seed": self.seed}
        if self.description:
            data["description"] = self.description
        # `distributed` defaults were copied into each stage; the resolved recipe needs no top-level one
        data["stages"] = [stage_dump(s) for s in self.stages]
        return yaml.safe_dump(data, sort_keys=False)

    def fingerprint(self, name: str) -> str:
        """Hash of a stage's resolved config, the seed, its local inputs and its upstream fingerprints."""
        cfg = self.stage(name)
        parts = {
            "config": stage_dump(cfg),
            "seed": self.stage_seed(cfg),
            "inputs": [_file_stamp(p) for p in _local_paths(cfg)],
            "upstream": [self.fingerprint(dep) for dep in self.depends_on.get(name, [])],
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def stage_seed(self, cfg: StageConfig) -> int:
        return self.seed if cfg.seed is None else cfg.seed

    def dependents(self, name: str) -> list[str]:
        """Stages that depend on `name`, directly or through others, in recipe order."""
        out: list[str] = []
        for s in self.stages:
            deps = self.depends_on.get(s.name, [])
            if name in deps or any(d in out for d in deps):
                out.append(s.name)
        return out


def stage_dump(cfg: BaseModel) -> dict:
    out = cfg.model_dump(mode="json", by_alias=True, exclude_none=True)
    for key in ("trainer", "trainer_options"):  # the plugin fields (a mixin, first in MRO order) go last
        if key in out:
            out[key] = out.pop(key)
    return out


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "not found"
        raise ConfigError([f"recipe file {what}: {path}"], source=str(path))
    try:
        raw = safe_load_unique(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text: byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r}"],
                          source=str(path)) from None
    except OSError as exc:
        raise ConfigError([f"cannot read the recipe: {exc.strerror or exc}"], source=str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {yaml_problem(exc)}"], source=str(path)) from None
    if not isinstance(raw, dict):
        raise ConfigError(["the recipe must be a mapping with run_dir, seed and stages"], source=str(path))
    raw = apply_overrides(raw, overrides or [])
    return validate_recipe(raw, source=str(path))


def validate_recipe(raw: dict, source: str = "recipe") -> Recipe:
    problems: list[str] = []
    header = None
    try:
        header = RecipeHeader.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_format_errors(exc, prefix=""))
    raw_stages = raw.get("stages") if isinstance(raw.get("stages"), list) else []

    # Names of every stage, valid or not, so references to a broken stage are not misreported.
    order: dict[str, int] = {}
    for i, item in enumerate(raw_stages):
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"] not in order:
            order[item["name"]] = i

    stages: list[StageConfig] = []
    positions: list[int] = []
    seen: set[str] = set()
    for i, item in enumerate(raw_stages):
        where = f"stages[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: a stage must be a mapping with name and kind")
            continue
        name, kind = item.get("name"), item.get("kind")
        if name is not None:
            where = f"stages[{i}] ({name})"
        if not isinstance(name, str) or not STAGE_NAME.match(name):
            problems.append(f"{where}.name: required; letters, digits, '_' or '-', starting with a letter")
        elif name in seen:
            problems.append(f"{where}.name: duplicate stage name {name!r} (also stages[{order[name]}])")
            continue
        else:
            seen.add(name)
        if kind not in STAGE_KINDS:
            known = ", ".join(sorted(STAGE_KINDS))
            problems.append(f"{where}.kind: unknown stage kind {kind!r}; known kinds: {known}")
            continue
        stage_cls = STAGE_KINDS[kind]
        if item.get("distributed") is not None and not stage_cls.distributable:
            problems.append(f"{where}.distributed: stage kind {kind!r} runs on one process only")
            continue
        if header is not None and header.distributed and stage_cls.distributable and "distributed" not in item:
            item = {**item, "distributed": header.distributed}
        try:
            cfg = stage_cls.Config.model_validate(item)
        except ValidationError as exc:
            problems.extend(_format_errors(exc, prefix=where))
            continue
        problems.extend(f"{where}.{p}" for p in stage_cls.check(cfg))
        problems.extend(f"{where}.{p}" for p in trainer_problems(stage_cls, cfg))
        problems.extend(f"{where}.{p}" for p in engine_problems(cfg))
        dist, lora = cfg.distributed, getattr(getattr(cfg, "model", None), "lora", None)
        if dist is not None and dist.strategy != "ddp" and lora is not None:
            problems.append(f"{where}.distributed: LoRA models are not saved from {dist.strategy} shards; "
                            "use strategy ddp with LoRA")
        stages.append(cfg)
        positions.append(i)

    valid = {s.name: s for s in stages}
    depends_on: dict[str, list[str]] = {}
    for pos, cfg in zip(positions, stages):
        deps: list[str] = []
        problems.extend(_check_refs(cfg, f"stages[{pos}] ({cfg.name})", pos, order, valid, deps))
        depends_on[cfg.name] = sorted(set(deps), key=lambda n: order[n])
    if problems or header is None:
        raise ConfigError(problems, source=source)
    return Recipe(
        source=source,
        run_dir=Path(header.run_dir),
        seed=header.seed,
        description=header.description,
        stages=stages,
        raw=raw,
        depends_on=depends_on,
    )


def _format_errors(exc: ValidationError, prefix: str) -> list[str]:
    out = []
    for err in exc.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        # pydantic adds the validator name for tagged/union steps; hide it for readability
        loc = re.sub(r"\.(function-after|function-before|function-wrap)\[[^\]]*\]", "", loc)
        path = (prefix + loc) if prefix else loc.lstrip(".")
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required field is missing"
        got = err.get("input")
        if err["type"] not in ("missing", "extra_forbidden") and not isinstance(got, (dict, list)):
            msg += f" (got {got!r})"
        out.append(f"{path or '<root>'}: {msg}")
    return out


def _ref_fields(model: BaseModel):
    """Yield (field path, value, Ref marker) for every Ref-marked string under `model`."""
    for fname, finfo in type(model).model_fields.items():
        value = getattr(model, fname)
        alias = finfo.alias or fname
        marker = next((m for m in finfo.metadata if isinstance(m, Ref)), None)
        if marker is not None and isinstance(value, str):
            yield alias, value, marker
        elif marker is not None and isinstance(value, list):
            for j, v in enumerate(value):
                if isinstance(v, str):
                    yield f"{alias}[{j}]", v, marker
        elif isinstance(value, BaseModel):
            for sub, v, m in _ref_fields(value):
                yield f"{alias}.{sub}", v, m
        elif isinstance(value, (list, tuple, dict)):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                if isinstance(v, BaseModel):
                    key = f".{k}" if isinstance(value, dict) else f"[{k}]"
                    for sub, vv, m in _ref_fields(v):
                        yield f"{alias}{key}.{sub}", vv, m


def _model_specs(model: BaseModel):
    for fname in type(model).model_fields:
        value = getattr(model, fname)
        if isinstance(value, ModelSpec):
            yield value
        elif isinstance(value, BaseModel):
            yield from _model_specs(value)


def _check_refs(cfg: StageConfig, where: str, pos: int, order: dict[str, int], valid: dict[str, StageConfig],
                deps: list[str]) -> list[str]:
    problems: list[str] = []
    earlier = [n for n, i in order.items() if i < pos]
    # `model: sft` shorthand: a path equal to an earlier stage's name means `from: sft`
    for spec in _model_specs(cfg):
        if spec.path is not None and spec.path in order:
            object.__setattr__(spec, "from_", spec.path)
            object.__setattr__(spec, "path", None)
    for path, value, marker in _ref_fields(cfg):
        head, _, output = value.partition(".")
        if head in order and order[head] < pos:
            deps.append(head)
            target = valid.get(head)
            if target is None:
                continue  # that stage's own errors are already reported
            outputs = STAGE_KINDS[target.kind].outputs(target)
            wanted = output or marker.output
            if wanted is None:
                problems.append(f"{where}.{path}: {value!r} must name an output, one of: {', '.join(outputs)}")
            elif wanted not in outputs:
                avail = ", ".join(outputs) or "none"
                problems.append(
                    f"{where}.{path}: stage {head!r} (kind {target.kind}) has no output {wanted!r}; it has: {avail}"
                )
        elif head in order:
            rel = "itself" if head == cfg.name else "a later stage"
            problems.append(f"{where}.{path}: {value!r} refers to {rel}; a stage can only use earlier stages")
        elif not marker.path_ok:
            names = ", ".join(earlier) or "none"
            problems.append(f"{where}.{path}: unknown stage {value!r} (earlier stages: {names})")
        else:
            problem = _check_path(value)
            if problem:
                problems.append(f"{where}.{path}: {problem}")
    for spec in _model_specs(cfg):
        if spec.path and spec.gguf_file and Path(spec.path).is_dir() and not (Path(spec.path) / spec.gguf_file).is_file():
            problems.append(f"{where}.model.gguf_file: {spec.gguf_file!r} not found in {spec.path}")
        elif spec.path:
            problem = _check_path(spec.path)
            if problem:
                problems.append(f"{where}.model.path: {problem}")
    return problems


def _check_path(value: str) -> str | None:
    if value.startswith(PACKAGE_SCHEME):
        try:
            value = resolve_package_path(value)
        except AlignError as exc:
            return str(exc)
    p = Path(value).expanduser()
    if looks_local(value):
        return None if p.exists() else f"file not found: {value}"
    if p.exists() or HUB_ID.match(value):
        return None  # an existing path, or a hub id 'owner/name' (checked when loaded)
    return f"{value!r} is neither an earlier stage, an existing path, nor a hub id (owner/name)"


TABLE_SUFFIXES = (".jsonl", ".json", ".parquet")


def check_data(recipe: Recipe) -> None:
    """Read every local data file the recipe's stages name, once, before any stage runs: a DataError
    listing every file that cannot be used. A field the stage kind checks itself (`input_checks`:
    its own loader, so columns and rows too) is read that way; any other local table file must be
    readable UTF-8 JSON/JSONL/parquet with at least one row. Called by `align run` (and its
    --dry-run), not by `validate_recipe`: the processes a distributed stage launches load the
    recipe again and need not read the data again."""
    from align.data.sources import load_table

    problems = []
    for pos, cfg in enumerate(recipe.stages):
        where = f"stages[{pos}] ({cfg.name})"
        checks = dict(STAGE_KINDS[cfg.kind].input_checks(cfg))
        for path, value, _marker in _ref_fields(cfg):
            p = Path(value).expanduser()
            if path in checks or p.suffix.lower() not in TABLE_SUFFIXES or not p.exists():
                continue
            checks[path] = lambda p=p: load_table(str(p))
        for path, load in checks.items():
            try:
                loaded = load()
            except DataError as exc:
                problems.append(f"{where}.{path}: {exc}")
                continue
            if not len(loaded.rows if hasattr(loaded, "rows") else loaded):
                problems.append(f"{where}.{path}: {_field(cfg, path)} has no rows")
    if problems:
        raise DataError("\n".join(["data files that cannot be used (checked before any stage runs):",
                                   *(f"  - {p}" for p in problems)]))


def _field(cfg: BaseModel, path: str):
    """The value at a dotted field path of a config (e.g. pairs.data)."""
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _local_paths(cfg: StageConfig) -> list[Path]:
    out = []
    plugin = plugin_file(getattr(cfg, "trainer", None))
    if plugin is not None and plugin.is_file():
        out.append(plugin)  # editing the plugin's code reruns the stage
    for _path, value, _m in _ref_fields(cfg):
        p = Path(value).expanduser()
        if p.is_file():
            out.append(p)
    return out


def _file_stamp(p: Path) -> list:
    st = p.stat()
    return [str(p), st.st_size, int(st.st_mtime)]
