"""SteerLM 1.0 and 2.0 (SPEC.md sections 3 and 4).

- `labels`: the attribute label string and the prefix it forms in the assistant turn.
- `weights`: SteerLM 2.0 self-normalised weights w', baseline b', loss, KL(w'||b'), ESS (pure torch).
- `sequences`: tokenised (prompt, prefix, response) and log-probabilities under a model.
- `steerability`: requested vs achieved attributes over a grid of targets.
Submodules are imported explicitly, so recipe validation does not import torch.
"""
