"""Stage `kind: world`: generate the synthetic HelpSteer world (DESIGN.md).

It writes HelpSteer2-schema files, preference pairs, an SFT set, prompt sets and a
tokenizer trained on the world's text, so every later stage reads them through the same
loaders a user's own data goes through.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from align.stages.base import Stage, StageConfig, register_stage
from align.world.layout import WORLD_OUTPUTS, write_world_mtbench


class WorldConfig(StageConfig):
    """Sizes of the generated world."""

    kind: Literal["world"] = "world"
    prompts: int = Field(2000, ge=10, description="Prompts in train + validation (`responses_per_prompt` responses each).")
    validation_fraction: float = Field(0.05, gt=0, lt=0.5, description="Fraction of prompts held out for validation.")
    test_prompts: int = Field(200, ge=1, description="Fresh prompts for held-out evaluation.")
    multi_turn_fraction: float = Field(0.3, ge=0, le=1, description="Fraction of multi-turn prompts (HelpSteer2: ~0.29).")
    max_operand: int = Field(5, ge=3, le=99, description="Numbers in tasks range over 0..max_operand (harder when larger).")
    responses_per_prompt: int = Field(2, ge=2, le=64, description="Rated responses per prompt (HelpSteer2: 2).")
    pairs_per_prompt: int = Field(1, ge=1, description="Preference pairs per prompt over disjoint responses "
                                  "(HelpSteer2-Preference: 1); at most responses_per_prompt // 2.")

    @model_validator(mode="after")
    def _pairs_fit(self):
        if self.pairs_per_prompt > self.responses_per_prompt // 2:
            raise ValueError(f"pairs_per_prompt ({self.pairs_per_prompt}) needs 2 responses per pair: at most "
                             f"responses_per_prompt // 2 = {self.responses_per_prompt // 2}")
        return self


@register_stage
class WorldStage(Stage):
    """Generate the synthetic HelpSteer world: data files, prompt sets, tokenizer."""

    kind = "world"
    Config = WorldConfig

    @classmethod
    def outputs(cls, config) -> dict[str, str]:
        return dict(WORLD_OUTPUTS)

    def run(self, config: WorldConfig, ctx) -> dict:
        import json

        from align.world.generator import generate_world

        written = generate_world(
            ctx.work_dir,
            prompts=config.prompts,
            seed=ctx.seed,
            validation_fraction=config.validation_fraction,
            test_prompts=config.test_prompts,
            multi_turn_fraction=config.multi_turn_fraction,
            max_operand=config.max_operand,
            responses_per_prompt=config.responses_per_prompt,
            pairs_per_prompt=config.pairs_per_prompt,
        )
        written.update(write_world_mtbench(ctx.work_dir, ctx.seed))
        for name, rel in WORLD_OUTPUTS.items():
            if not (ctx.work_dir / rel).exists():
                raise RuntimeError(f"world generator did not write output {name!r} ({rel}); wrote {sorted(written)}")
        info = json.loads((ctx.work_dir / WORLD_OUTPUTS["world_info"]).read_text())
        metrics = {}
        for key, value in info.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[f"world/{key}"] = value
            elif isinstance(value, dict):
                for sub, v in value.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        metrics[f"world/{key}/{sub}"] = v
        return metrics
