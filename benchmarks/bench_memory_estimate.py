"""Peak memory of a DPO step on the CPU: measured vs align/memory.py's estimate, and the old log-prob path vs the new.

run: .venv/bin/python benchmarks/bench_memory_estimate.py [--all] [--vocab 65536] [--long 2048] [--skip-old] [--skip-trl]
(about 4 minutes on 2 shared CPU cores, TRL's step at 2,048 tokens 1.3 of them; --all adds the 1,024-token case
to 1. and fp32 weights to 2.)

1. Estimate vs measured. A DPO step (DPOTrainer.compute_loss with precomputed reference
   log-probs, backward, AdamW) on a small Llama built from a config (fp32, vocabulary 32,000,
   hidden 256, 4 layers, grouped-query attention, 2 pairs = 4 sequences of 512 tokens), two
   steps (the second starts with AdamW's states allocated; --all: also 1,024 tokens), against `align.memory.estimate`
   for the same architecture, dtype, micro-batch and length. Printed: measured, estimate,
   estimate / measured (the issue asks for the estimate within 25 %).
2. Old path vs new path. The same step at --long tokens (1 pair = 2 sequences) on a small model
   with a large vocabulary (--vocab), once with today's `logprobs_from_model` and once with the
   formula it replaced (the model's full logits, `logits[:, :-1].float()`, logsumexp), with bf16
   weights (--all: also fp32). Printed: both peaks, old / new, and each step's time.
3. Ours vs TRL. The step of 2. (bf16, --long tokens, --vocab) with our DPOTrainer and with TRL 1.16's
   DPOTrainer (`compute_loss` on the same [chosen; rejected] batch, then backward and AdamW), each with
   its default for the reference: ours precomputes the reference log-probs once before training (not
   part of the step), TRL keeps a frozen copy of the model and runs it every step; TRL's imports and
   its padding tokenizer are made before the baseline is taken. Printed: both peaks, ours / TRL.

How the peak is measured: each case runs in a fresh Python process; the baseline is the
process's resident set (/proc/self/statm) after the imports and the batch are made, just
before the model is built; the peak is the kernel's high-water mark of the resident set
(getrusage ru_maxrss) after the steps, minus that baseline: everything the step holds at its
worst moment (weights, gradients, AdamW states, activations, the log-prob path, allocator
slack), as the OS sees it. torch's CPU allocator has no peak statistics (torch.cuda's are
CUDA-only) and tracemalloc does not see tensor memory. glibc keeps freed blocks below its mmap
threshold in the heap, and raises that threshold as large blocks are freed, so a freed
temporary could be counted again or hide the next one; the child pins MALLOC_MMAP_THRESHOLD_
at 64 KiB so every tensor buffer is its own mapping and goes back to the OS when freed. A
run whose high-water mark was set before the model was built would be invalid; the child
reports it ("valid").
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024**2


# ---- the child: one measured case ----------------------------------------------------------
def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _maxrss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def old_sequence_logps(self, model, batch):
    """DPOTrainer.sequence_logps as it was: full logits, an fp32 copy, logsumexp over all of it."""
    import torch

    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    logits = out.logits[:, :-1].float()
    picked = torch.gather(logits, 2, batch["input_ids"][:, 1:].unsqueeze(-1)).squeeze(-1)
    logps = picked - torch.logsumexp(logits, dim=-1)
    return (logps * batch["completion_mask"][:, 1:]).sum(-1)


def trl_setup(out_dir: str):
    """What TRL's trainer needs that is not the step (imports, a tokenizer to pad with), made before
    the baseline is taken so that only the step and its models count."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from align.world.generator import generate_world

    paths = generate_world(Path(out_dir) / "w", prompts=20, test_prompts=2)
    return Dataset, DPOConfig, DPOTrainer, AutoTokenizer.from_pretrained(paths["tokenizer"])


def trl_trainer(setup, model, batch, out_dir):
    """TRL 1.16's DPOTrainer on `model` with its defaults for the reference (a frozen copy, a
    forward every step) and its own loss (`compute_loss` on TRL's batch: [chosen; rejected] rows
    with a completion mask, as ours). Built on a one-row dataset only to construct it (the world's
    tokenizer pads; the measured batch is `batch`). Returns (trainer, its model, TRL's batch)."""
    import copy

    Dataset, DPOConfig, TRLDPOTrainer, tok = setup
    rows = [{"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "yes"}],
             "rejected": [{"role": "assistant", "content": "no"}]}]
    args = DPOConfig(output_dir=str(Path(out_dir) / "trl"), per_device_train_batch_size=1, beta=0.1, report_to=[],
                     use_cpu=True, bf16=False, gradient_checkpointing=False, save_strategy="no", disable_tqdm=True,
                     max_length=None)
    trainer = TRLDPOTrainer(model=model, ref_model=copy.deepcopy(model), args=args,
                            train_dataset=Dataset.from_list(rows), processing_class=tok)
    trainer.model.train()
    keys = ("input_ids", "attention_mask", "completion_mask")
    return trainer, trainer.model, {k: batch[k] for k in keys}


def child(case: dict) -> dict:
    import tempfile

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from align.config.base import TrainConfig
    from align.trainers.dpo import DPOTrainer, PairExample, collate_pairs

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    V, T, pairs, prompt = case["vocab"], case["seq"], case["pairs"], case["seq"] // 4

    def ids(n):
        return torch.randint(3, V, (n,), generator=g).tolist()

    examples = [PairExample(ids(prompt), ids(T - prompt), ids(T - prompt - 8 * i), 1.0, -float(T), -float(T))
                for i in range(pairs)]
    batch = collate_pairs(examples, pad_id=0)
    dtype = getattr(torch, case["dtype"])
    cfg = LlamaConfig(vocab_size=V, hidden_size=case["hidden"], intermediate_size=case["intermediate"],
                      num_hidden_layers=case["layers"], num_attention_heads=case["heads"],
                      num_key_value_heads=case["kv_heads"], max_position_embeddings=max(T, 2048),
                      tie_word_embeddings=False, pad_token_id=0)
    out_dir = tempfile.mkdtemp()
    setup = trl_setup(out_dir) if case["path"] == "trl" else None
    base, high_before = _rss(), _maxrss()
    with torch.device("cpu"):
        model = LlamaForCausalLM(cfg).to(dtype)
    if case["path"] == "trl":
        trainer, model, batch = trl_trainer(setup, model, batch, out_dir)
    else:
        trainer = DPOTrainer(model, None, TrainConfig(lr=1e-5, batch_size=pairs, max_grad_norm=None), out_dir,
                             beta=0.1)
    if case["path"] == "old":
        trainer.sequence_logps = old_sequence_logps.__get__(trainer)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    times = []
    for _ in range(case["steps"]):
        t0 = time.perf_counter()
        loss = trainer.compute_loss(model, batch)
        loss = loss[0] if isinstance(loss, tuple) else loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    high = _maxrss()
    return {"peak": high - base, "valid": high > high_before, "step_s": min(times), "loss": float(loss)}


def run_case(case: dict) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(case)], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- the parent --------------------------------------------------------------------------
def estimate_gib(case: dict) -> dict:
    from align.memory import Arch, estimate

    arch = Arch(vocab=case["vocab"], hidden=case["hidden"], layers=case["layers"], heads=case["heads"],
                kv_heads=case["kv_heads"], intermediate=case["intermediate"], tied=False)
    return estimate(arch, dtype=case["dtype"], precision="no", batch=2 * case["pairs"], seq=case["seq"],
                    lora_r=None, grad_ckpt=False, world=1, strategy="ddp", zero_stage=3,
                    fsdp_sharding="FULL_SHARD", offload=False, kind="dpo")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--vocab", type=int, default=65536, help="vocabulary of the old-vs-new comparison")
    ap.add_argument("--long", type=int, default=2048, help="tokens per sequence of the old-vs-new comparison")
    ap.add_argument("--skip-old", action="store_true")
    ap.add_argument("--skip-trl", action="store_true", help="leave out 3. (ours vs TRL's DPOTrainer)")
    ap.add_argument("--all", action="store_true", help="both lengths in 1., fp32 and bf16 in 2.")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    small = dict(vocab=32000, hidden=256, intermediate=768, layers=4, heads=4, kv_heads=2, dtype="float32",
                 path="new", steps=2)
    t0 = time.perf_counter()
    print("1. DPO step, measured peak vs align/memory.py's estimate (fp32, AdamW, vocab 32000, hidden 256, 4 layers)")
    print(f"  {'pairs x tokens':>15} {'measured MiB':>13} {'estimate MiB':>13} {'est/measured':>13}  "
          f"(estimate: weights+grads+Adam / activations / of which log-prob path)")
    for pairs, seq in ((2, 512), (2, 1024)) if args.all else ((2, 512),):
        case = dict(small, pairs=pairs, seq=seq)
        got, est = run_case(case), estimate_gib(case)
        total = est["total"] * 1024
        state = (est["weights"] + est["grads"] + est["optimizer"]) * 1024
        print(f"  {f'{pairs} x {seq}':>15} {got['peak'] / MIB:13.0f} {total:13.0f} {total / (got['peak'] / MIB):13.2f}"
              f"  ({state:.0f} / {est['activations'] * 1024:.0f} / {est['logprobs'] * 1024:.0f})"
              + ("" if got["valid"] else "  [invalid: high-water mark set before the model]"))

    if not args.skip_old:
        print(f"\n2. DPO step at {args.long} tokens (1 pair = 2 sequences), vocab {args.vocab}, hidden 256, 2 layers: "
              "old log-prob path (full logits, fp32 copy) vs new (align.logprobs)")
        print(f"  {'weights':>8} {'old MiB':>9} {'new MiB':>9} {'old/new':>8} {'old s':>7} {'new s':>7}")
        big = dict(vocab=args.vocab, hidden=256, intermediate=768, layers=2, heads=4, kv_heads=2, pairs=1,
                   seq=args.long, steps=1)
        for dtype in ("bfloat16", "float32") if args.all else ("bfloat16",):
            old = run_case(dict(big, dtype=dtype, path="old"))
            new = run_case(dict(big, dtype=dtype, path="new"))
            print(f"  {dtype:>8} {old['peak'] / MIB:9.0f} {new['peak'] / MIB:9.0f} {old['peak'] / new['peak']:8.2f}"
                  f" {old['step_s']:7.2f} {new['step_s']:7.2f}"
                  + ("" if old["valid"] and new["valid"] else "  [a run's high-water mark predates its model]"))
            if abs(old["loss"] - new["loss"]) > 1e-3 * max(1.0, abs(old["loss"])):
                print(f"    note: losses differ: old {old['loss']:.6f}, new {new['loss']:.6f}")
    if not args.skip_trl:
        print(f"\n3. DPO step at {args.long} tokens (1 pair), vocab {args.vocab}, hidden 256, 2 layers, bf16 weights: "
              "ours vs TRL 1.16's DPOTrainer, each with its defaults for the reference (ours: log-probs precomputed "
              "once, not in the step; TRL: a frozen copy of the model, a forward every step)")
        print(f"  {'ours MiB':>9} {'TRL MiB':>9} {'ours/TRL':>9} {'ours s':>7} {'TRL s':>7}")
        big = dict(vocab=args.vocab, hidden=256, intermediate=768, layers=2, heads=4, kv_heads=2, pairs=1,
                   seq=args.long, steps=1, dtype="bfloat16")
        ours, trl = run_case(dict(big, path="new")), run_case(dict(big, path="trl"))
        print(f"  {ours['peak'] / MIB:9.0f} {trl['peak'] / MIB:9.0f} {ours['peak'] / trl['peak']:9.2f}"
              f" {ours['step_s']:7.2f} {trl['step_s']:7.2f}"
              + ("" if ours["valid"] and trl["valid"] else "  [a run's high-water mark predates its model]"))
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
