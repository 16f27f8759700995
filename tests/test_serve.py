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
    backend = ScriptedBackend(_grader, fail_first=2)
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
    backend = ScriptedBackend(lambda m: "[[A]]")
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
