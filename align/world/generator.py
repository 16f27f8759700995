"""Writes the synthetic world: HelpSteer2-schema rows, preference pairs, SFT chats, prompt
sets and a tokenizer, all labelled by the oracle and deterministic from one seed.

Responses are sampled in varied styles (opener, right/wrong/hedged core, simple or
complex elaboration, noise) so that every attribute spreads over 0..4 and later
alignment has room to improve on the mixed-quality SFT data.
"""
from __future__ import annotations

import json
import pathlib
import random

from align.attributes import ATTRIBUTES
from align.errors import AlignError
from align.io_utils import write_jsonl
from align.world import tasks as T
from align.world.oracle import annotate
from align.world.tokenizer import train_world_tokenizer

# Style probabilities (module constants so experiments can tweak them).
P_OPENER = 0.5
CORE_MODES = {"correct": 0.5, "wrong": 0.2, "hedge": 0.1, "conflict": 0.1, "missing": 0.1}
ELABORATION_COUNTS = {0: 0.3, 1: 0.2, 2: 0.15, 3: 0.12, 4: 0.1, 5: 0.07, 6: 0.06}
COMPLEX_SHARES = (0.0, 0.0, 0.5, 1.0)  # per response: chance each elaboration is complex
P_NOISE = 0.25  # then each further noise with P_MORE_NOISE
P_MORE_NOISE = 0.3
P_FOLLOWUP = 0.6  # multi-turn with a numeric first task: follow-up vs new task


def _pick(rng: random.Random, weights: dict) -> object:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _sample_prompt(rng: random.Random, multi_turn: bool, max_operand: int = T.MAX_OPERAND,
                   kind: str | None = None) -> str:
    """A single task of `kind` (random if None), or user1 (of `kind`) / correct asst1 / user2
    flattened as in HelpSteer2."""
    user1 = T.sample_turn(kind or rng.choice(T.TASK_KINDS), rng, max_operand)
    if not multi_turn:
        return user1
    task1 = T.parse_turn(user1)
    # The earlier assistant turn is written like any response (opener, elaboration), right and
    # clean: a model whose own first answer is elaborate must have seen such a history in training
    # (with bare answers only, SteerLM models asked for longer answers fell apart on turn 2).
    asst1 = sample_response(task1, rng, mode="correct", noise=False)
    if task1.kind in T.NUMERIC_KINDS and rng.random() < P_FOLLOWUP:
        user2 = T.sample_followup(int(task1.answer), rng, max(max_operand, 1))
    else:
        user2 = T.sample_turn(rng.choice(T.TASK_KINDS), rng, max_operand)
    return T.flatten_turns([{"role": "user", "content": user1},
                            {"role": "assistant", "content": asst1},
                            {"role": "user", "content": user2}])


def _unique_prompts(rng: random.Random, count: int, multi_turn_fraction: float,
                    max_operand: int = T.MAX_OPERAND) -> list[str]:
    """count distinct prompts, task kinds balanced until a kind runs out of distinct prompts.

    Each slot draws single/multi-turn, then a task kind among those not yet exhausted for that
    type, and retries until unseen. Re-drawing the kind on every retry instead would let the
    kind with the most distinct prompts (sort) swallow every slot a small kind (add, larger)
    could not fill, and the later prompts (the test set) would be mostly sort.
    """
    seen: set[str] = set()
    out: list[str] = []
    live = {False: list(T.TASK_KINDS), True: list(T.TASK_KINDS)}
    for _ in range(count):
        multi = rng.random() < multi_turn_fraction
        while True:
            if not live[multi]:
                raise AlignError(
                    f"the world has only about {len(out)} distinct prompts at max_operand={max_operand}, "
                    f"{count} wanted (prompts + test_prompts): lower them, raise max_operand, or "
                    "raise responses_per_prompt for more rows per prompt")
            kind = rng.choice(live[multi])
            for _ in range(200):
                p = _sample_prompt(rng, multi, max_operand, kind)
                if p not in seen:
                    break
            else:
                live[multi].remove(kind)  # (nearly) exhausted: no unseen prompt in 200 draws
                continue
            break
        seen.add(p)
        out.append(p)
    return out


def _join_items(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _wrong_number(x: int, rng: random.Random) -> int:
    y = x + rng.choice((-1, 1)) * rng.randint(1, 5)
    return y if y >= 0 and y != x else x + rng.randint(1, 5)


def _core(task: T.Task, rng: random.Random, mode: str) -> str:
    """The answer sentence: correct, wrong, hedged, conflicting or missing."""
    if mode == "missing":
        return rng.choice(T.MISSING_CORES)
    right, wrong = _answer_texts(task, rng)
    if mode == "conflict":
        x, y = (right, wrong) if rng.random() < 0.5 else (wrong, right)
        return rng.choice(T.CONFLICT_FRAMES).format(x=x, y=y)
    x = wrong if mode == "wrong" else right
    if mode == "hedge":
        return rng.choice(T.HEDGE_FRAMES).format(x=x)
    if task.kind == "list":
        return rng.choice(T.LIST_FRAMES).format(x=x, cat=task.answer)
    return rng.choice(T.CORE_FRAMES).format(x=x)


def _answer_texts(task: T.Task, rng: random.Random) -> tuple[str, str]:
    """(a correct answer text, a wrong one) for the task."""
    if task.kind == "sort":
        nums = list(task.answer)
        if rng.random() < 0.5:
            shuffled = nums[:]
            while shuffled == nums:
                rng.shuffle(shuffled)
            wrong = shuffled  # same multiset, wrong order
        else:
            wrong = nums[:]
            i = rng.randrange(len(wrong))
            wrong[i] = _wrong_number(wrong[i], rng)
        return " ".join(map(str, nums)), " ".join(map(str, wrong))
    if task.kind == "copy":
        return task.answer, rng.choice([w for w in T.ALL_ITEMS if w != task.answer])
    if task.kind == "list":
        bank = T.CATEGORIES[task.answer]
        right = rng.sample(bank, task.n)
        wrong = right[:]
        others = [w for w in T.ALL_ITEMS if T.ITEM_CATEGORY[w] != task.answer]
        style = rng.random()
        if style < 0.4:  # wrong-category items
            for i in rng.sample(range(task.n), rng.randint(1, task.n)):
                wrong[i] = rng.choice(others)
        elif style < 0.7:  # too few items
            wrong = wrong[: rng.randint(1, task.n - 1)]
        else:  # a duplicate
            wrong[-1] = wrong[0]
        return _join_items(right), _join_items(wrong)
    return str(task.answer), str(_wrong_number(int(task.answer), rng))


def _add_noise(words: list[str], rng: random.Random) -> list[str]:
    """One noise: an immediately repeated word, a repeated sentence, or junk tokens."""
    kind = rng.randrange(3)
    i = rng.randrange(len(words))
    if kind == 0:
        return words[: i + 1] + [words[i]] * rng.randint(1, 3) + words[i + 1:]
    if kind == 1:
        ends = [j + 1 for j, w in enumerate(words) if w.endswith((".", "?", "!"))] or [len(words)]
        end = rng.choice(ends)
        start = max([e for e in ends if e < end], default=0)
        return words[:end] + words[start:end] + words[end:]
    return words[:i] + rng.choices(T.JUNK_TOKENS, k=rng.randint(1, 3)) + words[i:]


def sample_response(task: T.Task, rng: random.Random, mode: str | None = None, noise: bool = True) -> str:
    """[opener] + core answer + [0..6 elaboration sentences] + [noise]; `mode` fixes the core
    (correct, wrong, hedge, conflict, missing), `noise=False` leaves the noise out."""
    parts = [rng.choice(T.OPENERS)] if rng.random() < P_OPENER else []
    parts.append(_core(task, rng, mode or _pick(rng, CORE_MODES)))
    n_elab = _pick(rng, ELABORATION_COUNTS)
    share = rng.choice(COMPLEX_SHARES)
    n_complex = sum(rng.random() < share for _ in range(n_elab))
    elab = rng.sample(T.COMPLEX_SENTENCES, n_complex) + rng.sample(T.SIMPLE_SENTENCES, n_elab - n_complex)
    rng.shuffle(elab)
    words = " ".join(parts + elab).split()
    if noise and rng.random() < P_NOISE:
        words = _add_noise(words, rng)
        while rng.random() < P_MORE_NOISE:
            words = _add_noise(words, rng)
    return " ".join(words)


def _statement(strength: int) -> tuple[str, str]:
    if strength == 0:
        return "@Response 1 and @Response 2 are about the same.", ""
    better, worse = ("1", "2") if strength < 0 else ("2", "1")
    degree = {1: "slightly better than", 2: "better than", 3: "much better than"}[abs(strength)]
    return f"@Response {better} is {degree} @Response {worse}.", better


def _preference(prompt: str, r1: str, r2: str, a1: dict, a2: dict, split: str) -> dict:
    """HelpSteer2-Preference row; strength from the helpfulness difference (correctness
    breaks ties, as +-1), clipped to -3..3; negative means response_1 is better."""
    diff = a2["helpfulness"] - a1["helpfulness"]
    if diff == 0:
        diff = max(-1, min(1, a2["correctness"] - a1["correctness"]))
    strength = max(-3, min(3, diff))
    statement, better = _statement(strength)
    if better:
        win, lose = (a1, a2) if better == "1" else (a2, a1)
        reasons = [a for a in ("correctness", "coherence") if win[a] > lose[a]]
        reasons += ["conciseness"] if win["verbosity"] < lose["verbosity"] else []
        why = " and ".join(reasons) or "overall helpfulness"
        elaboration = f"@Response {better} is better in {why}."
    else:
        elaboration = "Both responses are equally helpful."
    return {"prompt": prompt, "response_1": r1, "response_2": r2,
            "preference_strength": strength, "preference_statement": statement,
            "preference_elaboration": elaboration, "split": split}


def generate_world(out_dir, *, prompts: int = 2000, seed: int = 0,
                   validation_fraction: float = 0.05, test_prompts: int = 200,
                   multi_turn_fraction: float = 0.3, vocab_size: int = 1024,
                   max_operand: int = T.MAX_OPERAND, responses_per_prompt: int = 2,
                   pairs_per_prompt: int = 1) -> dict[str, pathlib.Path]:
    """Write the world under out_dir; returns output name -> path (see module docstring).

    Prompts are unique across train, validation and test. Validation takes
    ``round(prompts * validation_fraction)`` prompts; test prompts are fresh prompts used
    only for held-out evaluation (no responses are written for them). Each prompt gives
    ``pairs_per_prompt`` preference pairs over disjoint responses (1st vs 2nd, 3rd vs 4th,
    ...): HelpSteer2-Preference has one, more make held-out pairwise accuracy precise.
    """
    if prompts < 2 or not 0 <= validation_fraction < 1 or test_prompts < 0 or responses_per_prompt < 2:
        raise ValueError("need prompts >= 2, 0 <= validation_fraction < 1, test_prompts >= 0, "
                         "responses_per_prompt >= 2")
    if not 1 <= pairs_per_prompt <= responses_per_prompt // 2:
        raise ValueError(f"pairs_per_prompt must be 1..responses_per_prompt // 2 "
                         f"({responses_per_prompt // 2}), got {pairs_per_prompt}")
    rng = random.Random(seed)
    out = pathlib.Path(out_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)

    unique = _unique_prompts(rng, prompts + test_prompts, multi_turn_fraction, max_operand)
    rng.shuffle(unique)  # validation, train and test prompts drawn from one distribution
    main, test = unique[:prompts], unique[prompts:]
    n_val = round(prompts * validation_fraction)
    splits = {"validation": main[:n_val], "train": main[n_val:]}

    rows = {"train": [], "validation": []}
    pairs = []
    for split, split_prompts in splits.items():
        for p in split_prompts:
            task = T.parse_prompt(p)
            responses = [sample_response(task, rng) for _ in range(responses_per_prompt)]
            labels = [annotate(p, r) for r in responses]
            rows[split] += [{"prompt": p, "response": r, **a} for r, a in zip(responses, labels)]
            pairs += [_preference(p, responses[i], responses[i + 1], labels[i], labels[i + 1], split)
                      for i in range(0, 2 * pairs_per_prompt, 2)]
    sft = [{"messages": T.split_turns(r["prompt"]) + [{"role": "assistant", "content": r["response"]}]}
           for r in rows["train"]]

    paths = {
        "helpsteer_train": out / "data" / "helpsteer_train.jsonl",
        "helpsteer_validation": out / "data" / "helpsteer_validation.jsonl",
        "preference": out / "data" / "preference.jsonl",
        "sft": out / "data" / "sft.jsonl",
        "prompts_train": out / "data" / "prompts_train.jsonl",
        "prompts_test": out / "data" / "prompts_test.jsonl",
        "world_info": out / "world.json",
        "tokenizer": out / "tokenizer",
    }
    write_jsonl(paths["helpsteer_train"], rows["train"])
    write_jsonl(paths["helpsteer_validation"], rows["validation"])
    write_jsonl(paths["preference"], pairs)
    write_jsonl(paths["sft"], sft)
    write_jsonl(paths["prompts_train"], ({"prompt": p} for p in splits["train"]))
    write_jsonl(paths["prompts_test"], ({"prompt": p} for p in test))

    info = {
        "seed": seed,
        "counts": {"prompts_train": len(splits["train"]), "prompts_validation": n_val,
                   "prompts_test": len(test), "rows_train": len(rows["train"]),
                   "rows_validation": len(rows["validation"]), "preference_pairs": len(pairs),
                   "sft_conversations": len(sft),
                   "multi_turn_prompts": sum(T.USER_SEP in p for p in main)},
        "histograms": {a: [sum(r[a] == v for r in rows["train"]) for v in range(5)]
                       for a in ATTRIBUTES},
    }
    paths["world_info"].write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

    # The first pair of each prompt only: the tokenizer does not change with pairs_per_prompt.
    texts = [*unique, *(r["response"] for rs in rows.values() for r in rs),
             *(x[k] for x in pairs[::pairs_per_prompt] for k in ("preference_statement", "preference_elaboration"))]
    train_world_tokenizer(texts, paths["tokenizer"], vocab_size=vocab_size)
    return paths
