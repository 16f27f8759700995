"""`align serve`'s server over real HTTP on 127.0.0.1, with the LLM judge as its client."""
import json
import re
import urllib.error
import urllib.request

import pytest

from evals.answers import EndpointChatModel, generate_answers
from evals.judge_prompts import load_judge_prompts
from evals.judges import LLMJudge
from evals.openai_client import ChatEndpoint, EndpointError
from evals.pairwise import llm_pairwise
from evals.questions import Question
from evals.server import ChatServer, LocalModelBackend, ScriptedBackend

# Our own judge prompts in MT-Bench's judge-prompt schema (the real file is read from the package).
PROMPTS = [
    {"name": "single-v1", "system_prompt": "You grade answers.", "output_format": "[[rating]]",
     "prompt_template": "Q: {question}\nA: {answer}\nGive [[rating]]."},
    {"name": "single-math-v1", "system_prompt": "You grade answers.", "output_format": "[[rating]]",
     "prompt_template": "Q: {question}\nREF: {ref_answer_1}\nA: {answer}\nGive [[rating]]."},
    {"name": "single-v1-multi-turn", "system_prompt": "You grade answers.", "output_format": "[[rating]]",
     "prompt_template": "Q1: {question_1}\nA1: {answer_1}\nQ2: {question_2}\nA: {answer_2}\nGive [[rating]]."},
    {"name": "single-math-v1-multi-turn", "system_prompt": "You grade answers.", "output_format": "[[rating]]",
     "prompt_template": "Q1: {question_1}\nA1: {answer_1}\nQ2: {question_2}\nREF: {ref_answer_2}\nA: {answer_2}\n"
                        "Give [[rating]]."},
    {"name": "pair-v2", "system_prompt": "Compare.", "output_format": "[[A]]",
     "prompt_template": "Q: {question}\nA: {answer_a}\nB: {answer_b}"},
]


@pytest.fixture
def judge_prompts(tmp_path):
    path = tmp_path / "judge_prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    return load_judge_prompts(str(path))


def _grader(messages):
    """A judge that is right: 9 when the graded answer contains 'good', 2 otherwise; garbage for 'weird'."""
    answer = re.findall(r"A: (.*)", messages[-1]["content"])[-1]
    if "weird" in answer:
        return "I cannot decide on a number."
    return "Fine. Rating: [[9]]" if "good" in answer else "Rating: [2]"


@pytest.fixture
def scripted_server():
    backend = ScriptedBackend(_grader, name="judge")
    server = ChatServer(backend, "127.0.0.1", 0)
    server.start_background()
    yield server, backend
    server.shutdown()
    server.server_close()


def test_llm_judge_over_http(scripted_server, judge_prompts):
    server, backend = scripted_server
    judge = LLMJudge(ChatEndpoint(server.base_url, "judge", concurrency=3), judge_prompts)
    qs = [Question(1, "writing", ["Write.", "Again."]), Question(2, "math", ["2+2?", "Times 3?"], ["4", "12"])]
    ratings = judge.score(qs, [["good text", "bad text"], ["good 4", "a weird reply"]])
    assert ratings == [[9.0, 2.0], [9.0, -1.0]]  # [[9]], fallback [2], unparseable -> -1
    sent = {m[-1]["content"] for m in backend.requests}
    assert len(backend.requests) == 4
    assert any("REF: 12" in s and "A: a weird reply" in s for s in sent)  # math turn 2 uses the reference
    assert not any("REF" in s for s in sent if "Write." in s)  # writing has no reference
    assert all(m[0] == {"role": "system", "content": "You grade answers."} for m in backend.requests)


def test_retries_with_backoff_then_fail(judge_prompts):
    backend = ScriptedBackend(_grader, name="judge", fail_first=2)
    server = ChatServer(backend, "127.0.0.1", 0)
    server.start_background()
    try:
        ok = ChatEndpoint(server.base_url, "judge", retries=2, backoff=0.01)
        assert LLMJudge(ok, judge_prompts).score([Question(1, "stem", ["Q"])], [["good"]]) == [[9.0]]
        backend.fail_first = 5
        with pytest.raises(EndpointError, match="503"):
            ChatEndpoint(server.base_url, "judge", retries=1, backoff=0.01).chat([{"role": "user", "content": "x"}])
    finally:
        server.shutdown()
        server.server_close()


def test_api_key_comes_from_env_and_missing_key_is_an_error(scripted_server, monkeypatch):
    server, _ = scripted_server
    ep = ChatEndpoint(server.base_url, "judge", api_key_env="STEERALIGN_TEST_KEY")
    monkeypatch.delenv("STEERALIGN_TEST_KEY", raising=False)
    with pytest.raises(EndpointError, match="STEERALIGN_TEST_KEY"):
        ep.chat([{"role": "user", "content": "A: good"}])
    monkeypatch.setenv("STEERALIGN_TEST_KEY", "secret-value")
    assert ep.chat([{"role": "user", "content": "A: good"}]) == "Fine. Rating: [[9]]"


def test_openai_wire_format(scripted_server):
    server, _ = scripted_server
    with urllib.request.urlopen(server.base_url + "/models") as r:
        assert json.load(r)["data"][0]["id"] == "judge"
    body = json.dumps({"model": "judge", "messages": [{"role": "user", "content": "A: good"}], "n": 2}).encode()
    req = urllib.request.Request(server.base_url + "/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        data = json.load(r)
    assert data["object"] == "chat.completion" and len(data["choices"]) == 2
    assert data["choices"][1]["message"] == {"role": "assistant", "content": "Fine. Rating: [[9]]"}
    bad = urllib.request.Request(server.base_url + "/chat/completions", data=b'{"messages": "hi"}',
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(bad)
    assert err.value.code == 400


def test_pairwise_position_swap_over_http(judge_prompts):
    # A judge with position bias: always prefers the answer shown first -> every verdict is a tie.
    backend = ScriptedBackend(lambda m: "[[A]]", name="j")
    server = ChatServer(backend, "127.0.0.1", 0)
    server.start_background()
    try:
        judge = LLMJudge(ChatEndpoint(server.base_url, "j"), judge_prompts)
        q = [Question(1, "writing", ["Write."])]
        assert llm_pairwise(judge, q, [["x"]], [["y"]]) == ["tie"]
        shown = sorted(m[-1]["content"] for m in backend.requests)  # requests run concurrently
        assert shown == ["Q: Write.\nA: x\nB: y", "Q: Write.\nA: y\nB: x"]  # the swap really happened
        backend.respond = lambda m: "[[A]]" if "A: good" in m[-1]["content"] else "[[B]]"  # a fair judge
        assert llm_pairwise(judge, q, [["good"]], [["y"]]) == ["A"]
        assert llm_pairwise(judge, q, [["y"]], [["good"]]) == ["B"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from align.config.model_spec import ModelSpec, TinyModelSpec
    from align.models import load_model, save_model
    from align.world.generator import generate_world

    root = tmp_path_factory.mktemp("served")
    paths = generate_world(root / "world", prompts=200, test_prompts=20)
    spec = ModelSpec(tiny=TinyModelSpec(hidden_size=32, layers=2, heads=2), tokenizer=str(paths["tokenizer"]))
    model, tok = load_model(spec, seed=0)
    return str(save_model(model, tok, root / "model"))


def test_served_model_answers_like_local_and_judges(tiny_model_dir, judge_prompts):
    """A real model behind the server: the HTTP answers equal local greedy generation, and the
    same served model acting as the judge yields a rating or -1 for every turn (never a crash)."""
    from align.generation import SamplingConfig, generate

    backend = LocalModelBackend.load(tiny_model_dir, "tiny")
    server = ChatServer(backend, "127.0.0.1", 0, max_tokens=12)
    server.start_background()
    try:
        ep = ChatEndpoint(server.base_url, "tiny", concurrency=2)
        qs = [Question(1, "add", ["What is 2 plus 3?", "Now double that result."]),
              Question(2, "copy", ["Repeat the word cat.", "Say the word dog."])]
        answers = generate_answers(qs, EndpointChatModel(ep, max_new_tokens=12))
        local = generate(backend.model, backend.tokenizer, [[{"role": "user", "content": q.turns[0]}] for q in qs],
                         SamplingConfig(max_new_tokens=12, batch_size=1))
        assert [a[0] for a in answers] == [x[0] for x in local]
        ratings = LLMJudge(ep, judge_prompts, max_tokens=12).score(qs, answers)
        assert all(r == -1.0 or 1.0 <= r <= 10.0 for row in ratings for r in row) and len(ratings[0]) == 2
    finally:
        server.shutdown()
        server.server_close()


def test_evaluate_keeps_the_judges_words_in_fastchats_schema(scripted_server, judge_prompts, tmp_path):
    """Judgement rows carry the rendered judge prompt, the raw judgement and FastChat's `score`; one
    `<judge>_single.jsonl` holds every model, read as FastChat's show_result.py reads it."""
    import pandas as pd

    from evals.pipeline import GenerationSettings, ModelUnderTest, evaluate

    server, backend = scripted_server
    # one server plays both parts: it grades judge prompts and answers a question by repeating it
    backend.respond = lambda m: _grader(m) if "A: " in m[-1]["content"] else m[-1]["content"]
    judge = LLMJudge(ChatEndpoint(server.base_url, "judge"), judge_prompts)
    qs = [Question(1, "writing", ["Write good.", "Again."]), Question(2, "stem", ["Say weird."])]
    models = [ModelUnderTest(n, endpoint=ChatEndpoint(server.base_url, "judge")) for n in ("m1", "m2")]
    evaluate(models, qs, judge, tmp_path, gen=GenerationSettings(max_new_tokens=16))
    rows = [json.loads(x) for x in (tmp_path / "judgements" / "m1.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and {"question_id", "model", "judge", "user_prompt", "judgment", "score", "turn",
                               "tstamp"} <= set(rows[0])
    first = rows[0]
    assert first["judge"] == ["llm:judge", "single-v1"] and first["user_prompt"].startswith("Q: Write good.")
    assert first["judgment"] == _grader([{"content": first["user_prompt"]}])  # the judge's reply, verbatim
    assert rows[1]["judge"][1] == "single-v1-multi-turn"
    df = pd.read_json(tmp_path / "judgements" / "llm_judge_single.jsonl", lines=True)  # show_result.py's read
    df = df[["model", "score", "turn"]]
    df = df[df["score"] != -1]
    assert set(df["model"]) == {"m1", "m2"} and len(df.groupby(["model", "turn"]).mean()) == 4


def test_pairwise_errors_are_dropped_and_counted(judge_prompts, tmp_path):
    """A judge that never gives a verdict: no win rate (FastChat drops errors), not 0.5 from 16 'ties'."""
    from evals.pipeline import ModelUnderTest, evaluate

    backend = ScriptedBackend(lambda m: "I cannot decide." if "\nB: " in m[-1]["content"]
                              else "[[5]]" if "A: " in m[-1]["content"] else "an answer", name="j")
    server = ChatServer(backend, "127.0.0.1", 0)
    server.start_background()
    try:
        judge = LLMJudge(ChatEndpoint(server.base_url, "j"), judge_prompts)
        qs = [Question(i, "writing", ["Write."]) for i in range(4)]
        models = [ModelUnderTest(n, endpoint=ChatEndpoint(server.base_url, "j")) for n in ("a", "b")]
        results = evaluate(models, qs, judge, tmp_path, pairwise_baseline="b")
        assert results["a"]["pairwise/b/error"] == 4 and results["a"]["pairwise/b/valid"] == 0
        assert "pairwise/b/win_rate" not in results["a"]
        assert "no valid verdict" in (tmp_path / "report.md").read_text()
    finally:
        server.shutdown()
        server.server_close()


def test_answers_use_fastchats_per_category_temperatures():
    from evals.answers import fastchat_temperature
    from evals.pipeline import GenerationSettings

    class Recorder:
        def __init__(self):
            self.calls = []

        def complete(self, conversations, *, temperature):
            self.calls.append((temperature, len(conversations)))
            return ["answer"] * len(conversations)

    qs = [Question(1, "writing", ["a", "b"]), Question(2, "math", ["c", "d"]), Question(3, "stem", ["e"]),
          Question(4, "my-own", ["f"])]
    rec = Recorder()
    answers = generate_answers(qs, rec, GenerationSettings().temperature_for)
    assert answers == [["answer", "answer"], ["answer", "answer"], ["answer"], ["answer"]]
    assert rec.calls == [(0.0, 1), (0.1, 1), (0.7, 2), (0.0, 1), (0.7, 1)]  # turn 1 by temperature, then turn 2
    assert [fastchat_temperature(c) for c in ("roleplay", "extraction", "humanities", "coding")] == [0.7, 0, 0.1, 0]
    assert GenerationSettings().max_new_tokens == 1024 and GenerationSettings(temperature=0.0).temperature_for(qs[0]) == 0


def test_a_slow_judge_makes_the_run_slower_not_fail():
    """A server that answers one request at a time, slower than the client's timeout allows for
    four queued requests: timed-out requests come back with a longer timeout and fewer in flight."""
    import time as _time

    def slow(messages):
        _time.sleep(0.3)
        return "[[7]]"

    server = ChatServer(ScriptedBackend(slow, name="j"), "127.0.0.1", 0)
    server.start_background()
    try:
        ep = ChatEndpoint(server.base_url, "j", timeout=0.5, retries=4, backoff=0.01, concurrency=4)
        convs = [[{"role": "user", "content": f"q{i}"}] for i in range(6)]
        assert ep.chat_many(convs) == ["[[7]]"] * 6
        assert ep._limit < 4  # it slowed down
    finally:
        server.shutdown()
        server.server_close()
