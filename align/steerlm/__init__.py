"""SteerLM 1.0 and 2.0 (SPEC.md sections 3 and 4): the label string, the self-normalised
importance weights and loss, sequence log-probabilities and steerability measurement.

Pure math lives in `weights.py` and `labels.py`; everything that touches a model is in
`sequences.py` and `steerability.py`.
"""
from align.steerlm.labels import (
    DEFAULT_MARKER, attribute_prefix, check_marker, format_label, parse_label,
)
from align.steerlm.weights import (
    effective_sample_size, kl_divergence, normalized_baseline, normalized_weights, steerlm2_loss,
)

__all__ = [
    "DEFAULT_MARKER", "attribute_prefix", "check_marker", "format_label", "parse_label",
    "effective_sample_size", "kl_divergence", "normalized_baseline", "normalized_weights", "steerlm2_loss",
]
