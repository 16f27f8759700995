"""The process's place in a (possibly) distributed run, the same way everywhere."""
from __future__ import annotations


def process_state():
    """accelerate's PartialState; without CUDA it is told so, which makes torchrun processes use gloo.

    PartialState is a singleton: whoever creates it first fixes the backend, so stages that
    need it before their trainer exists must come through here.
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())
