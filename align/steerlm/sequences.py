"""Tokenised (prompt, prefix, response) sequences and their log-probabilities under a model.

SteerLM trains and scores responses in the model's own chat template with the attribute
prefix at the start of the assistant turn (labels.py); the loss and the log-probability
cover the response and the template's end-of-turn tokens, never the prefix.
"""
from __future__ import annotations

from align.chat import IGNORE_INDEX, TokenizedExample, assistant_spans


def tokenize_response(tokenizer, messages: list[dict], response: str, prefix: str = "", *,
                      max_length: int = 512) -> TokenizedExample:
    """input_ids of the chat `messages + [assistant: prefix + response]`; labels only on the response.

    Truncation keeps the first `max_length` tokens (callers count `truncated`).
    """
    conv = [*messages, {"role": "assistant", "content": prefix + response}]
    text, spans = assistant_spans(tokenizer, conv, "last")
    start, end = spans[-1]
    start += len(prefix)  # the label string is conditioning, not a target
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [tok if start <= s < end else IGNORE_INDEX for tok, (s, _e) in zip(ids, offsets)]
    truncated = len(ids) > max_length
    return TokenizedExample(ids[:max_length], labels[:max_length], truncated)


def collate_examples(examples: list[TokenizedExample], pad_id: int) -> dict:
    """Right-padded input_ids / attention_mask / labels tensors [B, T]."""
    from align.chat import pad_batch

    return {
        "input_ids": pad_batch([e.input_ids for e in examples], pad_id),
        "attention_mask": pad_batch([[1] * len(e.input_ids) for e in examples], 0),
        "labels": pad_batch([e.labels for e in examples], IGNORE_INDEX),
    }


def sequence_nll(model, batch: dict):
    """Summed token NLL of the labelled tokens per sequence, and their count: ([B], [B])."""
    from align.trainers.sft import model_token_nll

    nll, mask = model_token_nll(model, batch)  # [B, T-1], no full logits (align.logprobs)
    return nll.sum(-1), mask.sum(-1)


def sequence_log_probs(model, tokenizer, examples: list[TokenizedExample], batch_size: int = 32):
    """log P(response | context) under `model` for each example (no grad): tensor [N] on CPU."""
    import torch

    device = next(model.parameters()).device
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    out = torch.zeros(len(examples))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for s in range(0, len(order), batch_size):
                idx = order[s:s + batch_size]
                batch = {k: v.to(device) for k, v in collate_examples([examples[i] for i in idx],
                                                                       tokenizer.pad_token_id).items()}
                nll, _ = sequence_nll(model, batch)
                out[idx] = -nll.float().cpu()
    finally:
        model.train(was_training)
    return out
