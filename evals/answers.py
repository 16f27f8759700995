"""Multi-turn answer generation and MT-Bench-format answer files.

Turn t of every question is generated in one batch, with the model's own earlier answers
in the conversation (as MT-Bench does). A `ChatModel` is anything with
`complete(conversations) -> list[str]`: a local model (the chat template, batched, KV
cache) or an OpenAI-compatible endpoint. Answers are saved as JSONL
(`question_id`, `model_id`, `choices[0].turns`) so judging reruns without regenerating.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from align.errors import DataError
from align.io_utils import read_user_text, write_jsonl
from evals.questions import Question

log = logging.getLogger("align")


def model_label(path: str) -> str:
    """A readable name for a model path: runs/x/sft/model -> 'sft', some/dir -> 'dir'."""
    parts = Path(str(path).rstrip("/")).parts
    if len(parts) >= 2 and parts[-1] == "model":
        return parts[-2]
    return Path(parts[-1]).stem if parts else "model"


def model_name(ref: str, stages) -> str:
    """The name reports use for a model entry: a stage reference as written (`sft`,
    `steerlm2.iter1`), any other path by `model_label`."""
    return ref if ref.partition(".")[0] in stages else model_label(ref)


# FastChat's answer settings (fastchat/llm_judge/common.py `temperature_config`, and
# gen_model_answer.py: 0.7 for a category not in the table, --max-new-token 1024).
FASTCHAT_TEMPERATURES = {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0,
                         "reasoning": 0.0, "stem": 0.1, "humanities": 0.1, "arena-hard-200": 0.0}
FASTCHAT_OTHER_TEMPERATURE = 0.7
FASTCHAT_MAX_NEW_TOKENS = 1024


def fastchat_temperature(category: str) -> float:
    return FASTCHAT_TEMPERATURES.get(category, FASTCHAT_OTHER_TEMPERATURE)


class ChatModel(Protocol):
    def complete(self, conversations: list[list[dict]], *, temperature: float) -> list[str]: ...


class LocalChatModel:
    """A loaded causal LM + tokenizer, answering through `align.generation.generate`."""

    def __init__(self, model, tokenizer, *, max_new_tokens: int = FASTCHAT_MAX_NEW_TOKENS, batch_size: int = 16,
                 seed: int = 0, prompt_suffix: str = "", engine: str = "native"):
        # prompt_suffix: text after the generation prompt (a SteerLM model's attribute label string);
        # engine: native (align.generation), hf or vllm (align.engines, started at the first answer)
        self.model, self.tokenizer, self.seed, self.prompt_suffix = model, tokenizer, seed, prompt_suffix
        self.engine_name, self.engine = engine, None
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.truncated = 0  # answers that used the whole token budget, over every `complete` call
        self.too_long = 0  # prompts that left no room for an answer

    @classmethod
    def load(cls, path: str, **kwargs) -> LocalChatModel:
        from align.config.model_spec import ModelSpec
        from align.models import load_model

        model, tok = load_model(ModelSpec(path=path))
        return cls(model, tok, **kwargs)

    def complete(self, conversations: list[list[dict]], *, temperature: float = 0.0) -> list[str]:
        """One answer per conversation. Each gets the token budget its prompt leaves in the model's
        positions (at most max_new_tokens); a prompt that fills them gets an empty answer (counted in
        `too_long`, logged), never a decode past the model's positions."""
        from align.chat import render
        from align.generation import (
            SamplingConfig,
            generate_tokens,
            split_at_eos,
            stop_token_ids,
        )

        limit = getattr(self.model.config, "max_position_embeddings", None)
        budgets = []
        for c in conversations:
            if not limit:
                budgets.append(self.max_new_tokens)
                continue
            used = len(self.tokenizer(render(self.tokenizer, c, add_generation_prompt=True) + self.prompt_suffix,
                                      add_special_tokens=False)["input_ids"])
            budgets.append(max(0, min(self.max_new_tokens, limit - used)))
        out = [""] * len(conversations)
        too_long = budgets.count(0)
        if too_long:
            self.too_long += too_long
            log.warning("%d of %d prompts fill the model's %d positions: their answers are empty", too_long,
                        len(conversations), limit)
        eos = stop_token_ids(self.model, self.tokenizer)
        for budget in sorted(set(budgets) - {0}):  # one batch per budget (most prompts share the full one)
            idx = [i for i, b in enumerate(budgets) if b == budget]
            sampling = SamplingConfig(max_new_tokens=budget, temperature=temperature, batch_size=self.batch_size)
            batch = [conversations[i] for i in idx]
            if self.engine_name == "native":
                rows = generate_tokens(self.model, self.tokenizer, batch, sampling, seed=self.seed,
                                       prompt_suffix=self.prompt_suffix)
            else:
                if self.engine is None:
                    from align.engines import make_engine

                    self.engine = make_engine(self.engine_name, self.model, self.tokenizer, seed=self.seed)
                rows = self.engine.generate(batch, sampling, seed=self.seed, prompt_suffix=self.prompt_suffix).tokens
            for i, choices in zip(idx, rows):
                ids, finished = split_at_eos(choices[0], eos)
                self.truncated += not finished  # cut by its budget rather than ended on its own
                out[i] = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return out


class EndpointChatModel:
    """The model under test behind an OpenAI-compatible endpoint (requests run concurrently)."""

    def __init__(self, endpoint, *, max_new_tokens: int = FASTCHAT_MAX_NEW_TOKENS):
        self.endpoint, self.max_new_tokens = endpoint, max_new_tokens

    def complete(self, conversations: list[list[dict]], *, temperature: float = 0.0) -> list[str]:
        # a conversation longer than the served model's context gets an empty answer (logged), as a local
        # model's capped budget would leave it
        return self.endpoint.chat_many(conversations, temperature=temperature, max_tokens=self.max_new_tokens,
                                       refused_as="")


def conversation(question: Question, answers: list[str], turn: int) -> list[dict]:
    """Messages up to and including user turn `turn` (0-based), earlier answers included."""
    msgs: list[dict] = []
    for t in range(turn + 1):
        msgs.append({"role": "user", "content": question.turns[t]})
        if t < turn:
            msgs.append({"role": "assistant", "content": answers[t]})
    return msgs


def generate_answers(questions: list[Question], chat: ChatModel,
                     temperature: float | Callable[[Question], float] = 0.0) -> list[list[str]]:
    """For each question, one answer per turn; turn t of all questions at one temperature runs as one
    batch. `temperature`: one value, or a function of the question (`fastchat_temperature` of its category)."""
    temp = temperature if callable(temperature) else (lambda _q: float(temperature))
    answers: list[list[str]] = [[] for _ in questions]
    for turn in range(max(len(q.turns) for q in questions)):
        idx = [i for i, q in enumerate(questions) if turn < len(q.turns)]
        for t in sorted({temp(questions[i]) for i in idx}):
            group = [i for i in idx if temp(questions[i]) == t]
            replies = chat.complete([conversation(questions[i], answers[i], turn) for i in group], temperature=t)
            for i, text in zip(group, replies):
                answers[i].append(text)
    return answers


def save_answers(path: str | Path, model_id: str, questions: list[Question], answers: list[list[str]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    rows = [{"question_id": q.question_id, "answer_id": f"{model_id}-{q.question_id}", "model_id": model_id,
             "choices": [{"index": 0, "turns": a}], "tstamp": now} for q, a in zip(questions, answers)]
    write_jsonl(path, rows)  # atomic: rerunning never leaves a half-written answer file
    return path


def load_answers(path: str | Path, questions: list[Question]) -> list[list[str]]:
    """Answers in question order; every question must have an answer for every turn."""
    by_id = {}
    for i, line in enumerate(read_user_text(path).splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            try:
                by_id[row["question_id"]] = list(row["choices"][0]["turns"])
            except (KeyError, IndexError, TypeError) as exc:
                raise DataError(f"{path} line {i}: expected question_id and choices[0].turns") from exc
    out = []
    for q in questions:
        turns = by_id.get(q.question_id)
        if turns is None or len(turns) < len(q.turns):
            raise DataError(f"{path}: no complete answer for question {q.question_id!r}")
        out.append(turns)
    return out
