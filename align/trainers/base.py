"""The training loop every trainer shares, on `accelerate`.

Why accelerate and not `transformers.Trainer`: SteerLM 2.0 and PPO alternate sampling and
optimisation inside one stage, and every algorithm here needs its loss to be one public,
overridable method. A ~300-line loop on accelerate gives that, plus DDP/FSDP/DeepSpeed,
mixed precision and gradient accumulation from the library, without Trainer's hooks.

Override points (see README "Subclass a trainer"):
- `compute_loss(model, batch) -> (loss, metrics)`: the algorithm. Call pure loss functions.
- `collate(examples) -> batch`: how dataset items become tensors.
- `on_evaluate(metrics)`: react to validation (e.g. keep the best model).

Exact resume: data order is a function of (seed, epoch), the RNG is reseeded from
(seed, step) before every micro-batch, and checkpoints hold weights, optimizer and
scheduler; so a run killed and resumed ends with the same weights as one never stopped.
"""
from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader, Sampler

from align.config.base import TrainConfig
from align.errors import DataError, TrainingError
from align.trainers.checkpoints import (
    list_checkpoints,
    load_latest_checkpoint,
    load_latest_sharded,
    save_checkpoint,
    save_sharded_checkpoint,
)

log = logging.getLogger("align")


class EpochShuffleSampler(Sampler[int]):
    """A permutation that depends only on (seed, epoch), so a resumed run sees the same order."""

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class LengthGroupedSampler(EpochShuffleSampler):
    """A (seed, epoch) permutation whose consecutive `batch_size` chunks have similar lengths.

    Why: batches are padded to their longest sequence; grouping cuts padding (and compute)
    while batch order stays random. Within each window of `group` batches the examples are
    sorted by length, then the batches are shuffled. Deterministic in (seed, epoch), so exact
    resume still holds.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group: int = 32):
        super().__init__(len(lengths), seed, shuffle=True)
        self.lengths, self.batch_size, self.group = lengths, batch_size, group

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        chunk = self.batch_size * self.group
        batches = []
        for start in range(0, self.n, chunk):
            part = sorted(perm[start:start + chunk], key=lambda i: -self.lengths[i])
            batches += [part[i:i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        order = torch.randperm(len(batches), generator=g).tolist()
        return iter([i for b in order for i in batches[b]])


def example_length(example) -> int:
    """Tokens an example puts in a batch row: its input_ids, or a pair's prompt plus its longer completion."""
    if hasattr(example, "input_ids"):
        return len(example.input_ids)
    if hasattr(example, "chosen_ids"):
        return len(getattr(example, "prompt_ids", ())) + max(len(example.chosen_ids), len(example.rejected_ids))
    if hasattr(example, "examples"):  # a SteerLM 2.0 sample group
        return max(example_length(e) for e in example.examples)
    return 0


class BaseTrainer:
    """Runs optimisation for any algorithm that defines `compute_loss`."""

    #: prefix of the metrics this trainer reports (train/..., eval/...)
    metric_prefix = "train"
    #: a plugin trainer's validated `trainer_options` (an instance of its `Options`), set by the stage
    options = None

    def __init__(self, model, tokenizer, config: TrainConfig, output_dir: str | Path, *, seed: int = 0,
                 accelerator=None, cpu: bool = False):
        from accelerate import Accelerator

        from align.distributed import accelerator_kwargs, check_engine

        self.config = config
        self.tokenizer = tokenizer
        self.output_dir = Path(output_dir)
        self.seed = seed
        self.accelerator = accelerator or Accelerator(
            mixed_precision=config.precision,
            gradient_accumulation_steps=config.grad_accum,
            log_with=config.report_to or None,
            project_dir=str(self.output_dir),
            # Without CUDA, say so (torchrun processes then use gloo); DeepSpeed on a CPU differs.
            **accelerator_kwargs(cpu),
        )
        check_engine(self.accelerator.distributed_type)
        if self.is_main:
            log.info("engine: %s", self.engine)
        if config.gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
            model.gradient_checkpointing_enable()
        self.model = model
        self.global_step = 0
        self.history: list[dict[str, float]] = []

    # ---- override points ---------------------------------------------------------------
    def compute_loss(self, model, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the scalar loss to minimise and metrics to log for one micro-batch."""
        raise NotImplementedError

    def collate(self, examples: list[Any]) -> dict[str, Any]:
        """Turn a list of dataset items into a batch (default: items already are batches)."""
        raise NotImplementedError

    def on_evaluate(self, metrics: dict[str, float]) -> None:
        """Called after each validation with its metrics (default: nothing)."""

    # ---- helpers -----------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def checkpoint_dir(self) -> Path:
        return self.output_dir / "checkpoints"

    def unwrapped_model(self):
        return self.accelerator.unwrap_model(self.model)

    @property
    def group_by_length(self) -> bool:
        return self.config.group_by_length

    def _make_loader(self, dataset: Sequence, shuffle: bool) -> DataLoader:
        if shuffle and self.group_by_length:
            sampler = LengthGroupedSampler([example_length(e) for e in dataset], self.config.batch_size, self.seed)
        else:
            sampler = EpochShuffleSampler(len(dataset), self.seed, shuffle=shuffle)
        return DataLoader(dataset, batch_size=self.config.batch_size, sampler=sampler, collate_fn=self.collate)

    def _make_optimizer(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise TrainingError("the model has no trainable parameters")
        return self._adamw(params)

    def _adamw(self, params: list) -> torch.optim.Optimizer:
        """AdamW over `params`; the fused kernel where it applies (one kernel over all tensors
        instead of a loop over them). DeepSpeed and FSDP manage their own optimizer state, so
        they keep the default implementation."""
        fused = (not self.sharded and all(p.dtype.is_floating_point and p.device.type in ("cpu", "cuda")
                                          for p in params))
        return torch.optim.AdamW(params, lr=self.config.lr, betas=tuple(self.config.adam_betas),
                                 weight_decay=self.config.weight_decay, fused=fused or None)

    def _make_scheduler(self, optimizer, total_steps: int):
        """The LR schedule over `total_steps` optimizer steps, for `accelerator.prepare`.

        accelerate steps a prepared scheduler num_processes times per optimizer step (it assumes a
        schedule counted in single-process steps), so the schedule is counted that way too.
        """
        from transformers import get_scheduler

        name = {"constant": "constant_with_warmup"}.get(self.config.scheduler, self.config.scheduler)
        world = self.accelerator.num_processes
        return get_scheduler(name, optimizer, num_warmup_steps=self.config.warmup_steps * world,
                             num_training_steps=total_steps * world)

    def _reseed(self, micro_step: int) -> None:
        torch.manual_seed(self.seed * 1_000_003 + micro_step)

    # ---- evaluation --------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, dataset: Sequence, prefix: str = "eval") -> dict[str, float]:
        """Mean of `compute_loss` metrics over `dataset` (weighted by batch count)."""
        loader = self.accelerator.prepare(self._make_loader(dataset, shuffle=False))
        was_training = self.model.training
        self.model.eval()
        sums: dict[str, float] = defaultdict(float)
        count = 0
        for batch in loader:
            loss, metrics = self.compute_loss(self.model, batch)
            values = {"loss": loss.detach().float(), **{k: torch.as_tensor(v, dtype=torch.float32, device=loss.device)
                                                       for k, v in metrics.items()}}
            for k, v in values.items():
                sums[k] += self.accelerator.reduce(v.reshape(()), "mean").item()
            count += 1
        self.model.train(was_training)
        out = {f"{prefix}/{k}": v / max(count, 1) for k, v in sums.items()}
        self.on_evaluate(out)
        return out

    # ---- training ----------------------------------------------------------------------
    def train(self, train_dataset: Sequence, eval_dataset: Sequence | None = None) -> dict[str, float]:
        """Optimise over `train_dataset`; return final metrics (train/loss_first, train/loss_final, ...)."""
        cfg, acc = self.config, self.accelerator
        if len(train_dataset) == 0:
            raise DataError("the training set is empty: no usable example is left after filtering (over_length: "
                            "drop, rows without labels, ...); check the stage's data file and filters")
        loader = self._make_loader(train_dataset, shuffle=True)
        # Each process sees every num_processes-th batch (accelerate shards the loader at `prepare`,
        # padding to equal counts), so an epoch is that many optimizer steps per process.
        world = acc.num_processes
        steps_per_epoch = math.ceil(math.ceil(len(loader) / world) / cfg.grad_accum)
        total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
        optimizer = self._make_optimizer()
        scheduler = self._make_scheduler(optimizer, total_steps)
        state = None if self.sharded else load_latest_checkpoint(self.checkpoint_dir, self.model, optimizer, scheduler)
        self.model, optimizer, loader, scheduler = acc.prepare(self.model, optimizer, loader, scheduler)
        if self.sharded:
            state = load_latest_sharded(acc, self.checkpoint_dir)
        if cfg.report_to:
            hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v)
                       for k, v in cfg.model_dump(mode="json").items()}  # trackers take scalars only
            acc.init_trackers(self.output_dir.name, config=hparams)
        self.global_step = state["global_step"] if state else 0
        self.history = state.get("history", []) if state else []
        micro_in_epoch = 0
        window: dict[str, list[float]] = defaultdict(list)
        t0, samples = time.time(), 0
        padded, positions = 0, 0  # of this run's batches (attention_mask); padded stays on the device (no sync)
        last_eval: tuple[int, dict] = (-1, {})  # (step, metrics) of the latest periodic evaluation
        progress = _Progress(total_steps, self.global_step, enabled=self.is_main, label=self.metric_prefix)
        self.model.train()
        done = self.global_step >= total_steps
        epoch = self.global_step // steps_per_epoch
        while not done:
            loader.set_epoch(epoch) if hasattr(loader, "set_epoch") else loader.sampler.set_epoch(epoch)
            skip = (self.global_step - epoch * steps_per_epoch) * cfg.grad_accum
            batches = acc.skip_first_batches(loader, skip) if skip else loader
            micro_in_epoch = skip
            for batch in batches:
                self._reseed(epoch * len(loader) + micro_in_epoch)
                micro_in_epoch += 1
                with acc.accumulate(self.model):
                    loss, metrics = self.compute_loss(self.model, batch)
                    self._check_finite(loss)
                    acc.backward(loss)
                    if acc.sync_gradients and cfg.max_grad_norm:
                        acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                samples += _batch_size(batch)
                if isinstance(batch, dict) and isinstance(batch.get("attention_mask"), torch.Tensor):
                    m = batch["attention_mask"]
                    padded = padded + (m.numel() - m.sum())
                    positions += m.numel()
                window["loss"].append(loss.detach().float().item())
                for k, v in metrics.items():
                    window[k].append(float(v))
                if not acc.sync_gradients:
                    continue
                self.global_step += 1
                if self.global_step % cfg.log_every == 0 or self.global_step == total_steps:
                    self._log(window, scheduler, progress)
                    window = defaultdict(list)
                progress.update(self.global_step)
                if eval_dataset is not None and cfg.eval_every and self.global_step % cfg.eval_every == 0:
                    last_eval = (self.global_step, self.evaluate(eval_dataset))
                    self._log_eval(last_eval[1])
                if cfg.save_every and self.global_step % cfg.save_every == 0 and self.global_step < total_steps:
                    self._save(optimizer, scheduler)
                if self.global_step >= total_steps:
                    done = True
                    break
            epoch += 1
        progress.close()
        if window:
            self._log(window, scheduler, None)
        elapsed = time.time() - t0
        results = self._summary(elapsed, samples)
        if positions:
            results[f"{self.metric_prefix}/pad_fraction"] = float(padded) / positions
        if eval_dataset is not None and last_eval[0] == self.global_step:
            results.update(last_eval[1])  # the model has not changed since the last step's evaluation
        elif eval_dataset is not None:
            results.update(self.evaluate(eval_dataset))
            self._log_eval({k: v for k, v in results.items() if k.startswith("eval/")})
        if cfg.report_to:
            acc.end_training()
        return results

    def _check_finite(self, loss: torch.Tensor) -> None:
        flag = torch.isfinite(loss.detach()).float().reshape(1)
        if self.accelerator.num_processes > 1:
            flag = self.accelerator.gather(flag)
        if not bool(flag.min() > 0):
            last = list_checkpoints(self.checkpoint_dir)
            kept = f"; last good checkpoint kept: {last[0]}" if last else "; no checkpoint had been written yet"
            raise TrainingError(f"non-finite loss ({loss.item()}) at optimizer step {self.global_step + 1}{kept}")

    def _log(self, window: dict[str, list[float]], scheduler, progress) -> None:
        row = {f"{self.metric_prefix}/{k}": sum(v) / len(v) for k, v in window.items() if v}
        row[f"{self.metric_prefix}/lr"] = scheduler.get_last_lr()[0]
        row["step"] = self.global_step
        self.history.append(row)
        if self.config.report_to:
            self.accelerator.log({k: v for k, v in row.items() if k != "step"}, step=self.global_step)
        if self.is_main:
            shown = "  ".join(f"{k.split('/')[-1]}={v:.4g}" for k, v in row.items() if k != "step")
            log.info("step %d  %s", self.global_step, shown)
        if progress is not None:
            progress.set_postfix(row.get(f"{self.metric_prefix}/loss"))

    def _log_eval(self, metrics: dict[str, float]) -> None:
        if self.config.report_to:
            self.accelerator.log(metrics, step=self.global_step)
        if self.is_main:
            log.info("step %d  eval  %s", self.global_step, "  ".join(f"{k}={v:.4g}" for k, v in metrics.items()))

    @property
    def engine(self) -> str:
        """What accelerate set up, e.g. 'DEEPSPEED (ZeRO-3) on 2 process(es), cpu'."""
        acc = self.accelerator
        name = str(acc.distributed_type).split(".")[-1]
        if acc.state.deepspeed_plugin is not None:
            name += f" (ZeRO-{acc.state.deepspeed_plugin.zero_stage})"
        return f"{name} on {acc.num_processes} process(es), {acc.device.type}"

    @property
    def sharded(self) -> bool:
        """FSDP or DeepSpeed: weights and optimizer states live in shards across processes."""
        from accelerate.utils import DistributedType

        return self.accelerator.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP)

    def save_pretrained(self, out_dir: str | Path, *, merge_lora: bool = True) -> None:
        """Write the trained model as a Hugging Face directory (gathering shards under FSDP/ZeRO-3)."""
        from align.models import save_model

        state_dict = self.accelerator.get_state_dict(self.model) if self.sharded else None
        if self.is_main:
            save_model(self.unwrapped_model(), self.tokenizer, out_dir, merge_lora=merge_lora, state_dict=state_dict)
        self.accelerator.wait_for_everyone()

    def _save(self, optimizer, scheduler, *, modules=None, **extra_state) -> None:
        """Checkpoint the step: the model (or, unsharded, `modules`: everything a trainer trains) and
        optimizer, with the global step, history and any `extra_state` a resumed run needs."""
        state = {"global_step": self.global_step, "history": self.history, **extra_state}
        if self.sharded:
            save_sharded_checkpoint(self.accelerator, self.checkpoint_dir, self.global_step, state,
                                    keep=self.config.keep_checkpoints)
            return
        self.accelerator.wait_for_everyone()
        if self.is_main:
            save_checkpoint(self.checkpoint_dir, self.global_step,
                            self.unwrapped_model() if modules is None else modules, optimizer, scheduler, state,
                            keep=self.config.keep_checkpoints)
        self.accelerator.wait_for_everyone()

    def _summary(self, elapsed: float, samples: int) -> dict[str, float]:
        key = f"{self.metric_prefix}/loss"
        losses = [row[key] for row in self.history if key in row]
        out = {f"{self.metric_prefix}/steps": float(self.global_step)}
        if losses:
            out[f"{self.metric_prefix}/loss_first"] = losses[0]
            out[f"{self.metric_prefix}/loss_final"] = losses[-1]
        if elapsed > 0 and samples:
            out[f"{self.metric_prefix}/samples_per_s"] = samples * self.accelerator.num_processes / elapsed
        for k, v in (self.history[-1] if self.history else {}).items():
            if k != "step" and not k.endswith("/loss") and not k.endswith("/lr"):
                out.setdefault(f"{k}_final", v)
        return out


def _batch_size(batch) -> int:
    if isinstance(batch, dict):
        for v in batch.values():
            if hasattr(v, "shape") and len(v.shape) > 0:
                return int(v.shape[0])
            if isinstance(v, list):
                return len(v)
    return 1


class _Progress:
    """A rich progress bar on the main process (quiet elsewhere and when not a terminal)."""

    def __init__(self, total: int, start: int, *, enabled: bool, label: str):
        self.bar = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=True)
        self.task = self.bar.add_task(label, total=total, completed=start, info="")
        self.bar.start()

    def update(self, step: int) -> None:
        if self.bar:
            self.bar.update(self.task, completed=step)

    def set_postfix(self, loss: float | None) -> None:
        if self.bar and loss is not None:
            self.bar.update(self.task, info=f"loss {loss:.4f}")

    def close(self) -> None:
        if self.bar:
            self.bar.stop()
