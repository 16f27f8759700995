"""Building blocks shared by every stage config.

Every field is typed, has a default where one makes sense, and a one-line description:
the description is the documentation (`align kinds KIND` prints it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_SEED = 2**32 - 1  # numpy's and torch's seeding both take 0 .. 2**32 - 1


class StrictModel(BaseModel):
    """Base for all config blocks: unknown keys are errors, values are validated on assignment,
    and no float may be inf or nan (`epochs: .inf` would otherwise reach the step count)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True, allow_inf_nan=False)


@dataclass(frozen=True)
class Ref:
    """Marks a string field that may name an earlier stage's output (`stage` or `stage.output`).

    `output` is the output used when the reference names only the stage (e.g. `model`);
    `path_ok` means the string may instead be a local path or a hub id.
    """

    output: str | None = None
    path_ok: bool = True


class LoRASpec(StrictModel):
    """LoRA adapters via peft; the frozen base model doubles as the reference where one is needed."""

    r: int = Field(8, ge=1, description="LoRA rank.")
    alpha: int = Field(16, ge=1, description="LoRA scaling numerator (lora_alpha).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA branch.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt, or 'all-linear'."
    )
    merge_on_save: bool = Field(True, description="Save merged full weights (True) or the adapter only.")


class TrainConfig(StrictModel):
    """Optimisation settings shared by every trainer."""

    epochs: float = Field(1.0, gt=0, description="Passes over the training data (fractions allowed).")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")
    lr: float = Field(1e-5, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    adam_betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas.")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps.")
    scheduler: Literal["constant", "linear", "cosine"] = Field("constant", description="LR schedule after warm-up.")
    batch_size: int = Field(8, ge=1, description="Micro-batch size per process.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping norm (null: no clipping).")
    max_length: int = Field(512, ge=8, description="Maximum tokens per training sequence.")
    over_length: Literal["truncate", "drop"] = Field(
        "truncate", description="What to do with longer sequences: cut them or drop the row (counted in metrics)."
    )
    precision: Literal["no", "bf16", "fp16"] = Field("no", description="Mixed precision (accelerate).")
    group_by_length: bool = Field(False, description="Batch examples of similar length (less padding, order still "
                                                     "random and resumable); train/pad_fraction shows the padding.")
    gradient_checkpointing: bool = Field(False, description="Trade compute for activation memory.")
    save_every: int = Field(50, ge=0, description="Checkpoint every N optimizer steps (0: only at the end).")
    keep_checkpoints: int = Field(2, ge=1, description="How many recent checkpoints to keep.")
    log_every: int = Field(10, ge=1, description="Log metrics every N optimizer steps.")
    eval_every: int = Field(0, ge=0, description="Validate every N optimizer steps (0: only at the end).")
    report_to: list[Literal["tensorboard", "wandb"]] = Field(
        default_factory=list, description="Experiment trackers besides the console."
    )

    @field_validator("adam_betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        bad = [f"beta{i + 1}={b}" for i, b in enumerate(betas) if not 0.0 <= b < 1.0]
        if bad:
            raise ValueError(f"each beta must be in [0, 1): {', '.join(bad)}")
        return betas


class OracleEvalConfig(StrictModel):
    """Score greedy answers on held-out world prompts with the world oracle (the gold judge)."""

    prompts: Annotated[str, Ref(output="prompts_test")] = Field(
        description="Prompt set: an earlier world stage (e.g. world.prompts_test) or a file."
    )
    max_prompts: int = Field(200, ge=1, description="Evaluate at most this many prompts.")
    max_new_tokens: int = Field(48, ge=1, description="Tokens generated per answer.")
    batch_size: int = Field(64, ge=1, description="Prompts per generation batch.")
    reward_model: Annotated[str | None, Ref(output="model")] = Field(
        None, description="Also score the greedy answers with this reward model (rm/<attr>/..., the hacking gap).")
    best_of: int | None = Field(None, ge=2, description="Headroom: oracle helpfulness of the best of this many samples "
                                                         "per prompt from the starting policy, at the stage's sampling settings.")


class DistributedConfig(StrictModel):
    """Run a stage on several processes through an existing engine (accelerate: DDP, FSDP, DeepSpeed ZeRO).

    With more than one process in all, the runner launches the stage itself (`accelerate launch`
    or `torchrun`) and waits for it; multi-node runs start the same command on every machine
    with its own `machine_rank` (README, "Multi-GPU and multi-node").
    """

    strategy: Literal["ddp", "fsdp", "deepspeed"] = Field("ddp", description="Data parallel, FSDP, or DeepSpeed ZeRO.")
    num_processes: int = Field(1, ge=1, description="Processes (GPUs) per machine.")
    launcher: Literal["accelerate", "torchrun"] = Field(
        "accelerate", description="Launcher; torchrun supports ddp only."
    )
    zero_stage: Literal[2, 3] = Field(3, description="DeepSpeed ZeRO stage.")
    offload: bool = Field(False, description="Offload optimizer states (ZeRO) or parameters (FSDP) to CPU memory.")
    fsdp_sharding: Literal["FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD"] = Field(
        "FULL_SHARD", description="FSDP sharding strategy."
    )
    num_machines: int = Field(1, ge=1, description="Machines (nodes) in the job.")
    machine_rank: int = Field(0, ge=0, description="This machine's rank (0 on the main node).")
    main_process_ip: str | None = Field(None, description="Address of the rank-0 machine (multi-node).")
    main_process_port: int = Field(29500, ge=1, le=65535, description="Rendezvous port.")
    cpu: bool = Field(False, description="Run on CPU processes with gloo (testing the distributed path): ddp or deepspeed.")

    @property
    def world_size(self) -> int:
        return self.num_processes * self.num_machines

    @model_validator(mode="after")
    def _consistent(self) -> "DistributedConfig":
        if self.launcher == "torchrun" and self.strategy != "ddp":
            raise ValueError(f"strategy {self.strategy!r} needs launcher: accelerate (torchrun runs ddp only)")
        if self.num_machines > 1 and not self.main_process_ip:
            raise ValueError("num_machines > 1 needs main_process_ip (the rank-0 machine's address)")
        if self.machine_rank >= self.num_machines:
            raise ValueError(f"machine_rank {self.machine_rank} must be < num_machines {self.num_machines}")
        if self.cpu and self.strategy == "fsdp":
            # accelerate (1.x) turns FSDP on only for GPU-like devices: on the CPU its FSDP plugin
            # raises "no available devices found" and its state falls back to MULTI_CPU (DDP).
            raise ValueError("strategy fsdp needs GPUs: accelerate does not run FSDP on CPU processes "
                             "(use strategy ddp or deepspeed with cpu: true)")
        return self
