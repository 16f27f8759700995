"""Task templates, word banks and prompt parsing for the synthetic HelpSteer world.

One table (``TEMPLATES``) serves both directions: the generator formats a template and the
oracle parses text back with a regex derived from the same template, so the two cannot
drift apart. Every task has a deterministic expected answer (``Task``).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

# Item banks: list/copy/count tasks draw from these. Items are unique across categories so
# an item names its category unambiguously (the oracle needs that for list correctness).
CATEGORIES: dict[str, tuple[str, ...]] = {
    "colors": ("red", "blue", "green", "yellow", "purple", "black", "white", "pink"),
    "animals": ("cat", "dog", "horse", "lion", "tiger", "rabbit", "mouse", "sheep"),
    "fruits": ("apple", "banana", "cherry", "grape", "lemon", "mango", "peach", "pear"),
    "vehicles": ("car", "bus", "train", "bike", "boat", "truck", "plane", "ship"),
    "drinks": ("water", "milk", "tea", "coffee", "juice", "soda", "cocoa", "lemonade"),
    "shapes": ("circle", "square", "triangle", "oval", "star", "cube", "sphere", "cone"),
}
ITEM_CATEGORY: dict[str, str] = {w: c for c, ws in CATEGORIES.items() for w in ws}
ALL_ITEMS: tuple[str, ...] = tuple(ITEM_CATEGORY)

# Default operand range. Small on purpose: a ~1M-parameter model can learn a lookup over
# 0..5 from a few thousand rows, so answers (and the RM's judgement of them) are learnable.
MAX_OPERAND = 5
MAX_FOLLOWUP = 5

# Task kind -> phrasing variants. Placeholders: {a},{b},{k},{n} numbers, {w} an item,
# {cat} a category, {nums} space-separated numbers.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "add": ("What is {a} plus {b}?", "Add {a} and {b}.", "Compute {a} + {b}."),
    "subtract": ("What is {a} minus {b}?", "Subtract {b} from {a}.", "Compute {a} - {b}."),
    "larger": ("Which is larger, {a} or {b}?", "Which number is bigger: {a} or {b}?"),
    "count": ("How many letters are in the word {w}?", "Count the letters in {w}."),
    "list": ("List {n} {cat}.", "Name {n} {cat}.", "Give me {n} {cat}."),
    "copy": ("Repeat the word {w}.", "Say the word {w}."),
    "sort": ("Sort these numbers: {nums}.", "Put these numbers in order: {nums}."),
}
FOLLOWUP_TEMPLATES: dict[str, tuple[str, ...]] = {
    "add": ("Now add {k} to that result.", "Add {k} to your answer."),
    "subtract": ("Now subtract {k} from that result.", "Take {k} away from your answer."),
    "double": ("Now double that result.", "What is twice that number?"),
}
TASK_KINDS: tuple[str, ...] = tuple(TEMPLATES)
NUMERIC_KINDS = frozenset({"add", "subtract", "larger", "count", "followup"})

# HelpSteer2 flattening of multi-turn prompts (SPEC.md section 1).
ASSISTANT_SEP = "\n<extra_id_1>Assistant\n"
USER_SEP = "\n<extra_id_1>User\n"
_TURN_SPLIT = re.compile(r"\n<extra_id_1>(Assistant|User)\n")

_FIELD_RE = {"a": r"(\d+)", "b": r"(\d+)", "k": r"(\d+)", "n": r"(\d+)",
             "w": r"([a-z]+)", "cat": r"([a-z]+)", "nums": r"(\d+(?: \d+)+)"}


def _compile(template: str) -> tuple[re.Pattern, list[str]]:
    """Regex for a template: literal parts escaped, placeholders captured in order."""
    parts = re.split(r"\{(\w+)\}", template)
    fields = parts[1::2]
    body = "".join(re.escape(p) if i % 2 == 0 else _FIELD_RE[p] for i, p in enumerate(parts))
    return re.compile(r"\s*" + body + r"\s*", re.IGNORECASE), fields


_PARSERS = [(kind, *_compile(t)) for kind, ts in TEMPLATES.items() for t in ts]
_FOLLOWUP_PARSERS = [(op, *_compile(t)) for op, ts in FOLLOWUP_TEMPLATES.items() for t in ts]


@dataclass(frozen=True)
class Task:
    """A parsed user turn and its expected answer.

    answer: int for numeric kinds, the item for "copy", the sorted tuple for "sort",
    the category name for "list" (with ``n`` items requested).
    """

    kind: str
    answer: int | str | tuple[int, ...]
    n: int = 0


def parse_turn(text: str) -> Task | None:
    """Task of one stand-alone user turn, or None if it is not a world task."""
    for kind, pattern, fields in _PARSERS:
        m = pattern.fullmatch(text)
        if not m:
            continue
        f = dict(zip(fields, m.groups()))
        if kind == "add":
            return Task(kind, int(f["a"]) + int(f["b"]))
        if kind == "subtract":
            return Task(kind, int(f["a"]) - int(f["b"]))
        if kind == "larger":
            return Task(kind, max(int(f["a"]), int(f["b"])))
        if kind in ("count", "copy"):
            w = f["w"].lower()
            if w not in ITEM_CATEGORY:
                return None
            return Task(kind, len(w) if kind == "count" else w)
        if kind == "list":
            cat = f["cat"].lower()
            return Task(kind, cat, n=int(f["n"])) if cat in CATEGORIES and int(f["n"]) > 0 else None
        if kind == "sort":
            return Task(kind, tuple(sorted(int(x) for x in f["nums"].split())))
    return None


def parse_followup(text: str) -> tuple[str, int] | None:
    """(op, k) for a follow-up turn such as "Now add 7 to that result.", else None."""
    for op, pattern, fields in _FOLLOWUP_PARSERS:
        m = pattern.fullmatch(text)
        if m:
            return op, int(m.group(1)) if fields else 0
    return None


def apply_followup(op: str, k: int, previous: int) -> int:
    return {"add": previous + k, "subtract": previous - k, "double": 2 * previous}[op]


def split_turns(prompt: str) -> list[dict[str, str]]:
    """HelpSteer2 flattened prompt -> chat messages (the final assistant turn excluded)."""
    parts = _TURN_SPLIT.split(prompt)
    messages = [{"role": "user", "content": parts[0]}]
    for role, content in zip(parts[1::2], parts[2::2]):
        messages.append({"role": role.lower(), "content": content})
    return messages


def flatten_turns(messages: list[dict[str, str]]) -> str:
    """Chat messages (user first, alternating) -> HelpSteer2 flattened prompt."""
    out = messages[0]["content"]
    for m in messages[1:]:
        out += (ASSISTANT_SEP if m["role"] == "assistant" else USER_SEP) + m["content"]
    return out


def parse_prompt(prompt: str) -> Task | None:
    """Task of the LAST user turn of a (possibly flattened multi-turn) prompt.

    A follow-up ("Now add 7 to that result.") takes the expected answer of the previous
    user turn's task (recursively), not what the assistant said there: the annotator
    knows the truth. Returns None when any needed turn is not a world task.
    """
    users = [m["content"] for m in split_turns(prompt) if m["role"] == "user"]
    return _resolve(users)


def kind_label(prompt: str) -> str:
    """The task kind of a flattened prompt's last user turn, with " (multi-turn)" when earlier turns
    exist: how the experiments' per-task tables group prompts."""
    return parse_prompt(prompt).kind + (" (multi-turn)" if USER_SEP in prompt else "")


def _resolve(users: list[str]) -> Task | None:
    if not users:
        return None
    task = parse_turn(users[-1])
    if task is not None:
        return task
    follow = parse_followup(users[-1])
    if follow is None:
        return None
    prev = _resolve(users[:-1])
    if prev is None or prev.kind not in NUMERIC_KINDS:
        return None
    return Task("followup", apply_followup(*follow, int(prev.answer)))


# ---- sampling (used by the generator) -------------------------------------------------

def sample_turn(kind: str, rng: random.Random, max_operand: int = MAX_OPERAND) -> str:
    """One user turn of the given kind with random operands (0..max_operand) and phrasing."""
    tpl = rng.choice(TEMPLATES[kind])
    if kind in ("add", "larger"):
        a, b = rng.sample(range(max_operand + 1), 2) if kind == "larger" else (
            rng.randint(0, max_operand), rng.randint(0, max_operand))
        return tpl.format(a=a, b=b)
    if kind == "subtract":
        a, b = sorted((rng.randint(0, max_operand), rng.randint(0, max_operand)), reverse=True)
        return tpl.format(a=a, b=b)
    if kind in ("count", "copy"):
        return tpl.format(w=rng.choice(ALL_ITEMS))
    if kind == "list":
        return tpl.format(n=rng.randint(2, 4), cat=rng.choice(tuple(CATEGORIES)))
    nums = rng.sample(range(max(max_operand, 5) + 1), rng.randint(3, 5))
    if nums == sorted(nums):
        nums.reverse()
    return tpl.format(nums=" ".join(map(str, nums)))


def sample_followup(previous: int, rng: random.Random, max_k: int = MAX_FOLLOWUP) -> str:
    """A follow-up turn on a numeric answer; never asks for a negative result."""
    op = rng.choice(("add", "add", "subtract", "double") if previous > 0 else ("add", "double"))
    k = rng.randint(1, min(previous, max_k)) if op == "subtract" else rng.randint(1, max_k)
    return rng.choice(FOLLOWUP_TEMPLATES[op]).format(k=k)


def template_words() -> set[str]:
    """Words of every prompt template (for the oracle's lexicon)."""
    words: set[str] = set()
    for t in [*sum(TEMPLATES.values(), ()), *sum(FOLLOWUP_TEMPLATES.values(), ())]:
        words.update(re.findall(r"[a-z]+", re.sub(r"\{\w+\}", " ", t).lower()))
    return words | set(CATEGORIES) | set(ALL_ITEMS)


# ---- response vocabulary (generator writes it, oracle's lexicon and rules read it) ------

OPENERS: tuple[str, ...] = ("Sure.", "Of course.", "Here is the answer.", "Good question.",
                            "Let me help.", "Happy to help.")
# {x} is the answer text. Numeric/sort/copy/list cores share these frames.
CORE_FRAMES: tuple[str, ...] = ("The answer is {x}.", "{x}.", "It is {x}.", "The result is {x}.")
LIST_FRAMES: tuple[str, ...] = ("{x}.", "Some {cat} are {x}.", "Here they are: {x}.")
HEDGE_FRAMES: tuple[str, ...] = ("I think the answer is {x}.", "Maybe it is {x}.",
                                 "It is probably {x}.")
CONFLICT_FRAMES: tuple[str, ...] = ("The answer is {x} or {y}.", "It is {x}, or {y}.")
MISSING_CORES: tuple[str, ...] = ("I am not sure.", "I do not know.", "That is hard to say.")
HEDGE_WORDS = frozenset({"think", "maybe", "probably", "perhaps", "guess"})

SIMPLE_SENTENCES: tuple[str, ...] = (
    "I hope this helps.", "This is easy to check.", "Let me know if you need more.",
    "That is what you asked for.", "You can check it yourself.", "It was a simple task.",
    "Thank you for asking.", "Have a nice day.", "Ask me again any time.",
    "I am glad to help you.",
)
# Words that raise complexity; none of them appears in prompts, items or simple sentences.
COMPLEX_WORDS = frozenset({
    "consequently", "computation", "rigorously", "verified", "therefore", "elementary",
    "arithmetic", "furthermore", "derivation", "systematically", "validated", "methodology",
    "comprehensive", "fundamentally", "subsequently", "inference", "analytically",
    "substantiated", "equivalently", "procedure", "demonstrably", "deterministic",
    "theoretical", "rationale", "meticulously", "documented", "notwithstanding",
    "formalism", "paradigm", "axiomatic",
})
COMPLEX_SENTENCES: tuple[str, ...] = (
    # one complex word each: small complexity steps
    "Therefore it is right.", "The computation is short.", "This was verified twice.",
    "The procedure is quick.",
    # several complex words each
    "Consequently, the computation is rigorously verified.",
    "Therefore the result follows from elementary arithmetic.",
    "Furthermore, the derivation is systematically validated.",
    "The methodology is comprehensive and fundamentally sound.",
    "Subsequently, the inference is analytically substantiated.",
    "Equivalently, the procedure is demonstrably deterministic.",
    "The theoretical rationale is meticulously documented.",
    "Notwithstanding the formalism, the paradigm remains axiomatic.",
)
# Junk tokens outside the lexicon: noise that lowers coherence.
JUNK_TOKENS: tuple[str, ...] = ("zxq", "blorp", "qwv", "##", "frub", "kzz", "~~", "plok")


def response_words() -> set[str]:
    """Words of every response bank (for the oracle's lexicon)."""
    texts = [*OPENERS, *CORE_FRAMES, *LIST_FRAMES, *HEDGE_FRAMES, *CONFLICT_FRAMES,
             *MISSING_CORES, *SIMPLE_SENTENCES, *COMPLEX_SENTENCES, "and"]
    words: set[str] = set(COMPLEX_WORDS) | HEDGE_WORDS
    for t in texts:
        words.update(re.findall(r"[a-z]+", re.sub(r"\{\w+\}", " ", t).lower()))
    return words
