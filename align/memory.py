"""Per-process memory estimate of a training stage, printed by `align run --dry-run`.

Counts what the trained model needs on each device: weights, gradients, AdamW states
(two per trainable parameter in the parameters' dtype; with DeepSpeed mixed precision
12 bytes per parameter: fp32 master weights and both moments), activations at the
configured micro-batch and max_length, and the log-prob path.

Activations: a Llama block (SwiGLU MLP, grouped-query attention with a fused kernel that keeps
only its output and log-sum-exp) keeps about 9·h + 2·kv + 4·i values per token and layer (h hidden,
kv the key/value width, i the MLP width), in the activation dtype: the count measured on the CPU
(fp32, sdpa) to within 5 % for three shapes (Korthikanti et al. 2022's 34·b·s·h bytes is the
same count for a GPT block with a 4h GELU MLP, about 0.7x a Llama block's). With gradient
checkpointing, 2·b·s·h per layer plus one full layer.

The log-prob path (`align/logprobs.py`, `logprob_bytes`): the trainers compute log p of the
target tokens from the final hidden states through the LM head `chunk` rows at a time, so what
it holds is a few fp32 chunk x V buffers (and, with 16-bit weights and a trained head, an fp32
accumulator of the head's gradient), not [B, T, V] fp32 logits and their gradient. Under
DeepSpeed ZeRO-3 and FSDP (the head's weight is sharded outside its forward) the model's own
logits are used, chunk-wise in fp32: the [B, T, V] logits in their dtype and their gradient.
The reward model has a scalar head: no log-prob path.

ZeRO-2 / SHARD_GRAD_OP shard gradients and optimizer states over the processes; ZeRO-3 /
FULL_SHARD shard the weights too; `offload` moves optimizer states to CPU memory.

Frozen models: `steerlm2` and `ppo` also count the models they hold beside the trained one
(`frozen`: the reference and the reward model; PPO's reference is a copy of the policy
unless it trains LoRA, whose disabled adapter is the reference; a separate critic is a
trained full copy whose activations add to the policy's, as one loss trains both; the
micro-batch is minibatch / processes, and every process holds the frozen models whole,
also under ZeRO-3 / FSDP). PPO's total is the larger of two phases: training (the trained
states, activations, frozen models) and sampling its rollouts (the trained states, the whole
policy, the frozen models, and the KV cache of rollout_batch / processes sequences of
max_length). Under ZeRO-3 the whole weights of everything trained (policy, and a separate
critic) are gathered for sampling and released after it; under FSDP a whole policy copy is
kept for sampling, so it counts in both phases (align/trainers/actor_critic.py).
steerlm2 samples with the whole policy and the frozen models on every process, then trains
with the frozen models moved to CPU memory, so its total is the larger of the two phases
(KV cache not counted). For other stages the estimate is the trained model only. A DPO
micro-batch of `batch_size` pairs is 2·batch_size sequences (chosen and rejected).
A steerlm2 policy is an earlier stage (or a directory / hub id): the architecture is that
stage's model; when it cannot be read, the estimate says so (`unknown`).

`benchmarks/bench_memory_estimate.py` checks the estimate against the measured peak of a DPO
step on a small model on the CPU.

Sizes come from the model's config: a tiny spec, a local directory, the Hugging Face
cache, or, offline, the table below of architectures the shipped recipes use.
"""
from __future__ import annotations

from dataclasses import dataclass

# Architecture facts (from the models' published config.json) so recipes resolve offline.
KNOWN_CONFIGS = {
    "meta-llama/Llama-3.1-8B-Instruct": dict(vocab_size=128256, hidden_size=4096, num_hidden_layers=32,
                                             num_attention_heads=32, num_key_value_heads=8,
                                             intermediate_size=14336, tie_word_embeddings=False),
    "meta-llama/Llama-3.1-70B-Instruct": dict(vocab_size=128256, hidden_size=8192, num_hidden_layers=80,
                                              num_attention_heads=64, num_key_value_heads=8,
                                              intermediate_size=28672, tie_word_embeddings=False),
    "HuggingFaceTB/SmolLM2-135M-Instruct": dict(vocab_size=49152, hidden_size=576, num_hidden_layers=30,
                                                num_attention_heads=9, num_key_value_heads=3,
                                                intermediate_size=1536, tie_word_embeddings=True),
}
KNOWN_CONFIGS["meta-llama/Llama-3.2-1B-Instruct"] = dict(vocab_size=128256, hidden_size=2048, num_hidden_layers=16,
                                                        num_attention_heads=32, num_key_value_heads=8,
                                                        intermediate_size=8192, tie_word_embeddings=True)
KNOWN_CONFIGS["meta-llama/Llama-3.1-8B"] = KNOWN_CONFIGS["meta-llama/Llama-3.1-8B-Instruct"]
KNOWN_CONFIGS["meta-llama/Llama-3.1-70B"] = KNOWN_CONFIGS["meta-llama/Llama-3.1-70B-Instruct"]

GIB = 1024**3
WEIGHT_BYTES = {"float32": 4, "auto": 2, "bfloat16": 2, "float16": 2}


@dataclass
class Arch:
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    tied: bool

    @property
    def params(self) -> int:
        kv_dim = self.hidden * self.kv_heads // self.heads
        attn = 2 * self.hidden * self.hidden + 2 * self.hidden * kv_dim
        mlp = 3 * self.hidden * self.intermediate
        embed = self.vocab * self.hidden * (1 if self.tied else 2)
        return embed + self.layers * (attn + mlp + 2 * self.hidden) + self.hidden

    def lora_params(self, r: int) -> int:
        """Trainable parameters of rank-r adapters on every linear layer of every block."""
        kv_dim = self.hidden * self.kv_heads // self.heads
        h, i = self.hidden, self.intermediate
        per_layer = r * ((h + h) * 2 + (h + kv_dim) * 2 + 2 * (h + i) + (i + h))
        return self.layers * per_layer


def arch_from_dict(c: dict) -> Arch:
    heads = c.get("num_attention_heads", 1)
    return Arch(vocab=c["vocab_size"], hidden=c["hidden_size"], layers=c["num_hidden_layers"], heads=heads,
                kv_heads=c.get("num_key_value_heads") or heads,
                intermediate=c.get("intermediate_size") or 4 * c["hidden_size"],
                tied=bool(c.get("tie_word_embeddings", False)))


def spec_of_ref(ref: str, stages: dict, _seen: frozenset = frozenset()):
    """The ModelSpec behind a model reference: an earlier stage's `model` (a steerlm2 stage's policy,
    followed), or a directory / hub id loaded in its saved dtype; None if the stage holds no spec."""
    from align.config.model_spec import ModelSpec

    head = ref.partition(".")[0]
    if head not in stages:
        return ModelSpec(path=ref, dtype="auto")
    if head in _seen:
        return None
    upstream = stages[head]
    spec = getattr(upstream, "model", None)
    if spec is not None and hasattr(spec, "tiny"):
        return spec
    policy = getattr(upstream, "policy", None)
    return spec_of_ref(policy, stages, _seen | {head}) if isinstance(policy, str) else None


def find_arch(spec, stages: dict, tokenizer_vocab: int = 1024) -> Arch | None:
    """The architecture of a ModelSpec, following `from` to the stage that built it; None if unknown."""
    seen = set()
    while spec is not None and spec.from_ is not None and spec.from_ not in seen:
        seen.add(spec.from_)
        upstream = stages.get(spec.from_)
        if upstream is None:
            return None
        spec = spec_of_ref(spec.from_, stages)
    if spec is None:
        return None
    if spec.tiny is not None:
        t = spec.tiny
        return Arch(vocab=tokenizer_vocab, hidden=t.hidden_size, layers=t.layers, heads=t.heads,
                    kv_heads=t.kv_heads or t.heads, intermediate=t.intermediate_size or 3 * t.hidden_size,
                    tied=False)
    if spec.path in KNOWN_CONFIGS:
        return arch_from_dict(KNOWN_CONFIGS[spec.path])
    try:
        from transformers import AutoConfig

        from align.models import _split_gguf

        source, gguf = _split_gguf(spec)
        cfg = AutoConfig.from_pretrained(source, gguf_file=gguf, local_files_only=True)
        return arch_from_dict(cfg.to_dict() | {"tie_word_embeddings": getattr(cfg, "tie_word_embeddings", False)})
    except Exception:
        return None


def logprob_path(kind: str, strategy: str, zero_stage: int) -> str:
    """Which log-prob path a stage takes (align/logprobs.py): 'lean', 'logits' or 'none'."""
    if kind == "reward_model":
        return "none"
    if (strategy == "deepspeed" and zero_stage == 3) or strategy == "fsdp":
        return "logits"
    return "lean"


def logprob_bytes(arch: Arch, *, rows: int, path: str, wbytes: int, compute_bytes: int, trainable_head: bool,
                  logits_bytes: int | None = None, chunk: int | None = None) -> float:
    """Bytes the log-prob path holds at its peak in a training step over `rows` scored positions.

    lean: per chunk, two fp32 [chunk, V] buffers (the chunk's logits and their exp, which becomes
    the softmax for the entropy; in backward the recomputed logits, turned into their gradient in
    place, and its copy in a 16-bit compute dtype); the selected rows of the final hidden state and
    their gradient; with 16-bit weights and a trained head, the fp32 accumulator of the head's
    gradient. logits (ZeRO-3 / FSDP): the model's [rows, V] logits in `logits_bytes` and their
    gradient, plus the same chunk buffers. none: 0.
    """
    from align.logprobs import chunk_rows

    if path == "none" or rows <= 0:
        return 0.0
    c = min(chunk_rows(chunk), rows)
    V = arch.vocab
    chunk_bytes = 8 * c * V
    if path == "logits":
        return 2.0 * rows * V * (logits_bytes or compute_bytes) + chunk_bytes
    hidden_rows = 2 * rows * arch.hidden * compute_bytes
    accumulator = V * arch.hidden * 4 if (trainable_head and wbytes < 4) else 0
    return float(chunk_bytes + hidden_rows + accumulator)


def estimate(arch: Arch, *, dtype: str, precision: str, batch: int, seq: int, lora_r: int | None,
             grad_ckpt: bool, world: int, strategy: str, zero_stage: int, fsdp_sharding: str,
             offload: bool, kind: str = "sft", logprob_rows: int | None = None, chunk: int | None = None) -> dict:
    """GiB per process: weights, grads, optimizer, activations (the log-prob path included, also
    given alone as `logprobs`, with `logprobs_path`), total. `batch` counts sequences; `logprob_rows`
    the positions scored per micro-batch (default batch x seq)."""
    wbytes = WEIGHT_BYTES[dtype]
    params = arch.params
    trainable = arch.lora_params(lora_r) if lora_r else params
    weights = params * wbytes
    grads = trainable * wbytes
    if strategy == "deepspeed" and precision != "no":
        optim = 12 * trainable  # fp32 master weights + Adam m, v (DeepSpeed mixed precision)
    else:
        optim = 2 * trainable * wbytes  # Adam m, v in the parameters' dtype
    shard_states = strategy == "deepspeed" or (strategy == "fsdp")
    shard_weights = (strategy == "deepspeed" and zero_stage == 3) or (strategy == "fsdp" and fsdp_sharding != "SHARD_GRAD_OP")
    if shard_states and world > 1:
        grads, optim = grads / world, optim / world
    if shard_weights and world > 1:
        weights = weights / world
    if offload:
        optim = 0.0
    act_bytes = 2 if (precision != "no" or wbytes == 2) else 4
    kv = arch.hidden * arch.kv_heads // arch.heads
    per_layer = batch * seq * (9 * arch.hidden + 2 * kv + 4 * arch.intermediate) * act_bytes
    acts = (2 * batch * seq * arch.hidden * act_bytes * arch.layers + per_layer) if grad_ckpt else per_layer * arch.layers
    path = logprob_path(kind, strategy, zero_stage)
    # accelerate's autocast (DDP / FSDP mixed precision) returns the model's outputs in fp32; DeepSpeed's bf16 does not
    logits_bytes = 4 if (wbytes == 4 and precision == "no") or (strategy == "fsdp" and precision != "no") else 2
    lp = logprob_bytes(arch, rows=batch * seq if logprob_rows is None else logprob_rows, path=path, wbytes=wbytes,
                       compute_bytes=act_bytes, trainable_head=not lora_r, logits_bytes=logits_bytes, chunk=chunk)
    acts += lp
    out = {"params_b": params / 1e9, "weights": weights / GIB, "grads": grads / GIB, "optimizer": optim / GIB,
           "activations": acts / GIB, "logprobs": lp / GIB, "logprobs_path": path}
    out["total"] = out["weights"] + out["grads"] + out["optimizer"] + out["activations"]
    return out


def _weights_gib(ref: str | None, stages: dict) -> float | None:
    """GiB of the whole weights of the model `ref` names (0 for none; None if unknown)."""
    if ref is None:
        return 0.0
    spec = spec_of_ref(ref, stages)
    arch = find_arch(spec, stages) if spec is not None else None
    return None if arch is None else _whole_gib(arch, spec)


def _whole_gib(arch: Arch, spec) -> float:
    """GiB of a model's whole weights in its spec's dtype."""
    return arch.params * WEIGHT_BYTES[spec.dtype] / GIB


def _dist_kwargs(cfg) -> dict:
    dist = cfg.distributed
    return dict(world=dist.world_size if dist else 1, strategy=dist.strategy if dist else "ddp",
                zero_stage=dist.zero_stage if dist else 3,
                fsdp_sharding=dist.fsdp_sharding if dist else "FULL_SHARD", offload=bool(dist and dist.offload))


def stage_memory(cfg, stages: dict) -> dict | None:
    """Estimate for a training stage config (one with `train` and a model), else None.

    {"unknown": reason} when the stage trains a model whose architecture cannot be read offline.
    """
    train = getattr(cfg, "train", None)
    if train is None:
        return None
    if cfg.kind == "steerlm2":
        return _steerlm2_memory(cfg, stages)
    spec = getattr(cfg, "model", None)
    if spec is None or not hasattr(spec, "tiny"):
        return None
    arch = find_arch(spec, stages)
    if arch is None:
        return None
    dist = _dist_kwargs(cfg)
    batch, rows = train.batch_size, None
    if cfg.kind == "dpo":  # a pair is two sequences, chosen and rejected
        batch = 2 * train.batch_size
    if cfg.kind == "ppo":  # PPO optimises on minibatches of its rollouts, split over the processes;
        batch = max(1, cfg.minibatch // dist["world"])  # only the response positions are scored
        rows = batch * min(train.max_length, cfg.max_new_tokens)
    out = estimate(arch, dtype=spec.dtype, precision=train.precision, batch=batch, seq=train.max_length,
                   lora_r=spec.lora.r if spec.lora else None, grad_ckpt=train.gradient_checkpointing,
                   kind=cfg.kind, logprob_rows=rows, **dist)
    if cfg.kind == "ppo":
        out = _ppo_extras(cfg, stages, arch, spec, out, batch, dist)
    return out


def _steerlm2_memory(cfg, stages: dict) -> dict:
    spec = spec_of_ref(cfg.policy, stages)
    arch = find_arch(spec, stages) if spec is not None else None
    if arch is None:
        return {"unknown": f"policy {cfg.policy!r} is not a model config this plan can read"}
    frozen = [_weights_gib(r, stages) for r in (cfg.reference, cfg.reward_model)]
    train = cfg.train
    # a micro-batch is batch_size whole groups of samples_per_prompt sequences; the policy is trained in full
    out = estimate(arch, dtype=spec.dtype, precision=train.precision, batch=train.batch_size * cfg.samples_per_prompt,
                   seq=train.max_length, lora_r=None, grad_ckpt=train.gradient_checkpointing, kind=cfg.kind,
                   **_dist_kwargs(cfg))
    out["frozen"] = None if None in frozen else sum(frozen)
    out["sampling"] = None if out["frozen"] is None else _whole_gib(arch, spec) + out["frozen"]
    out["frozen_offloaded"] = True  # to CPU memory while the policy trains
    out["total"] = max(out["total"], out["sampling"] or 0.0)
    return out


def _ppo_extras(cfg, stages: dict, arch: Arch, spec, out: dict, batch: int, dist: dict) -> dict:
    """PPO holds a reference copy (unless LoRA), the reward model, and maybe a separate critic, and
    samples with the whole policy and a KV cache (see the module doc for the two phases)."""
    frozen = [0.0 if spec.lora else _whole_gib(arch, spec), _weights_gib(cfg.reward.model, stages)]
    out["frozen"] = None if None in frozen else sum(frozen)
    separate = cfg.critic == "separate"
    if separate:  # a merged full copy, all of it trained, in the same step as the policy
        critic = estimate(arch, dtype=spec.dtype, precision=cfg.train.precision, batch=batch,
                          seq=cfg.train.max_length, lora_r=None, grad_ckpt=cfg.train.gradient_checkpointing,
                          kind="reward_model", **dist)  # hidden states only (align.logprobs.final_hidden)
        for key in ("weights", "grads", "optimizer", "activations"):
            out[key] += critic[key]
    whole = _whole_gib(arch, spec)
    zero3 = dist["strategy"] == "deepspeed" and dist["zero_stage"] == 3 and dist["world"] > 1
    gathered = whole * (2 if separate else 1) if zero3 else 0.0  # transient, for the rollouts only
    out["sampling_copy"] = whole if dist["strategy"] == "fsdp" else 0.0  # kept all along
    kv = arch.hidden * arch.kv_heads // arch.heads  # K and V per layer and token: 2 x kv values
    rows = max(1, cfg.rollout_batch // dist["world"])
    out["kv_cache"] = rows * cfg.train.max_length * arch.layers * 2 * kv * WEIGHT_BYTES[spec.dtype] / GIB
    states = out["weights"] + out["grads"] + out["optimizer"] + (out["frozen"] or 0.0) + out["sampling_copy"]
    out["training"] = states + out["activations"]
    out["sampling"] = states + gathered + out["kv_cache"]
    out["sampling_what"] = ("trained shards, the whole policy gathered, frozen, KV cache" if zero3 else
                            "trained states, frozen, " + ("policy copy, " if out["sampling_copy"] else "") + "KV cache")
    out["total"] = max(out["training"], out["sampling"])
    return out
