"""Scalar reward = weighted sum of attributes, with the published weight vectors (SPEC.md section 2)."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from align.errors import AlignError

WEIGHT_PRESETS: dict[str, dict[str, float]] = {
    # Nemotron-4-340B reward model (HelpSteer2 paper).
    "nemotron4_340b": {"helpfulness": 0.3, "correctness": 0.74, "coherence": 0.46, "complexity": 0.47,
                       "verbosity": -0.33},
    # Llama3-70B-SteerLM-RM.
    "llama3_70b": {"helpfulness": 0.65, "correctness": 0.8, "coherence": 0.45, "complexity": 0.55,
                   "verbosity": -0.4},
    # "Goodness": ranks samples for iterative DPO and is the PPO reward.
    "goodness": {"helpfulness": 0.65, "correctness": 0.8, "coherence": 0.45},
}


def resolve_weights(weights: str | dict | Sequence[float], attributes: Sequence[str]) -> torch.Tensor:
    """A weight vector [A] in `attributes` order from a preset name, {attr: weight} or a list.

    Attributes a dict or preset does not name get weight 0. A nonzero weight on an
    attribute the model does not predict is an error (the scalar would silently change).
    """
    attributes = list(attributes)
    if isinstance(weights, str):
        if weights not in WEIGHT_PRESETS:
            raise AlignError(f"unknown weight preset {weights!r}; known: {', '.join(WEIGHT_PRESETS)}")
        weights = WEIGHT_PRESETS[weights]
    if isinstance(weights, dict):
        missing = [k for k, v in weights.items() if k not in attributes and float(v) != 0.0]
        if missing:
            raise AlignError(f"weights name attribute(s) {missing} the reward model does not predict "
                             f"(it predicts: {', '.join(attributes)})")
        return torch.tensor([float(weights.get(a, 0.0)) for a in attributes], dtype=torch.float32)
    values = [float(v) for v in weights]
    if len(values) != len(attributes):
        raise AlignError(f"a weight list needs {len(attributes)} values ({', '.join(attributes)}), got {len(values)}")
    return torch.tensor(values, dtype=torch.float32)


def weights_key(weights: str | dict | Sequence[float]) -> str:
    """A readable name for a weight spec (the preset name, else the values)."""
    return weights if isinstance(weights, str) else repr(weights)
