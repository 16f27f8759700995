"""Sources (jsonl/json/parquet/save_to_disk/hub), prompts and conversations loaders."""
from __future__ import annotations

import json

import pytest

from align.attributes import ATTRIBUTES
from align.errors import DataError
from align.data import (
    describe_source, load_conversations, load_helpsteer, load_preference_pairs, load_prompts,
    load_rows,
)

A, U = "\n<extra_id_1>Assistant\n", "\n<extra_id_1>User\n"
ROWS = [
    {"prompt": "p1", "response": "r1", **{a: 3 for a in ATTRIBUTES}},
    {"prompt": "p1", "response": "r2", **{a: 1 for a in ATTRIBUTES}},
    {"prompt": "u" + A + "a" + U + "p2", "response": "r3", **{a: 4 for a in ATTRIBUTES}},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def all_formats(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {"jsonl": write_jsonl(tmp_path / "d.jsonl", ROWS)}
    (tmp_path / "d.json").write_text(json.dumps(ROWS))
    paths["json"] = str(tmp_path / "d.json")
    (tmp_path / "wrapped.json").write_text(json.dumps({"data": ROWS}))
    paths["json_data"] = str(tmp_path / "wrapped.json")
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet")
    paths["parquet"] = str(tmp_path / "d.parquet")
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    paths["dir"] = str(tmp_path / "ds")
    return paths


def test_all_formats_give_same_rows(all_formats):
    for kind, path in all_formats.items():
        assert load_rows(path) == ROWS, kind
        rows = load_helpsteer(path)
        assert [r.response for r in rows] == ["r1", "r2", "r3"], kind
        assert rows[2].messages[-1] == {"role": "user", "content": "p2"}


def test_dataset_dict_dir_with_split(tmp_path):
    import datasets

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS[:2]),
                               "validation": datasets.Dataset.from_list(ROWS[2:])})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert load_rows(str(tmp_path / "dd")) == ROWS[:2]               # default "train"
    assert load_rows(str(tmp_path / "dd"), split="validation") == ROWS[2:]
    assert [r.response for r in load_helpsteer(str(tmp_path / "dd"), split="validation")] == ["r3"]
    with pytest.raises(DataError, match=r"no split 'test' \(available: train, validation\)"):
        load_rows(str(tmp_path / "dd"), split="test")


def test_preference_dataset_dict_with_split_column(tmp_path):
    """HelpSteer2-Preference stores one split with a `split` column; split= filters it."""
    import datasets

    rows = [{"prompt": "p", "response_1": "a", "response_2": "b", "preference_strength": -1, "split": s}
            for s in ("train", "validation", "validation")]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "pref"))
    assert len(load_preference_pairs(str(tmp_path / "pref"), split="validation")) == 2
    assert len(load_preference_pairs(str(tmp_path / "pref"))) == 3


def test_schema_error_in_parquet_names_file_and_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [dict(r) for r in ROWS]
    rows[1]["helpfulness"] = 5.5
    rows = [{**r, "helpfulness": float(r["helpfulness"])} for r in rows]
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(DataError, match=r"train\.parquet row 2: field 'helpfulness' must be an integer 0\.\.4, got 5\.5"):
        load_helpsteer(str(path))


def test_bad_json_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1]) + "\n{not json\n")
    with pytest.raises(DataError, match=r"broken\.jsonl line 3: invalid JSON"):
        load_rows(str(path))


def test_json_file_errors(tmp_path):
    (tmp_path / "obj.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(DataError, match="expected a JSON list"):
        load_rows(str(tmp_path / "obj.json"))
    (tmp_path / "nums.json").write_text(json.dumps([ROWS[0], 3]))
    with pytest.raises(DataError, match=r"nums\.json row 2: expected an object"):
        load_rows(str(tmp_path / "nums.json"))
    (tmp_path / "bad.json").write_text("[\n{},\n{oops}\n]")
    with pytest.raises(DataError, match=r"bad\.json line 3: invalid JSON"):
        load_rows(str(tmp_path / "bad.json"))


def test_missing_file_and_bad_source(tmp_path):
    missing = str(tmp_path / "nope" / "train.jsonl")
    with pytest.raises(DataError, match=f"file not found: {missing}"):
        load_rows(missing)
    with pytest.raises(DataError, match="data source not found"):
        load_rows("not a source")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported file type"):
        load_rows(str(tmp_path / "x.csv"))
    with pytest.raises(DataError, match="not a datasets save_to_disk directory"):
        load_rows(str(tmp_path))


def test_hub_id_offline_gives_data_error(monkeypatch):
    import datasets
    import huggingface_hub.constants

    # Offline mode makes the failure immediate instead of waiting on network retries.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    with pytest.raises(DataError, match=r"nvidia/no-such-dataset-xyz.*may be offline"):
        load_rows("nvidia/no-such-dataset-xyz")
    with pytest.raises(DataError, match=r"nvidia/HelpSteer2 \(data_dir=preference\).*offline"):
        load_preference_pairs("nvidia/HelpSteer2", split="validation")


def test_describe_source(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    assert describe_source(path) == f"file {path}"
    assert describe_source("nvidia/HelpSteer2", "train", "preference") == \
        "hub dataset nvidia/HelpSteer2 [preference] split train"


# ---- prompts ------------------------------------------------------------------------------

def test_load_prompts_all_shapes(tmp_path):
    path = write_jsonl(tmp_path / "prompts.jsonl", [
        {"prompt": "u" + A + "a" + U + "q"},
        {"prompt": "u"},                       # duplicates are kept
        {"prompt": "u"},
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "m"}]},
        {"question_id": 81, "category": "writing", "turns": ["t1", "t2"]},
    ])
    assert load_prompts(path) == [
        [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}],
        [{"role": "user", "content": "u"}],
        [{"role": "user", "content": "u"}],
        [{"role": "system", "content": "s"}, {"role": "user", "content": "m"}],
        [{"role": "user", "content": "t1"}],
    ]


@pytest.mark.parametrize("row, pattern", [
    ({"prompt": ""}, r"row 2: field 'prompt' must be a non-empty string"),
    ({"turns": []}, r"row 2: field 'turns' must be a non-empty list"),
    ({"turns": [" "]}, r"row 2: field 'turns\[0\]' must be a non-empty string"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
     r"row 2: field 'messages' must end with a user message"),
    ({"messages": [{"role": "user", "content": ""}]}, r"row 2: field 'messages\[0\]\.content'"),
    ({"text": "hi"}, r"row 2: expected a 'prompt', 'messages' or 'turns' column \(columns: text\)"),
])
def test_load_prompts_errors(tmp_path, row, pattern):
    path = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "ok"}, row])
    with pytest.raises(DataError, match=pattern):
        load_prompts(path)


# ---- conversations ------------------------------------------------------------------------

def test_load_conversations(tmp_path):
    conv = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"}]
    path = write_jsonl(tmp_path / "sft.jsonl", [
        {"messages": conv},
        {"prompt": "u" + A + "a1" + U + "q2", "response": "final", "helpfulness": 4},
    ])
    assert load_conversations(path) == [conv, [
        {"role": "user", "content": "u"}, {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"}, {"role": "assistant", "content": "final"}]]


@pytest.mark.parametrize("row, pattern", [
    ({"messages": [{"role": "user", "content": "q"}]}, r"field 'messages' must end with an assistant message, got user"),
    ({"messages": [{"role": "bot", "content": "q"}]}, r"field 'messages\[0\]\.role'"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"},
                   {"role": "assistant", "content": "a"}]}, r"field 'messages\[1\]\.role'"),
    ({"messages": [{"role": "assistant", "content": "a"}]}, r"has no user message"),
    ({"messages": "hello"}, r"field 'messages' must be a non-empty list"),
    ({"prompt": "p", "response": " "}, r"field 'response' must be a non-empty string"),
    ({"prompt": "p"}, r"expected a 'messages' column or 'prompt' and 'response'"),
])
def test_load_conversations_errors(tmp_path, row, pattern):
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    path = write_jsonl(tmp_path / "sft.jsonl", [good, row])
    with pytest.raises(DataError, match=r"sft\.jsonl row 2: .*(" + pattern + ")"):
        load_conversations(path)
