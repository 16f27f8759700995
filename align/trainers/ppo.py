"""PPO trainer (actor-critic) with a per-token KL penalty to a frozen reference (SPEC.md section 5).

One step = one rollout batch: sample responses with the KV cache, score them with any
`RewardFunction` (prompts, responses) -> list[float], build per-token rewards
(-kl_coef * KL_t, plus the score at the last response token, minus a penalty when the
response has no EOS), GAE, whiten advantages, then `ppo_epochs` passes of minibatch
updates of the clipped policy and value losses.

Override points: `compute_loss(model, batch)` (calls the pure losses in align.losses.ppo),
`token_rewards(scores, logprobs, ref_logprobs, mask)` and `advantages(batch)`.

Several processes (DDP): `rollout_batch` and `minibatch` are global. Every process draws the
same step's prompts (a shared seeded order) and takes its contiguous 1/world slice, samples it
with the whole unwrapped policy (seed offset by the rank; rank 0's equal a one-process run's),
and scores it locally. Advantage whitening, the logged rollout means and the KL controller's
input are computed over all processes' responses. Each optimizer step takes minibatch/world
responses from every process's own slice (DDP averages the gradients), in the order of the
shared minibatch permutation restricted to that slice. Rank 0 alone logs and checkpoints.

Sharded (DeepSpeed ZeRO-2/3, FSDP): the same split, but the policy, value head and separate
critic are trained as one `ActorCritic` module (one engine), rollouts sample from the policy's
whole weights gathered for the purpose (`align.trainers.actor_critic`), the frozen reference
(and the reward model) are held whole by every process, and checkpoints are accelerate's
sharded state (every rank writes its shard). LoRA runs under DDP only.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from align.config.base import TrainConfig
from align.errors import TrainingError
from align.logprobs import final_hidden, logprobs_from_model
from align.losses import (
    AdaptiveKLController,
    FixedKLController,
    clipped_policy_loss,
    clipped_value_loss,
    gae,
    kl_estimate,
    masked_mean,
    masked_whiten,
)
from align.rollouts import positions as _positions
from align.rollouts import sample_responses
from align.steerlm.labels import DEFAULT_MARKER, attribute_prefix
from align.trainers.actor_critic import (
    ActorCritic,
    policy_for_sampling,
    policy_state_dict,
)
from align.trainers.base import BaseTrainer
from align.trainers.checkpoints import load_latest_checkpoint, load_latest_sharded
from align.trainers.dpo import reference_context

log = logging.getLogger("align")


@dataclass
class PPOSettings:
    """Algorithm settings (the stage config documents each field)."""

    steps: int = 20
    rollout_batch: int = 32
    minibatch: int = 16
    ppo_epochs: int = 2
    clip: float = 0.2
    value_clip: float = 0.2
    vf_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    kl_coef: float = 0.05
    kl_estimator: Literal["k1", "k3"] = "k1"
    kl_target: float | None = None  # set: adaptive coefficient (Ziegler et al.)
    kl_horizon: int = 10000
    whiten_advantages: bool = True
    missing_eos_penalty: float = 1.0
    max_new_tokens: int = 48
    temperature: float = 1.0
    top_p: float = 1.0
    critic: Literal["shared", "separate"] = "shared"
    normalize_scores: bool = True
    engine: Literal["native", "hf", "vllm"] = "native"  # rollout sampling engine (align.engines)
    # attribute-target RL: per prompt a target drawn from [{attributes, weight}], written after the
    # generation prompt as SteerLM's attribute prefix; the reward gets each response's target
    target_distribution: list[dict] | None = None
    marker: str = DEFAULT_MARKER


class ValueHead(nn.Module):
    """Linear map from the last hidden state to a scalar value per position."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # [B, T, H] -> [B, T], fp32
        # fp32 unless an engine cast the head (DeepSpeed bf16 casts every trained module): compute in its dtype
        return self.proj(hidden.to(self.proj.weight.dtype)).float().squeeze(-1)


class PPOTrainer(BaseTrainer):
    """Actor-critic PPO. `reward_fn(prompts, responses) -> list[float]` is any RewardFunction."""

    metric_prefix = "ppo"
    targets: list[dict] | None = None  # this rollout's attribute targets (attribute-target RL)
    #: False for critic-free subclasses (GRPO, RLOO): no values are computed and no value loss is taken
    uses_critic = True
    _fsdp_copy = None  # under FSDP, the whole policy copy rollouts sample from

    def __init__(self, model, tokenizer, reward_fn: Callable[[list, list], list[float]], config: TrainConfig,
                 output_dir, settings: PPOSettings | None = None, *, ref_model=None, seed: int = 0, accelerator=None):
        super().__init__(model, tokenizer, config, output_dir, seed=seed, accelerator=accelerator)
        self.s = settings or PPOSettings()
        self.reward_fn = reward_fn
        is_peft = hasattr(model, "disable_adapter")
        # Reference: the frozen initial policy (with LoRA: the base model, adapter disabled).
        self.ref_model = ref_model if ref_model is not None else (None if is_peft else _frozen_copy(model))
        hidden = model.config.hidden_size if hasattr(model, "config") else model.get_base_model().config.hidden_size
        self.critic = _frozen_copy(model, trainable=True) if self.s.critic == "separate" else None
        if self.critic is not None and hasattr(self.critic, "disable_adapter"):
            self.critic = self.critic.merge_and_unload()
            self.critic.requires_grad_(True)
        if self.critic is not None:
            # The critic gives hidden states only: an untied LM head never gets a gradient (which DDP refuses).
            head, emb = self.critic.get_output_embeddings(), self.critic.get_input_embeddings()
            if head is not None and head.weight is not emb.weight:
                head.requires_grad_(False)
        self.value_head = ValueHead(hidden)
        self.kl_ctl = (AdaptiveKLController(self.s.kl_coef, self.s.kl_target, self.s.kl_horizon)
                       if self.s.kl_target else FixedKLController(self.s.kl_coef))
        self.eos_id = tokenizer.eos_token_id
        self.score_stats = [0.0, 0.0, 0.0]  # count, mean, M2 of every raw score so far (Welford)
        self.sampler = None  # the rollout engine (settings.engine), started at the first rollout

    # ---- forward pieces ----------------------------------------------------------------
    def forward(self, model, batch: dict[str, torch.Tensor], *, with_values: bool = True):
        """Per response token: log-probs [B, R], entropies [B, R], values [B, R] (or None)."""
        P = batch["prompt_len"]
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if isinstance(self.accelerator.unwrap_model(model), ActorCritic):  # sharded: one module computes all
            return model(ids, mask, start=P - 1, temperature=self.s.temperature, with_values=with_values)
        share = with_values and self.critic is None
        # the sampling distribution (logits / temperature), from the hidden states in chunks: no [B, R, V] logits
        out = logprobs_from_model(model, ids, attention_mask=mask, position_ids=_positions(mask), use_cache=False,
                                  start=P - 1, temperature=self.s.temperature, with_entropy=True, return_hidden=share)
        values = None
        if with_values:
            if share:
                hidden = out.hidden
            else:
                hidden = final_hidden(self.critic, ids, attention_mask=mask, position_ids=_positions(mask),
                                      use_cache=False)
            values = self.value_head(hidden[:, P - 1 : -1])
        return out.logps, out.entropy, values

    def compute_loss(self, model, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Clipped policy loss + vf_coef * clipped value loss on one minibatch of a rollout."""
        logps, entropies, values = self.forward(model, batch)
        mask = batch["response_mask"]
        pg_loss, pg_stats = clipped_policy_loss(logps, batch["old_logps"], batch["advantages"], mask, self.s.clip)
        vf_loss, vf_stats = clipped_value_loss(values, batch["old_values"], batch["returns"], mask, self.s.value_clip)
        with torch.no_grad():
            entropy = masked_mean(entropies, mask)
        loss = pg_loss + self.s.vf_coef * vf_loss
        return loss, {"policy_loss": pg_loss.item(), "value_loss": vf_loss.item(),
                      "clip_fraction": pg_stats["clip_fraction"].item(), "approx_kl": pg_stats["approx_kl"].item(),
                      "value_clip_fraction": vf_stats["value_clip_fraction"].item(), "entropy": entropy.item()}

    def token_rewards(self, scores: torch.Tensor, logps: torch.Tensor, ref_logps: torch.Tensor,
                      mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token rewards [B, R]: -kl_coef * KL_t everywhere, + score at the last response token.
        Returns (rewards, kl [B, R])."""
        kl = kl_estimate(logps, ref_logps, self.s.kl_estimator) * mask
        rewards = -self.kl_ctl.value * kl
        last = (mask.sum(1) - 1).clamp_min(0).long()
        rewards[torch.arange(len(scores)), last] += scores
        return rewards, kl

    def advantages(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE advantages (whitened if configured) and returns, both [B, R]."""
        adv, ret = gae(batch["rewards"], batch["old_values"], batch["response_mask"], self.s.gamma, self.s.lam)
        if self.s.whiten_advantages:
            acc = self.accelerator  # mean and variance over every process's responses
            global_sum = (lambda t: acc.reduce(t, "sum")) if acc.num_processes > 1 else None
            adv = masked_whiten(adv, batch["response_mask"], reduce_sum=global_sum)
        return adv, ret

    # ---- rollouts ----------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, prompts: list[list[dict]], seed: int, targets: list[dict] | None = None) -> dict[str, Any]:
        """Sample one response per prompt (KV cache), score it, and fill everything PPO needs.
        With a target distribution, each prompt asks for its target (drawn here unless given)."""
        tok, device = self.tokenizer, self.accelerator.device
        if targets is None and self.s.target_distribution:
            targets = self.draw_targets(len(prompts), seed)
        self.targets = targets
        suffix = [attribute_prefix(t, self.s.marker) for t in targets] if targets else ""
        with self.sampling_policy() as model:  # whole weights, also when training shards them
            sampler, sync_stats = self.rollout_engine(model)
            clock = time.perf_counter()  # phase wall times (the engine's sync is timed on its own)
            batch, texts, has_eos = sample_responses(model, tok, prompts, max_new_tokens=self.s.max_new_tokens,
                                                     temperature=self.s.temperature, top_p=self.s.top_p, seed=seed,
                                                     engine=sampler, prompt_suffix=suffix)
            times = {"time_rollout_s": time.perf_counter() - clock}
        clock = time.perf_counter()
        scores = self.score(prompts, texts).to(device)
        times["time_score_s"] = time.perf_counter() - clock
        clock = time.perf_counter()
        raw_scores = scores.clone()
        if self.s.normalize_scores:
            scores = self._normalized(scores)
        scores = scores - self.s.missing_eos_penalty * (~has_eos).float()
        self.model.eval()
        logps, _, values = self.forward(self.model, batch, with_values=self.uses_critic)
        if values is None:
            values = torch.zeros_like(logps)
        with reference_context(model) if self.ref_model is None else torch.no_grad():
            ref_logps, _, _ = self.forward(self.ref_model if self.ref_model is not None else self.model, batch,
                                           with_values=False)
        self.model.train()
        mask = batch["response_mask"]
        rewards, kl = self.token_rewards(scores, logps, ref_logps, mask)
        batch.update(old_logps=logps, ref_logps=ref_logps, old_values=values * mask, rewards=rewards, scores=scores)
        batch["advantages"], batch["returns"] = self.advantages(batch)
        times["time_logprob_s"] = time.perf_counter() - clock  # old/ref log-probs, values, GAE
        # means over every process's responses (equal slices: a gather, then the mean)
        per_sample = torch.stack([raw_scores, scores, kl.sum(1), mask.sum(1), has_eos.float()], 1)
        if self.accelerator.num_processes > 1:
            per_sample = self.accelerator.gather(per_sample)
        means = per_sample.mean(0).tolist()
        stats = dict(zip(("reward", "score_with_penalty", "kl", "response_length", "eos_fraction"), means))
        stats["kl_coef"] = self.kl_ctl.value
        stats.update(sync_stats, **times, **_engine_mismatch(batch, logps))
        return {"batch": batch, "stats": stats, "texts": texts}

    def sampling_policy(self):
        """A context giving the policy with whole weights on this process (`policy_for_sampling`)."""
        if isinstance(self.unwrapped_model(), ActorCritic):
            return policy_for_sampling(self.accelerator, self.model, self._fsdp_copy)
        return contextlib.nullcontext(self.unwrapped_model())

    def rollout_engine(self, model):
        """(the engine rollouts sample with, its stats): None for `native`, which keeps the in-process
        `model.generate` path; hf and vllm are started at the first rollout (vllm from the policy's
        weights then) and get the current weights at every later one, i.e. after each PPO step's
        optimisation (the sync time is the `engine_sync_seconds` metric)."""
        if self.s.engine == "native":
            return None, {}
        if self.sampler is None:
            from align.engines import make_engine

            self.sampler = make_engine(self.s.engine, model, self.tokenizer, seed=self.seed)
            return self.sampler, {"engine_sync_seconds": 0.0}
        return self.sampler, {"engine_sync_seconds": self.sampler.sync_weights(model)}

    def draw_targets(self, count: int, seed: int) -> list[dict]:
        """`count` attribute targets from the target distribution (seeded by the rollout's seed)."""
        import random

        opts = self.s.target_distribution
        picks = random.Random(seed).choices(opts, weights=[float(t.get("weight", 1.0)) for t in opts], k=count)
        return [dict(t["attributes"]) for t in picks]

    def score(self, prompts: list[list[dict]], texts: list[str]) -> torch.Tensor:
        """One scalar per response [B]: the reward function's, or, for a vector reward
        (rewards.vector, `vectors()` per attribute), `combine_vectors` of its attribute scores."""
        if hasattr(self.reward_fn, "vectors"):
            return self.combine_vectors(self.reward_fn.vectors(prompts, texts))
        kwargs = {"targets": self.targets} if getattr(self.reward_fn, "uses_targets", False) else {}
        return torch.tensor([float(x) for x in self.reward_fn(prompts, texts, **kwargs)], dtype=torch.float32)

    def combine_vectors(self, vectors: torch.Tensor) -> torch.Tensor:
        """GDPO: each attribute standardised over the whole rollout batch (every process), then weighted."""
        from rewards.vector import standardized_sum

        acc = self.accelerator
        if acc.num_processes == 1:
            return standardized_sum(vectors, self.reward_fn.weights)
        every = acc.gather(vectors.to(acc.device)).cpu()
        n = len(vectors)
        return standardized_sum(every, self.reward_fn.weights)[acc.process_index * n:(acc.process_index + 1) * n]

    def _normalized(self, scores: torch.Tensor) -> torch.Tensor:
        """(score - mean) / std over every rollout so far, this one included (all processes).

        The value head (on the policy's trunk when the critic is shared) then fits targets of
        unit scale whatever the reward's: a rule-based reward of 0..8 otherwise gives value
        losses whose gradients swamp the policy's. OpenRLHF's `normalize_reward` does the same.
        """
        every = self.accelerator.gather(scores) if self.accelerator.num_processes > 1 else scores
        n, mean, m2 = self.score_stats
        for x in every.double().tolist():
            n += 1
            delta = x - mean
            mean += delta / n
            m2 += delta * (x - mean)
        self.score_stats = [n, mean, m2]
        std = (m2 / (n - 1)) ** 0.5 if n > 1 else 1.0
        return (scores - mean) / max(std, 1e-6)

    # ---- the loop ----------------------------------------------------------------------
    def _mean_over_processes(self, window: dict[str, list[float]]) -> dict[str, float]:
        """Each metric's mean over this step's minibatches, averaged over processes."""
        means = {k: sum(v) / len(v) for k, v in window.items()}
        if self.accelerator.num_processes == 1 or not means:
            return means
        keys = sorted(means)
        t = torch.tensor([means[k] for k in keys], dtype=torch.float32, device=self.accelerator.device)
        return dict(zip(keys, self.accelerator.reduce(t, "mean").tolist()))

    def _make_optimizer(self):
        if isinstance(self.model, ActorCritic):  # it holds everything trained
            params = [p for p in self.model.parameters() if p.requires_grad]
        else:
            params = [p for p in self.model.parameters() if p.requires_grad] + list(self.value_head.parameters())
            if self.critic is not None:
                params += [p for p in self.critic.parameters() if p.requires_grad]
        return self._adamw(params)

    def _as_actor_critic(self, local_mb: int) -> None:
        """Before `prepare` under ZeRO / FSDP: the policy, value head (if used) and critic as one
        `ActorCritic` (align.trainers.actor_critic says why)."""
        from accelerate.utils import DistributedType

        acc = self.accelerator
        if hasattr(self.model, "disable_adapter"):
            raise TrainingError(f"PPO with LoRA runs under DDP only, not {self.engine}: train the full policy "
                                "under ZeRO / FSDP, or use strategy ddp with LoRA")
        if acc.state.deepspeed_plugin is not None:  # no data loader is prepared: DeepSpeed takes PPO's micro-batch
            acc.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = local_mb
        if acc.distributed_type == DistributedType.FSDP:  # FSDP's sampling copy (see policy_for_sampling)
            self._fsdp_copy = _frozen_copy(self.model).to(acc.device)
        self.model = ActorCritic(self.model, self.value_head if self.uses_critic else None, self.critic)
        self.critic = None  # its backbone is inside the ActorCritic (the unused LM head is dropped)

    def save_pretrained(self, out_dir, *, merge_lora: bool = True) -> None:
        """The trained policy as a Hugging Face directory; sharded, every process takes part (gathering)."""
        from align.models import save_model

        ac = self.unwrapped_model()
        if not isinstance(ac, ActorCritic):
            return super().save_pretrained(out_dir, merge_lora=merge_lora)
        full = self.accelerator.get_state_dict(self.model)  # a collective: the whole weights, on rank 0
        if self.is_main:
            save_model(ac.policy, self.tokenizer, out_dir, merge_lora=False, state_dict=policy_state_dict(full))
        self.accelerator.wait_for_everyone()

    def _trained_modules(self) -> nn.ModuleDict:
        """Everything PPO trains, as one module for checkpoints: policy, value head, separate critic."""
        mods = {"policy": self.unwrapped_model(), "value_head": self.accelerator.unwrap_model(self.value_head)}
        if self.critic is not None:
            mods["critic"] = self.accelerator.unwrap_model(self.critic)
        return nn.ModuleDict(mods)

    def train(self, prompts: list[list[dict]], eval_dataset=None) -> dict[str, float]:
        """Run `settings.steps` PPO steps over `prompts` (cycled in a seeded order); return final metrics.

        Checkpoints every `train.save_every` steps; an interrupted run resumes from the last one
        and ends with the same weights as one never stopped.
        """
        s, acc = self.s, self.accelerator
        if not prompts:
            raise TrainingError("PPO needs at least one prompt")
        world, rank = acc.num_processes, acc.process_index
        if s.rollout_batch % world or s.minibatch % world:
            raise TrainingError(f"rollout_batch {s.rollout_batch} and minibatch {s.minibatch} must be multiples "
                                f"of the {world} processes")
        lo, hi = s.rollout_batch * rank // world, s.rollout_batch * (rank + 1) // world  # this process's slice
        local_mb = s.minibatch // world
        if self.sharded:
            self._as_actor_critic(local_mb)
        optimizer = self._make_optimizer()
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)  # constant; kept for checkpoints
        g = torch.Generator().manual_seed(self.seed)
        order: list[int] = []
        start_step = 0
        if self.sharded:  # one engine / FSDP wrap for everything trained; its checkpoint holds their shards
            self.model, optimizer = acc.prepare(self.model, optimizer)
            state = load_latest_sharded(acc, self.checkpoint_dir)
        else:
            state = load_latest_checkpoint(self.checkpoint_dir, self._trained_modules(), optimizer, scheduler)
            self.model, self.value_head, optimizer = acc.prepare(self.model, self.value_head, optimizer)
            if self.critic is not None:
                self.critic = acc.prepare(self.critic)
        if state:
            start_step, order = state["global_step"], state["order"]
            self.history = state["history"]
            self.kl_ctl.value = state["kl_coef"]
            self.score_stats = list(state.get("score_stats", self.score_stats))
            g.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
        if self.ref_model is not None:  # frozen and whole on every process (also under sharding)
            self.ref_model.to(acc.device)
        t0 = time.time()
        self.model.train()
        for step in range(start_step, s.steps):
            while len(order) < s.rollout_batch:
                order += torch.randperm(len(prompts), generator=g).tolist()
            idx, order = order[: s.rollout_batch], order[s.rollout_batch:]
            self._reseed(step)
            roll = self.rollout([prompts[i] for i in idx[lo:hi]], seed=self.seed * 1_000_003 + step + rank * 2**40)
            batch, window = roll["batch"], defaultdict(list)
            clock = time.perf_counter()
            for epoch in range(s.ppo_epochs):
                perm = torch.randperm(s.rollout_batch, generator=g)  # the same on every process
                mine = perm[(perm >= lo) & (perm < hi)] - lo  # this process's rows, in that order
                for start in range(0, len(mine), local_mb):
                    mb = _select(batch, mine[start : start + local_mb])
                    loss, metrics = self.compute_loss(self.model, mb)
                    self._check_finite(loss)
                    acc.backward(loss)
                    if self.config.max_grad_norm:  # FSDP clips through its root: the model's own parameters
                        acc.clip_grad_norm_(self.model.parameters() if self.sharded else
                                            [p for grp in optimizer.param_groups for p in grp["params"]],
                                            self.config.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad()
                    for k, v in metrics.items():
                        window[k].append(v)
            roll["stats"]["time_train_s"] = time.perf_counter() - clock  # the optimisation epochs
            self.kl_ctl.update(roll["stats"]["kl"], s.rollout_batch)
            self.global_step = step + 1
            row = {f"ppo/{k}": v for k, v in roll["stats"].items()}
            row.update({f"ppo/{k}": v for k, v in self._mean_over_processes(window).items()})
            row["step"] = self.global_step
            self.history.append(row)
            if self.is_main and (self.global_step % self.config.log_every == 0 or self.global_step == s.steps):
                log.info("ppo step %d  %s", self.global_step,
                         "  ".join(f"{k.split('/')[-1]}={v:.4g}" for k, v in row.items() if k != "step"))
            if self.config.save_every and self.global_step % self.config.save_every == 0 and self.global_step < s.steps:
                # with the prompt order and generator, so a resumed run is exact
                modules = None if self.sharded else self._trained_modules()
                self._save(optimizer, scheduler, modules=modules, kl_coef=self.kl_ctl.value,
                           order=order, generator=g.get_state().tolist(), score_stats=self.score_stats)
        out = {"ppo/steps": float(s.steps), "ppo/seconds": time.time() - t0}
        first, last = self.history[0], self.history[-1]
        for k, v in last.items():
            if k != "step":
                out[f"{k}_final"] = v
        out["ppo/reward_first"] = first["ppo/reward"]
        return out


def _engine_mismatch(batch: dict[str, Any], logps: torch.Tensor) -> dict[str, float]:
    """Mean |trainer log-prob - engine log-prob| per response token, when the engine returned log-probs.
    PPO's old log-probs are always the trainer's; this only measures how far the engine's are off."""
    if "engine_logps" not in batch:
        return {}
    mask = batch["response_mask"]
    gap = ((logps.float() - batch["engine_logps"].float()).abs() * mask).sum() / mask.sum().clamp_min(1)
    return {"engine_logprob_mismatch": float(gap)}


def _select(batch: dict[str, Any], idx: torch.Tensor) -> dict[str, Any]:
    return {k: (v[idx.to(v.device)] if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def _frozen_copy(model, trainable: bool = False):
    m = copy.deepcopy(model)
    m.requires_grad_(trainable)
    if not trainable:
        m.eval()
    return m
