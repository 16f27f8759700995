"""The process's place in a (possibly) distributed run, the same way everywhere."""
from __future__ import annotations

import os
from contextlib import contextmanager


def requested_engine() -> str | None:
    """'deepspeed' or 'fsdp' when `accelerate launch` started this process for that engine, else None."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        return "deepspeed"
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        return "fsdp"
    return None


def state_kwargs(cpu: bool = False) -> dict:
    """Arguments for accelerate's PartialState that set up the process group this run needs.

    Without CUDA, processes are told so (`cpu=True`), which makes torchrun / accelerate
    processes use gloo (MULTI_CPU). DeepSpeed is the exception: accelerate turns DeepSpeed
    on only when `cpu` is False, so a DeepSpeed run on the CPU passes `cpu=False` and the
    comm backend of DeepSpeed's CPU accelerator (gloo, or ccl with oneCCL installed).
    """
    import torch

    if requested_engine() == "deepspeed" and not torch.cuda.is_available():
        from deepspeed.accelerator import get_accelerator

        return {"cpu": False, "backend": get_accelerator().communication_backend_name()}
    return {"cpu": cpu or not torch.cuda.is_available()}


def accelerator_kwargs(cpu: bool = False) -> dict:
    """The same as `state_kwargs`, in the form `Accelerator(...)` takes."""
    kwargs = state_kwargs(cpu)
    backend = kwargs.pop("backend", None)
    if backend:
        from accelerate.utils import InitProcessGroupKwargs

        kwargs["kwargs_handlers"] = [InitProcessGroupKwargs(backend=backend)]
    return kwargs


def check_engine(distributed_type) -> None:
    """Fail loudly if accelerate did not set up the engine the launch asked for (no silent DDP)."""
    from accelerate.utils import DistributedType

    from align.errors import TrainingError

    wanted = requested_engine()
    expected = {"deepspeed": DistributedType.DEEPSPEED, "fsdp": DistributedType.FSDP}.get(wanted)
    if expected is not None and distributed_type != expected:
        raise TrainingError(f"the stage was launched for {wanted} but accelerate set up {distributed_type}: "
                            "check `model.device` and that the machine has the devices the engine needs")


@contextmanager
def whole_model_loading():
    """Load Hugging Face models whole inside, even in a DeepSpeed ZeRO-3 process.

    Once accelerate has a ZeRO-3 plugin, transformers' `from_pretrained` partitions every
    model it loads with `deepspeed.zero.Init`, a collective: a model loaded on the main
    process alone (to evaluate the saved result, the kept best reward model) then waits for
    the other ranks forever. Models here are loaded whole and sharded by `prepare`
    (`--zero3_init_flag false`), so the hint is hidden while loading.
    """
    try:
        from transformers.integrations import deepspeed as hf_deepspeed
    except ImportError:  # pragma: no cover
        yield
        return
    ref = getattr(hf_deepspeed, "_hf_deepspeed_config_weak_ref", None)
    hf_deepspeed._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = ref


def process_state():
    """accelerate's PartialState, set up as `state_kwargs` says.

    PartialState is a singleton: whoever creates it first fixes the backend, so stages that
    need it before their trainer exists must come through here.
    """
    from accelerate import PartialState

    return PartialState(**state_kwargs())
