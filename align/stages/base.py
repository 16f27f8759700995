"""What every stage kind provides: a typed config, its outputs, and `run`.

A stage kind is one class registered with `@register_stage`. The runner validates the
whole recipe against the config classes before any compute, resolves references to
earlier stages through `outputs`, and calls `run` with a `StageContext`.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from typing import Any

from pydantic import Field

from align.config.base import MAX_SEED, DistributedConfig, StrictModel

if TYPE_CHECKING:
    from align.context import StageContext


class StageConfig(StrictModel):
    """Fields every stage has. Subclasses add their own (and set `kind` to a Literal)."""

    name: str = Field(description="Stage name: its directory under run_dir and how later stages refer to it.")
    kind: str = Field(description="Which stage kind runs (see `align kinds`).")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="Seed for this stage (default: the recipe's seed).")
    distributed: DistributedConfig | None = Field(
        None, description="Processes and engine for this stage (default: the recipe's `distributed`, else one process)."
    )


class TrainerChoice(StrictModel):
    """The fields of a stage that trains: which trainer class, and that class's own options."""

    trainer: str | None = Field(
        None, description="Your trainer class instead of the built-in one: 'package.module:Class' or "
                          "'path/to/file.py:Class' (relative to the current directory). It must subclass the "
                          "stage's trainer; `align kinds KIND --trainer SPEC` shows its options.")
    trainer_options: dict[str, Any] = Field(
        default_factory=dict, description="Settings of `trainer`, validated against its `Options` model; the "
                                          "trainer reads them as self.options.")


class Stage:
    """Base class of stage kinds. Subclasses set `kind`, `Config`, and implement `run`."""

    kind: ClassVar[str]
    Config: ClassVar[type[StageConfig]]
    produces_model: ClassVar[bool] = False
    #: whether the stage can run on several processes (trainers); the recipe-level
    #: `distributed` default applies only to these
    distributable: ClassVar[bool] = False
    #: training stages: 'module:Class' of the trainer they build; a recipe's `trainer:` must subclass it
    trainer_base: ClassVar[str | None] = None

    @classmethod
    def outputs(cls, config: StageConfig) -> dict[str, str]:
        """Output name -> path relative to the stage directory. Later stages refer to these."""
        return {"model": "model", "tokenizer": "model"} if cls.produces_model else {}

    @classmethod
    def check(cls, config: StageConfig) -> list[str]:
        """Extra problems the schema cannot express (paths relative to the stage). Default: none."""
        return []

    @classmethod
    def input_checks(cls, config: StageConfig) -> list[tuple[str, Callable[[], object]]]:
        """(field, load) for the stage's data inputs: the recipe calls each `load` on the user's own files
        before any stage runs, so a bad row of a late stage's file is found before the first stage trains.
        Loaders raise DataError; inputs that name earlier stages are skipped (see `local_file`)."""
        return []

    def build_trainer(self, config: StageConfig, *args, **kwargs):
        """The stage's trainer: the built-in class, or the recipe's `trainer` with its `trainer_options`."""
        from align.plugins import build_trainer

        return build_trainer(type(self), config, *args, **kwargs)

    def run(self, config: StageConfig, ctx: "StageContext") -> dict[str, float]:
        """Do the work inside `ctx.work_dir`; return the flat metrics written to metrics.json."""
        raise NotImplementedError


def local_file(value: str | None) -> bool:
    """Whether a data field names an existing local file (not an earlier stage's output or a hub id)."""
    return bool(value) and "." in Path(value).name and Path(value).expanduser().is_file()


STAGE_KINDS: dict[str, type[Stage]] = {}


def register_stage(cls: type[Stage]) -> type[Stage]:
    """Class decorator adding a stage kind to the registry (kinds must be unique)."""
    if cls.kind in STAGE_KINDS and STAGE_KINDS[cls.kind] is not cls:
        raise ValueError(f"stage kind {cls.kind!r} registered twice")
    STAGE_KINDS[cls.kind] = cls
    return cls
