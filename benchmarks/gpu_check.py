"""GPU check (issue 16 item 6): bf16 tokens/s, MFU and peak memory of the project's SFT, RM, DPO and PPO steps on a
~1B-parameter Llama built from a config (no hub), and one training step under FSDP and DeepSpeed ZeRO-3, on one GPU.

NOT YET RUN ON A GPU. Sized to fit 8 minutes on one H200 by estimate, never timed there (each section stops
after --section-timeout, 120 s by default); tests/test_gpu_check.py runs the CPU smoke mode
(--device cpu --tiny). On the device (`run`, carry=[".whl"], after `bash benchmarks/gpu_wheels.sh` here):
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit; PYTHONUNBUFFERED=1 timeout 480 python3 benchmarks/gpu_check.py | tee $OUT/gpu_check.log

The image has torch 2.11, transformers 5.17, accelerate, peft; not trl, datasets, deepspeed or pydantic. What this
imports (align.trainers.{sft,dpo,ppo}, rewards.{model,trainer}, align.memory, align.logprobs) pulls in neither
`datasets` nor `trl` (checked in sys.modules): neither is carried. pydantic (align.config) is carried with its
dependencies, and deepspeed (a wheel gpu_wheels.sh builds from the sdist) with hjson; without it, zero3 says why.

Sections (each in try/except: a failure prints its error and the rest still run; exit 1 if any failed):
  sft    SFTTrainer.compute_loss (chunked log-probs, align.logprobs), backward, clip, the trainer's AdamW
  rm     AttributeRewardModel on the backbone (LM head dropped), RewardModelTrainer.compute_loss (MSE, 5 attributes)
  dpo    DPOTrainer.compute_loss, reference log-probs precomputed by the trainer as a DPO stage does (not timed)
  ppo    what PPOTrainer.rollout does after sampling (policy log-probs + values, reference log-probs, token rewards,
         GAE), then one compute_loss update on that batch; the response is the last seq/2 tokens. Sampling is not
         timed (decoding is memory-bound; benchmarks/bench_generation.py measures it)
  fsdp   an SFT step under accelerate's FSDP plugin as align.launch sets it (FSDP 1, FULL_SHARD, transformer wrap,
         bf16 mixed precision, fp32 weights), 1-process NCCL group. On the CPU, where accelerate refuses FSDP,
         torch FSDP2 `fully_shard` (each layer, then the root; bf16 MixedPrecisionPolicy) on gloo instead
  zero3  that SFT step under accelerate's DeepSpeed plugin as align.launch sets it (ZeRO-3, zero3_init false, bf16
         with fp32 master weights); on the CPU too where deepspeed is installed
The other sections hold bf16 weights and AdamW states (precision "no"; align.memory's dtype bfloat16). Rows are
unpadded random tokens, --batch rows of --seq (DPO: batch/2 pairs).

tokens/s = rows x seq / the median of --steps timed steps after one warm-up. MFU = F x N x tokens/s / --peak-flops;
N = matmul parameters (2-D weights but the input embedding, a lookup); F = 6 per training step, 10 for PPO (two
scoring forwards, one update); attention's own FLOPs are not counted. --peak-flops 989e12: H100/H200 SXM dense bf16
by the datasheet (device/H200.md); a bf16 8192^3 matmul ran at 769-798 TFLOP/s there (KINDS.md). Peak: CUDA's
max_memory_allocated over the steps (AdamW states, made at the first, included) above what was allocated before the
section built its model; estimate: align.memory.estimate for the same shapes (PPO: + the frozen reference copy).
Model: hidden 2048, 22 layers, 32 heads, 8 kv heads, intermediate 5632, vocab 32000, untied: 1,123,117,056
parameters (TinyLlama-1.1B's shape with 8 kv heads; 16 layers would give 0.85B).
"""
from __future__ import annotations

import argparse
import gc
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's packages, also without an install

GIB = 1024**3
SECTIONS = ("sft", "rm", "dpo", "ppo", "fsdp", "zero3")
FULL = {"vocab": 32000, "hidden": 2048, "layers": 22, "heads": 32, "kv_heads": 8, "intermediate": 5632}
TINY = {"vocab": 512, "hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 128}


class Skip(Exception):
    """The section cannot run here: reported, not a failure."""


# ---- shared pieces ---------------------------------------------------------------------------
def mem_base(ctx) -> int:
    """Bytes allocated before a section builds anything (the previous section's objects freed)."""
    gc.collect()
    if ctx.dev.type != "cuda":
        return 0
    torch.cuda.empty_cache()
    return torch.cuda.memory_allocated()


def build_lm(ctx, dtype):
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    with torch.device(ctx.dev):
        model = LlamaForCausalLM(ctx.config)
    return model.to(dtype)


def matmul_params(model) -> int:
    emb = model.get_input_embeddings().weight
    return sum(p.numel() for p in model.parameters() if p.dim() == 2) - emb.numel()


def tokens(ctx, rows: int, n: int) -> torch.Tensor:
    return torch.randint(3, ctx.arch["vocab"], (rows, n), generator=ctx.gen).to(ctx.dev)


def lm_batch(ctx, prompt: int = 0) -> dict:
    """An SFT batch: --batch unpadded rows of --seq tokens; the first `prompt` positions take no loss."""
    from align.chat import IGNORE_INDEX

    ids = tokens(ctx, ctx.batch, ctx.seq)
    labels = ids.clone()
    labels[:, :prompt] = IGNORE_INDEX
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def train_config(ctx, precision: str = "no"):
    from align.config.base import TrainConfig

    return TrainConfig(lr=1e-5, batch_size=ctx.batch, max_length=ctx.seq, max_grad_norm=1.0, precision=precision,
                       save_every=0, log_every=10**6)


def train_step(trainer, model, opt, batch, score=None):
    """One optimizer step as BaseTrainer.train takes it (loss, backward, clip, AdamW); `score` fills the batch first."""
    params = [p for g in opt.param_groups for p in g["params"]]

    def step():
        if score is not None:
            score(batch)
        loss, _ = trainer.compute_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def measure(ctx, step, base: int) -> tuple[float, float | None]:
    """(median seconds of ctx.steps timed calls after one warm-up, peak GiB above `base`; None off CUDA)."""
    cuda = ctx.dev.type == "cuda"
    gc.collect()  # what a section's set-up dropped (the RM's LM head) is not counted
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(1 + ctx.steps):
        t0 = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() - base) / GIB if cuda else None
    return statistics.median(times[1:]), peak  # [0]: the warm-up (kernel choice, the optimizer's states)


def plan(ctx, kind: str, batch: int, dtype: str = "bfloat16", precision: str = "no", strategy: str = "ddp",
         rows: int | None = None) -> float:
    """align.memory's estimate (GiB, one process) for this section's shapes."""
    from align.memory import Arch, estimate

    a = ctx.arch
    arch = Arch(vocab=a["vocab"], hidden=a["hidden"], layers=a["layers"], heads=a["heads"], kv_heads=a["kv_heads"],
                intermediate=a["intermediate"], tied=False)
    return estimate(arch, dtype=dtype, precision=precision, batch=batch, seq=ctx.seq, lora_r=None, grad_ckpt=False,
                    world=1, strategy=strategy, zero_stage=3, fsdp_sharding="FULL_SHARD", offload=False, kind=kind,
                    logprob_rows=rows)["total"]


def result(ctx, toks: int, factor: int, n: int, timed: tuple, est: float) -> dict:
    secs, peak = timed
    tps = toks / secs
    return {"tokens_s": tps, "mfu": factor * n * tps / ctx.peak_flops, "step_s": secs, "peak": peak, "est": est}


def process_group(ctx) -> None:
    """A 1-process group (nccl on CUDA, gloo on the CPU) for FSDP2 and DeepSpeed, made once."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if ctx.dev.type == "cuda":
        torch.cuda.set_device(ctx.dev)
    dist.init_process_group("nccl" if ctx.dev.type == "cuda" else "gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=0, world_size=1)


# ---- sections --------------------------------------------------------------------------------
def sec_sft(ctx) -> dict:
    from align.trainers.sft import SFTTrainer

    base = mem_base(ctx)
    model = build_lm(ctx, torch.bfloat16)
    trainer = SFTTrainer(model, ctx.tok, train_config(ctx), ctx.out / "sft", accelerator=ctx.acc)
    batch = lm_batch(ctx, prompt=ctx.seq // 4)
    timed = measure(ctx, train_step(trainer, model, trainer._make_optimizer(), batch), base)
    return result(ctx, batch["input_ids"].numel(), 6, matmul_params(model), timed, plan(ctx, "sft", ctx.batch))


def sec_rm(ctx) -> dict:
    from rewards.model import AttributeRewardModel
    from rewards.trainer import RewardModelTrainer

    base = mem_base(ctx)
    model = AttributeRewardModel.from_causal_lm(build_lm(ctx, torch.bfloat16)).to(ctx.dev)  # its head is made on CPU
    trainer = RewardModelTrainer(model, ctx.tok, train_config(ctx), ctx.out / "rm", accelerator=ctx.acc)
    batch = lm_batch(ctx)
    batch["labels"] = torch.randint(0, 5, (ctx.batch, len(model.attributes)), generator=ctx.gen).float().to(ctx.dev)
    timed = measure(ctx, train_step(trainer, model, trainer._make_optimizer(), batch), base)
    return result(ctx, batch["input_ids"].numel(), 6, matmul_params(model), timed,
                  plan(ctx, "reward_model", ctx.batch))


def sec_dpo(ctx) -> dict:
    from align.trainers.dpo import DPOTrainer, PairExample, collate_pairs

    base = mem_base(ctx)
    model = build_lm(ctx, torch.bfloat16)
    trainer = DPOTrainer(model, ctx.tok, train_config(ctx), ctx.out / "dpo", beta=0.1, accelerator=ctx.acc)
    pairs, prompt = max(1, ctx.batch // 2), ctx.seq // 4
    rows = [tokens(ctx, 3, ctx.seq - prompt).tolist() for _ in range(pairs)]
    examples = [PairExample(r[0][:prompt], r[1], r[2]) for r in rows]  # equal lengths: no padding
    trainer.precompute_reference(examples)
    batch = {k: v.to(ctx.dev) for k, v in collate_pairs(examples, ctx.tok.pad_token_id).items()}
    timed = measure(ctx, train_step(trainer, model, trainer._make_optimizer(), batch), base)
    return result(ctx, batch["input_ids"].numel(), 6, matmul_params(model), timed, plan(ctx, "dpo", 2 * pairs))


def sec_ppo(ctx) -> dict:
    from align.trainers.ppo import PPOSettings, PPOTrainer

    base = mem_base(ctx)
    model = build_lm(ctx, torch.bfloat16)
    B, R = ctx.batch, ctx.seq // 2
    settings = PPOSettings(rollout_batch=B, minibatch=B, ppo_epochs=1, max_new_tokens=R)
    trainer = PPOTrainer(model, ctx.tok, lambda prompts, responses: [0.0] * len(responses), train_config(ctx),
                         ctx.out / "ppo", settings, accelerator=ctx.acc)  # it makes the frozen reference copy
    trainer.value_head.to(ctx.dev)
    ids, scores = tokens(ctx, B, ctx.seq), torch.randn(B, generator=ctx.gen).to(ctx.dev)
    rmask = torch.ones(B, R, device=ctx.dev)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "prompt_len": ctx.seq - R, "response_mask": rmask}

    @torch.no_grad()
    def score(batch):  # what PPOTrainer.rollout does once the responses are sampled
        model.eval()
        logps, _, values = trainer.forward(model, batch)
        ref_logps, _, _ = trainer.forward(trainer.ref_model, batch, with_values=False)
        model.train()
        rewards, _ = trainer.token_rewards(scores, logps, ref_logps, rmask)
        batch.update(old_logps=logps, ref_logps=ref_logps, old_values=values * rmask, rewards=rewards)
        batch["advantages"], batch["returns"] = trainer.advantages(batch)

    timed = measure(ctx, train_step(trainer, model, trainer._make_optimizer(), batch, score), base)
    ref_gib = sum(p.numel() * p.element_size() for p in trainer.ref_model.parameters()) / GIB
    return result(ctx, ids.numel(), 10, matmul_params(model), timed, plan(ctx, "ppo", B, rows=B * R) + ref_gib)


ONE_PROCESS = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "ACCELERATE_MIXED_PRECISION": "bf16"}
FSDP_ENV = {  # what `accelerate launch` sets for align.launch's FSDP flags (its defaults for the rest)
    "ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "1", "FSDP_SHARDING_STRATEGY": "FULL_SHARD",
    "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP", "FSDP_OFFLOAD_PARAMS": "false",
    "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT", "FSDP_CPU_RAM_EFFICIENT_LOADING": "false",
    "FSDP_USE_ORIG_PARAMS": "true", "FSDP_SYNC_MODULE_STATES": "true", **ONE_PROCESS,
}
ZERO3_ENV = {  # the same for its DeepSpeed flags
    "ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3", "ACCELERATE_DEEPSPEED_ZERO3_INIT": "false",
    "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL": "false", "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": "none",
    "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE": "none", "ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "1",
    "ACCELERATE_GRADIENT_CLIPPING": "1.0", **ONE_PROCESS,
}


def launched_step(ctx, env: dict, strategy: str) -> dict:
    """An SFT step as a stage launched by align.launch for `strategy` takes it: the launcher's environment, the
    trainer's own Accelerator (BaseTrainer checks it set up that engine), prepare, backward, clip, step."""
    from accelerate.state import AcceleratorState

    from align.trainers.sft import SFTTrainer

    process_group(ctx)
    os.environ.update(env)
    AcceleratorState._reset_state(reset_partial_state=True)  # so the next Accelerator reads this environment
    try:
        base = mem_base(ctx)
        model = build_lm(ctx, torch.float32)
        n = matmul_params(model)  # before sharding leaves each parameter a shard (ZeRO-3: empty)
        trainer = SFTTrainer(model, ctx.tok, train_config(ctx, "bf16"), ctx.out / strategy)
        acc = trainer.accelerator
        if acc.state.deepspeed_plugin is not None:  # no data loader is prepared: say the micro-batch, as PPO does
            acc.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = ctx.batch
        model, opt = acc.prepare(model, trainer._make_optimizer())
        batch = lm_batch(ctx)

        def step():
            loss, _ = trainer.compute_loss(model, batch)
            acc.backward(loss)  # DeepSpeed: the engine's backward and step, clipping included
            acc.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()

        timed = measure(ctx, step, base)
    finally:
        for key in env:
            os.environ.pop(key, None)
    return result(ctx, batch["input_ids"].numel(), 6, n, timed,
                  plan(ctx, "sft", ctx.batch, dtype="float32", precision="bf16", strategy=strategy))


def sec_fsdp(ctx) -> dict:
    if ctx.dev.type == "cuda":  # the project's path: accelerate's FSDP plugin
        return launched_step(ctx, FSDP_ENV, "fsdp")
    # accelerate turns FSDP on for GPU-type devices only: on the CPU, torch's FSDP2 on a gloo group instead
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from align.trainers.sft import SFTTrainer

    process_group(ctx)
    base = mem_base(ctx)
    model = build_lm(ctx, torch.float32)
    n = matmul_params(model)
    mesh = init_device_mesh(ctx.dev.type, (1,))
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh, mp_policy=mp)
    fully_shard(model, mesh=mesh, mp_policy=mp)
    trainer = SFTTrainer(model, ctx.tok, train_config(ctx), ctx.out / "fsdp", accelerator=ctx.acc)
    batch = lm_batch(ctx)
    timed = measure(ctx, train_step(trainer, model, trainer._make_optimizer(), batch), base)
    return result(ctx, batch["input_ids"].numel(), 6, n, timed,
                  plan(ctx, "sft", ctx.batch, dtype="float32", precision="bf16", strategy="fsdp"))


def sec_zero3(ctx) -> dict:
    try:
        import deepspeed  # noqa: F401
    except Exception as exc:  # noqa: BLE001 -- ImportError, or an install that breaks on import
        raise Skip(f"deepspeed is not importable ({type(exc).__name__}: {exc}); carry it (benchmarks/gpu_wheels.sh)")
    return launched_step(ctx, ZERO3_ENV, "deepspeed")


# ---- the run ---------------------------------------------------------------------------------
def fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (the smoke mode)")
    ap.add_argument("--tiny", action="store_true", help="a tiny model and few tokens (the CPU smoke test)")
    ap.add_argument("--seq", type=int, help="tokens per row (default 1024; --tiny 32)")
    ap.add_argument("--batch", type=int, help="rows per step (default 8; --tiny 2)")
    ap.add_argument("--steps", type=int, help="timed steps after one warm-up (default 3; --tiny 1)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {','.join(SECTIONS)}")
    ap.add_argument("--peak-flops", type=float, default=989e12, help="peak dense bf16 FLOP/s for MFU")
    ap.add_argument("--section-timeout", type=int, default=120, help="seconds before a section is stopped (0: none)")
    args = ap.parse_args()
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown sections {unknown}; choose from {SECTIONS}")
    dev = torch.device(args.device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            print("no CUDA device: run with --device cpu --tiny for the smoke mode")
            return 2
        dev = torch.device("cuda", torch.cuda.current_device() if dev.index is None else dev.index)  # set_device wants one

    import transformers
    from accelerate import Accelerator
    from transformers import LlamaConfig, LlamaForCausalLM

    arch = TINY if args.tiny else FULL
    seq, batch = args.seq or (32 if args.tiny else 1024), args.batch or (2 if args.tiny else 8)
    config = LlamaConfig(vocab_size=arch["vocab"], hidden_size=arch["hidden"], intermediate_size=arch["intermediate"],
                         num_hidden_layers=arch["layers"], num_attention_heads=arch["heads"],
                         num_key_value_heads=arch["kv_heads"], max_position_embeddings=max(seq, 2048),
                         tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    with torch.device("meta"):
        n_total = sum(p.numel() for p in LlamaForCausalLM(config).parameters())
    ctx = SimpleNamespace(dev=dev, arch=arch, config=config, seq=seq, batch=batch, peak_flops=args.peak_flops,
                          steps=args.steps or (1 if args.tiny else 3), gen=torch.Generator().manual_seed(0),
                          tok=SimpleNamespace(pad_token_id=0, eos_token_id=2),  # all the trainers read of one
                          acc=Accelerator(cpu=dev.type == "cpu"), out=Path(tempfile.mkdtemp(prefix="gpu_check_")))
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"device {name}; torch {torch.__version__}, transformers {transformers.__version__}; "
          f"peak {args.peak_flops:.3g} FLOP/s")
    print(f"model: Llama {arch}, {n_total:,} parameters; bf16; {batch} rows x {seq} tokens; "
          f"1 warm-up + {ctx.steps} timed steps")

    def overdue(_signum, _frame):  # a hung section (a JIT build, a collective) must not cost the rest
        raise TimeoutError(f"over --section-timeout {args.section_timeout} s")

    signal.signal(signal.SIGALRM, overdue)
    rows = []
    for sec in [s for s in SECTIONS if s in wanted]:  # plain sections first: the sharded ones set up a group
        t0 = time.perf_counter()
        signal.alarm(args.section_timeout)
        try:
            r = globals()[f"sec_{sec}"](ctx)
            signal.alarm(0)
            print(f"[{sec}] tokens/s {r['tokens_s']:.1f}  MFU {r['mfu']:.2%}  step {r['step_s']:.3f} s  "
                  f"peak {fmt(r['peak'], '.3g')} GiB  estimate {r['est']:.3g} GiB  "
                  f"est/peak {fmt(r['peak'] and r['est'] / r['peak'], '.2f')}  ({time.perf_counter() - t0:.0f} s)")
            rows.append((sec, "ok", r))
        except Skip as exc:
            print(f"[{sec}] SKIPPED: {exc}")
            rows.append((sec, "skipped", None))
        except Exception as exc:  # noqa: BLE001 -- one section's failure must not stop the others
            print(f"[{sec}] FAILED: {type(exc).__name__}: {exc}")
            print("".join(traceback.format_exc().splitlines(keepends=True)[-12:]), end="")
            rows.append((sec, "FAILED", None))
        signal.alarm(0)
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()

    print(f"\n{'section':8} {'status':8} {'tokens/s':>10} {'MFU':>7} {'peak GiB':>9} {'est GiB':>8} {'est/peak':>8}")
    for sec, status, r in rows:
        r = r or {}
        peak, est = r.get("peak"), r.get("est")
        print(f"{sec:8} {status:8} {fmt(r.get('tokens_s'), '.1f'):>10} {fmt(r.get('mfu'), '.2%'):>7} "
              f"{fmt(peak, '.3g'):>9} {fmt(est, '.3g'):>8} {fmt(peak and est / peak, '.2f'):>8}")
    return 1 if any(status == "FAILED" for _, status, _ in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
