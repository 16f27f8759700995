"""HelpSteer2 prompt parsing, row schema checks, grouping and preference pairs."""
from __future__ import annotations

import json

import pytest

from align.attributes import ATTRIBUTES
from align.errors import DataError
from align.data import (
    HelpSteerRow, PreferencePair, consecutive_groups, flatten_messages, group_by_prompt,
    load_helpsteer, load_preference_pairs, pairs_from_ratings, parse_helpsteer_prompt,
)

A, U = "\n<extra_id_1>Assistant\n", "\n<extra_id_1>User\n"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def hs_row(prompt="Hi", response="Hello", **attrs):
    row = {"prompt": prompt, "response": response}
    row.update({a: 2 for a in ATTRIBUTES})
    row.update(attrs)
    return row


# ---- prompt parsing -----------------------------------------------------------------------

def test_single_turn_prompt():
    assert parse_helpsteer_prompt("What is 2+2?") == [{"role": "user", "content": "What is 2+2?"}]


def test_two_user_turns_exact_content():
    prompt = "  first question\nwith lines  " + A + "answer one\n\n" + U + " second? "
    assert parse_helpsteer_prompt(prompt) == [
        {"role": "user", "content": "  first question\nwith lines  "},
        {"role": "assistant", "content": "answer one\n\n"},
        {"role": "user", "content": " second? "},
    ]


def test_three_user_turns():
    prompt = "u1" + A + "a1" + U + "u2" + A + "a2" + U + "u3"
    msgs = parse_helpsteer_prompt(prompt)
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in msgs] == ["u1", "a1", "u2", "a2", "u3"]


def test_system_block_and_leading_user_marker():
    prompt = "<extra_id_0>System\nBe brief.\n<extra_id_1>User\nu1" + A + "a1" + U + "u2"
    msgs = parse_helpsteer_prompt(prompt)
    assert msgs[0] == {"role": "system", "content": "Be brief."}
    assert [m["content"] for m in msgs[1:]] == ["u1", "a1", "u2"]
    assert parse_helpsteer_prompt("<extra_id_1>User\nhello") == [{"role": "user", "content": "hello"}]
    # empty system block -> no system message
    assert parse_helpsteer_prompt("<extra_id_0>System\n\n<extra_id_1>User\nq")[0]["role"] == "user"


@pytest.mark.parametrize("prompt", [
    "q",
    " q1 \n" + A + "a\n" + U + "q2\n",
    "u1" + A + "a1" + U + "u2" + A + "a2" + U + "u3",
    "<extra_id_0>System\nsys\n<extra_id_1>User\nu1" + A + "a1" + U + "u2",
])
def test_flatten_parse_round_trip(prompt):
    msgs = parse_helpsteer_prompt(prompt)
    assert flatten_messages(msgs) == prompt
    assert parse_helpsteer_prompt(flatten_messages(msgs)) == msgs


def test_parse_rejects_empty_and_assistant_last():
    with pytest.raises(ValueError):
        parse_helpsteer_prompt("   ")
    with pytest.raises(ValueError):
        parse_helpsteer_prompt("u1" + A + "a1")
    with pytest.raises(ValueError):
        flatten_messages([{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}])


# ---- load_helpsteer -----------------------------------------------------------------------

def test_load_helpsteer_ok(tmp_path):
    path = write_jsonl(tmp_path / "hs.jsonl", [
        hs_row("p" + A + "a" + U + "q", "r1", helpfulness=3.0),
        hs_row("p" + A + "a" + U + "q", "r2", helpfulness=1),
    ])
    rows = load_helpsteer(path)
    assert len(rows) == 2 and isinstance(rows[0], HelpSteerRow)
    assert rows[0].attributes["helpfulness"] == 3 and isinstance(rows[0].attributes["helpfulness"], int)
    assert rows[0].messages[-1] == {"role": "user", "content": "q"}
    assert rows[1].response == "r2"


def test_optional_attributes_kept_as_none(tmp_path):
    row = {"prompt": "p", "response": "r", "helpfulness": 4, "verbosity": None}
    rows = load_helpsteer(write_jsonl(tmp_path / "hs.jsonl", [row]), require=("helpfulness",))
    assert rows[0].attributes == {"helpfulness": 4, "correctness": None, "coherence": None,
                                  "complexity": None, "verbosity": None}
    with pytest.raises(DataError, match="unknown attribute"):
        load_helpsteer(write_jsonl(tmp_path / "hs.jsonl", [row]), require=("kindness",))


@pytest.mark.parametrize("bad, pattern", [
    ({"helpfulness": 5}, r"row 2: field 'helpfulness' must be an integer 0\.\.4, got 5$"),
    ({"helpfulness": 5.5}, r"row 2: field 'helpfulness' must be an integer 0\.\.4, got 5\.5$"),
    ({"correctness": -1}, r"row 2: field 'correctness' must be an integer 0\.\.4, got -1"),
    ({"coherence": True}, r"row 2: field 'coherence' must be an integer 0\.\.4, got True"),
    ({"complexity": "3"}, r"row 2: field 'complexity' must be an integer 0\.\.4, got '3'"),
    ({"verbosity": None}, r"row 2: field 'verbosity' must be an integer 0\.\.4, got None"),
    ({"prompt": ""}, r"row 2: field 'prompt' must be a non-empty string"),
    ({"prompt": "  \n"}, r"row 2: field 'prompt' must be a non-empty string"),
    ({"response": ""}, r"row 2: field 'response' must be a non-empty string"),
    ({"prompt": "u" + A + "a"}, r"row 2: field 'prompt': prompt must end with a user turn"),
])
def test_schema_errors_name_file_and_row(tmp_path, bad, pattern):
    path = write_jsonl(tmp_path / "train.jsonl", [hs_row(), hs_row(**bad)])
    with pytest.raises(DataError, match=pattern) as info:
        load_helpsteer(path)
    assert str(info.value).startswith(f"{path} row 2:")
    assert info.value.exit_code == 3


def test_missing_column_error(tmp_path):
    row = hs_row()
    del row["helpfulness"]
    path = write_jsonl(tmp_path / "train.jsonl", [hs_row(), hs_row(), row])
    with pytest.raises(DataError, match=r"train\.jsonl row 3: missing column 'helpfulness'"):
        load_helpsteer(path)


def test_row_number_shows_line_when_blank_lines(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(hs_row()) + "\n\n" + json.dumps(hs_row(helpfulness=9)) + "\n")
    with pytest.raises(DataError, match=r"row 2 \(line 3\): field 'helpfulness'"):
        load_helpsteer(str(path))


# ---- grouping and pairs -------------------------------------------------------------------

def _row(prompt, response, h):
    return HelpSteerRow(prompt, parse_helpsteer_prompt(prompt), response,
                        {a: (h if a == "helpfulness" else 2) for a in ATTRIBUTES})


def test_grouping():
    rows = [_row("p1", "a", 1), _row("p1", "b", 2), _row("p2", "c", 3), _row("p1", "d", 0)]
    assert [[r.response for r in g] for g in consecutive_groups(rows)] == [["a", "b"], ["c"], ["d"]]
    assert [[r.response for r in g] for g in group_by_prompt(rows)] == [["a", "b", "d"], ["c"]]


def test_pairs_from_ratings():
    rows = [
        _row("p1", "low", 1), _row("p1", "high", 4),      # pair, strength 3
        _row("p2", "x", 2), _row("p2", "y", 2),           # tie -> dropped
        _row("p3" + A + "a" + U + "q", "good", 3), _row("p3" + A + "a" + U + "q", "bad", 2),
        _row("p4", "alone", 4),                           # single response -> nothing
    ]
    pairs = pairs_from_ratings(rows)
    assert pairs == [
        PreferencePair("p1", [{"role": "user", "content": "p1"}], "high", "low", 3.0),
        PreferencePair("p3" + A + "a" + U + "q", rows[4].messages, "good", "bad", 1.0),
    ]


def test_pairs_from_ratings_more_than_two_and_other_attribute():
    rows = [_row("p", "a", 1), _row("p", "b", 3), _row("p", "c", 3)]
    pairs = pairs_from_ratings(rows)
    assert [(p.chosen, p.rejected, p.strength) for p in pairs] == [("b", "a", 2.0), ("c", "a", 2.0)]
    assert pairs_from_ratings(rows, attribute="correctness") == []  # all 2 -> ties
    with pytest.raises(DataError):
        pairs_from_ratings(rows, attribute="nope")


def test_pairs_from_ratings_best_rest_keeps_only_top_rated_chosen():
    rows = [_row("p", "a", 1), _row("p", "b", 4), _row("p", "c", 2), _row("p", "d", 4)]
    got = [(p.chosen, p.rejected, p.strength) for p in pairs_from_ratings(rows, pairing="best_rest")]
    assert sorted(got) == [("b", "a", 3.0), ("b", "c", 2.0), ("d", "a", 3.0), ("d", "c", 2.0)]
    assert {p.chosen for p in pairs_from_ratings(rows, pairing="best_worst")} == {"b", "d"}
    assert len(pairs_from_ratings(rows)) == 5  # all: every untied two ("b"/"d" tie)


def test_pairs_from_loaded_file(tmp_path):
    path = write_jsonl(tmp_path / "hs.jsonl", [hs_row("p", "r1", helpfulness=2), hs_row("p", "r2", helpfulness=4)])
    (pair,) = pairs_from_ratings(load_helpsteer(path))
    assert (pair.chosen, pair.rejected, pair.strength) == ("r2", "r1", 2.0)


# ---- HelpSteer2-Preference ----------------------------------------------------------------

def pref(prompt, r1, r2, s, split="train"):
    return {"prompt": prompt, "response_1": r1, "response_2": r2, "preference_strength": s,
            "preference_statement": "@Response 1 is better", "preference_elaboration": "...",
            "split": split}


def test_preference_sign_convention_and_split(tmp_path):
    path = write_jsonl(tmp_path / "pref.jsonl", [
        pref("p1", "one", "two", -2),                 # negative: response_1 chosen
        pref("p2", "one", "two", 3),                  # positive: response_2 chosen
        pref("p3", "one", "two", 0),                  # dropped
        pref("p4" + A + "a" + U + "q", "one", "two", -1, split="validation"),
    ])
    pairs = load_preference_pairs(path)
    assert [(p.prompt, p.chosen, p.rejected, p.strength) for p in pairs] == [
        ("p1", "one", "two", 2.0), ("p2", "two", "one", 3.0), ("p4" + A + "a" + U + "q", "one", "two", 1.0)]
    assert [p.prompt for p in load_preference_pairs(path, split="train")] == ["p1", "p2"]
    (val,) = load_preference_pairs(path, split="validation")
    assert val.messages == [{"role": "user", "content": "p4"}, {"role": "assistant", "content": "a"},
                            {"role": "user", "content": "q"}]
    with pytest.raises(DataError, match="no rows with split='test'"):
        load_preference_pairs(path, split="test")


@pytest.mark.parametrize("bad, pattern", [
    ({"preference_strength": 4}, r"row 2: field 'preference_strength' must be an integer -3\.\.3, got 4"),
    ({"preference_strength": 1.5}, r"row 2: field 'preference_strength' must be an integer -3\.\.3"),
    ({"response_2": None}, r"row 2: field 'response_2' must be a non-empty string"),
])
def test_preference_errors(tmp_path, bad, pattern):
    row = pref("p", "a", "b", 1)
    row.update(bad)
    path = write_jsonl(tmp_path / "pref.jsonl", [pref("p", "a", "b", 1), row])
    with pytest.raises(DataError, match=pattern):
        load_preference_pairs(path)


def test_preference_missing_column(tmp_path):
    row = pref("p", "a", "b", 1)
    del row["response_2"]
    path = write_jsonl(tmp_path / "pref.jsonl", [pref("p", "a", "b", 1), row])
    with pytest.raises(DataError, match=r"pref\.jsonl row 2: missing column 'response_2'"):
        load_preference_pairs(path)


def test_generic_chosen_rejected(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [
        {"prompt": "p", "chosen": "c", "rejected": "r"},
        {"prompt": "q", "chosen": "c", "rejected": "r", "margin": 2.5},
        {"prompt": "s", "chosen": "c", "rejected": "r", "strength": 0},
    ])
    assert [p.strength for p in load_preference_pairs(path)] == [1.0, 2.5, 0.0]
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r", "margin": -1}])
    with pytest.raises(DataError, match=r"bad\.jsonl row 1: field 'margin' must be a finite number >= 0"):
        load_preference_pairs(bad)
    missing = write_jsonl(tmp_path / "missing.jsonl", [{"prompt": "p", "chosen": "c"}])
    with pytest.raises(DataError, match="row 1: missing column 'rejected'"):
        load_preference_pairs(missing)
