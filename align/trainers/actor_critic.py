"""PPO's trained parts as one module, for DeepSpeed ZeRO and FSDP, and its policy's whole weights for sampling.

Why one module: accelerate's DeepSpeed integration builds one engine per prepared model, and a
PPO loss trains the policy, the value head and a separate critic together (one backward, one
optimizer step); FSDP's wrap and gradient clipping also act per prepared model. So under
sharding the trainer prepares an `ActorCritic` (the DDP path keeps its three modules) and every
training forward goes through it, which is what arms ZeRO-3's gather hooks and FSDP's unsharding.

The policy's log-probs come from its own logits (`align.logprobs.logprobs_from_own_logits`: the
response positions only, chunk-wise fp32); the hidden-state path needs the LM head's weight
outside its module's forward, which sharding does not give. A separate critic is held as its
backbone alone (no LM head: it would be a frozen, unused weight, which FSDP's flat parameters
refuse to mix with trained ones).

Sampling (`policy_for_sampling`) needs the whole policy on each process, and each process samples
its own prompts, so no collective may run while it generates:
- ZeRO-3: `deepspeed.zero.unwrap_model_for_generation` gathers every parameter once and removes
  the engine's hooks until the context exits (TRL's `unwrap_model_for_generation` does the same);
  the gathered weights are transient (the sampling phase of `align.memory`).
- FSDP (1, as `align.launch` starts it): no forward may run inside `summon_full_params`, so the
  whole weights are copied, inside it, into a whole policy copy each process keeps for sampling.
- DDP and ZeRO-2: every process already holds the whole weights.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from align.logprobs import logprobs_from_own_logits
from align.rollouts import positions


class ActorCritic(nn.Module):
    """The policy, an optional value head and an optional critic backbone, trained as one module."""

    def __init__(self, policy: nn.Module, value_head: nn.Module | None = None, critic: nn.Module | None = None):
        super().__init__()
        self.policy, self.value_head = policy, value_head
        self.critic = _backbone(critic) if critic is not None else None
        # accelerate reads these off the prepared model: the DeepSpeed config's size-based "auto"
        # values (config.hidden_size) and FSDP's transformer auto-wrap classes (_no_split_modules)
        self.config = getattr(policy, "config", None)
        self._no_split_modules = list(getattr(policy, "_no_split_modules", None) or [])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, start: int, temperature: float,
                with_values: bool = True):
        """Per response token (positions start..T-2 predict it): log-probs, entropies, values (or None)."""
        pos = positions(attention_mask)
        share = with_values and self.critic is None
        out = logprobs_from_own_logits(self.policy, input_ids, attention_mask=attention_mask, position_ids=pos,
                                       use_cache=False, start=start, temperature=temperature, with_entropy=True,
                                       return_hidden=share)
        values = None
        if with_values:
            if share:
                hidden = out.hidden
            else:
                hidden = self.critic(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos,
                                     use_cache=False).last_hidden_state
            values = self.value_head(hidden[:, start:-1])
        return out.logps, out.entropy, values


def _backbone(model: nn.Module) -> nn.Module:
    """The decoder stack of a causal LM (its final hidden states), without the LM head."""
    get = getattr(model, "get_decoder", None)
    inner = get() if callable(get) else getattr(model, "model", None)
    if not isinstance(inner, nn.Module) or inner is model:
        raise TypeError(f"{type(model).__name__}: no decoder stack found for a separate critic")
    return inner


def policy_state_dict(full: dict) -> dict:
    """The policy's entries of an ActorCritic state dict, under the policy's own names."""
    return {k[len("policy."):]: v for k, v in full.items() if k.startswith("policy.")}


@contextmanager
def policy_for_sampling(accelerator, model, fsdp_copy: nn.Module | None = None):
    """The prepared ActorCritic's policy with whole weights on this process (see the module doc).
    Every process must enter together: gathering the weights is a collective."""
    from accelerate.utils import DistributedType

    kind = accelerator.distributed_type
    plugin = accelerator.state.deepspeed_plugin
    if kind == DistributedType.DEEPSPEED and plugin is not None and plugin.zero_stage == 3:
        import deepspeed

        with deepspeed.zero.unwrap_model_for_generation(model):
            yield accelerator.unwrap_model(model).policy
        return
    if kind == DistributedType.FSDP:
        if fsdp_copy is None:
            raise ValueError("FSDP sampling needs a whole policy copy to copy the gathered weights into")
        _copy_full_policy(model, fsdp_copy)
        yield fsdp_copy
        return
    yield accelerator.unwrap_model(model).policy


@torch.no_grad()
def _copy_full_policy(model, target: nn.Module) -> None:
    """Copy the FSDP-wrapped ActorCritic's whole policy weights into `target` (every process)."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    with FSDP.summon_full_params(model, writeback=False, recurse=True):
        # inside summon_full_params, named_parameters gives the original names and whole tensors
        full = {n.replace("_fsdp_wrapped_module.", ""): p for n, p in model.named_parameters()}
        for name, param in target.named_parameters():
            param.copy_(full[f"policy.{name}"])
