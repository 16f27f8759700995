"""Launch one stage on several processes, and the entry point those processes run.

The runner stays a single process: for a stage whose `distributed` block asks for more
than one process it builds an `accelerate launch` (or `torchrun`) command that runs
`python -m align.launch RUN_DIR STAGE` on every process. Each process reads the resolved
recipe from RUN_DIR/recipe.yaml, runs the stage in the same work directory, and rank 0
writes the metrics there; the runner then publishes the stage as usual.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from align.config.base import DistributedConfig

LAUNCHED_ENV = "ALIGN_LAUNCHED_STAGE"
METRICS_FILE = "_launch_metrics.json"


def needs_launch(dist: DistributedConfig | None) -> bool:
    """Launch when asked for several processes, or for an engine that needs a launcher, unless already launched."""
    if dist is None or os.environ.get(LAUNCHED_ENV):
        return False
    return dist.world_size > 1 or dist.strategy != "ddp"


def launch_command(dist: DistributedConfig, run_dir: Path, stage: str, precision: str = "no",
                   grad_accum: int = 1, max_grad_norm: float | None = 1.0) -> list[str]:
    """The command that starts `python -m align.launch RUN_DIR STAGE` on this machine's processes.

    `cpu: true` means gloo processes: plain `--cpu` for DDP; for DeepSpeed the DeepSpeed flags
    alone (accelerate refuses `--cpu` with `--use_deepspeed`, and the processes pick DeepSpeed's
    CPU accelerator themselves: `align.distributed.state_kwargs`).
    """
    entry = ["-m", "align.launch", str(run_dir), stage]
    if dist.launcher == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={dist.num_processes}",
               f"--nnodes={dist.num_machines}", f"--node_rank={dist.machine_rank}",
               f"--master_port={dist.main_process_port}"]
        if dist.main_process_ip:
            cmd.append(f"--master_addr={dist.main_process_ip}")
        return cmd + entry
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(dist.world_size),
           "--num_machines", str(dist.num_machines), "--machine_rank", str(dist.machine_rank),
           "--main_process_port", str(dist.main_process_port), "--mixed_precision", precision]
    if dist.main_process_ip:
        cmd += ["--main_process_ip", dist.main_process_ip]
    if dist.cpu and dist.strategy == "ddp":
        cmd += ["--cpu"]
    elif dist.strategy == "ddp":
        cmd += ["--multi_gpu"]
    elif dist.strategy == "fsdp":
        cmd += ["--use_fsdp", "--fsdp_sharding_strategy", dist.fsdp_sharding,
                "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP",
                "--fsdp_offload_params", "true" if dist.offload else "false",
                "--fsdp_state_dict_type", "FULL_STATE_DICT",
                # Every process loads the whole model itself; with accelerate's default, a model
                # loaded once the process group exists (DPO between rounds) is empty (meta) on ranks > 0.
                "--fsdp_cpu_ram_efficient_loading", "false"]
    else:
        cmd += ["--use_deepspeed", "--zero_stage", str(dist.zero_stage),
                "--offload_optimizer_device", "cpu" if dist.offload else "none",
                "--zero3_init_flag", "false", "--gradient_accumulation_steps", str(grad_accum),
                # ZeRO-3: let accelerate.get_state_dict gather the full weights for save_pretrained.
                "--zero3_save_16bit_model", "true" if dist.zero_stage == 3 else "false",
                # DeepSpeed clips inside its engine; without this accelerate fills in 1.0 whatever
                # train.max_grad_norm says (0: no clipping).
                "--gradient_clipping", str(max_grad_norm or 0.0)]
    return cmd + entry


def main(argv: list[str] | None = None) -> int:
    """Entry point of each launched process."""
    from align.context import StageContext
    from align.recipe import load_recipe
    from align.stages import STAGE_KINDS

    run_dir, stage = (argv or sys.argv[1:])[:2]
    os.environ[LAUNCHED_ENV] = stage
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"[rank {rank}] %(message)s")
    work = Path(run_dir) / ".work" / stage
    if rank == 0:
        handler = logging.FileHandler(work / "stage.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.getLogger().addHandler(handler)
    recipe = load_recipe(Path(run_dir) / "recipe.yaml")
    cfg = recipe.stage(stage)
    ctx = StageContext(name=stage, run_dir=Path(run_dir), work_dir=work, seed=recipe.stage_seed(cfg),
                       stages={s.name: s for s in recipe.stages})
    try:
        metrics = STAGE_KINDS[cfg.kind]().run(cfg, ctx) or {}
        if rank == 0:
            (work / METRICS_FILE).write_text(json.dumps(metrics))
    except BaseException:
        _shut_down_process_group(wait=False)  # a failed rank must not hang on a barrier
        raise
    _shut_down_process_group(wait=True)
    return 0


def _shut_down_process_group(wait: bool) -> None:
    """Leave together and tear the process group down explicitly.

    A rank that exits while the others still work (rank 0 evaluates and saves alone) and
    leaves its gloo group to interpreter shutdown can abort with `terminate called without
    an active exception`; a final barrier plus destroy_process_group avoids that.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
