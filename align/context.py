"""What a running stage sees: its config, its work directory, and how to reach earlier stages."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from align.config.model_spec import ModelSpec
from align.stages import STAGE_KINDS, StageConfig

log = logging.getLogger("align")


@dataclass
class StageContext:
    """Passed to `Stage.run`. Write everything under `work_dir`; the runner publishes it on success."""

    name: str
    run_dir: Path
    work_dir: Path
    seed: int
    stages: dict[str, StageConfig] = field(default_factory=dict)
    log: logging.Logger = log

    def stage_dir(self, name: str) -> Path:
        """The published directory of an earlier stage."""
        return self.run_dir / name

    def resolve(self, value: str, output: str | None = None) -> str:
        """Turn `stage` / `stage.output` into a path; any other value (file, hub id) passes through."""
        head, _, out = value.partition(".")
        if head not in self.stages:
            return value
        target = self.stages[head]
        outputs = STAGE_KINDS[target.kind].outputs(target)
        key = out or output
        if key not in outputs:
            raise KeyError(f"stage {head!r} has no output {key!r}; it has: {', '.join(outputs)}")
        return str(self.stage_dir(head) / outputs[key])

    def resolve_model(self, spec: ModelSpec) -> ModelSpec:
        """A copy of `spec` whose `from`/`tokenizer` references are local paths."""
        updates: dict = {}
        if spec.from_ is not None:
            updates.update(path=self.resolve(spec.from_, "model"), from_=None)
        if spec.tokenizer is not None:
            updates["tokenizer"] = self.resolve(spec.tokenizer, "tokenizer")
        return spec.model_copy(update=updates)
