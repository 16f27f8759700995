"""`align serve` against the official `openai` client: the API's promises, its errors, batching."""
import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from evals.server import ChatServer, LocalModelBackend, ScriptedBackend

openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory):
    from align.config.model_spec import ModelSpec, TinyModelSpec
    from align.models import load_model, save_model
    from align.world.generator import generate_world

    root = tmp_path_factory.mktemp("serve")
    paths = generate_world(root / "world", prompts=60, test_prompts=5)
    spec = ModelSpec(tiny=TinyModelSpec(hidden_size=32, layers=2, heads=2, max_position_embeddings=128),
                     tokenizer=str(paths["tokenizer"]))
    model, tok = load_model(spec, seed=0)
    backend = LocalModelBackend.load(str(save_model(model, tok, root / "model")), "tiny")
    server = ChatServer(backend, "127.0.0.1", 0, max_tokens=512, batch_wait_s=0.05)
    server.start_background()
    yield server
    server.shutdown()
    server.server_close()


def _client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=60)


ASK = [{"role": "user", "content": "What is 2 plus 3?"}]


def test_usage_finish_reason_seed_stop_n_and_streaming(tiny_server):
    client = _client(tiny_server)
    cut = client.chat.completions.create(model="tiny", messages=ASK, max_tokens=3, temperature=1.0, seed=1)
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 3
    assert cut.usage.prompt_tokens > 0 and cut.usage.total_tokens == cut.usage.prompt_tokens + 3
    again = client.chat.completions.create(model="tiny", messages=ASK, max_tokens=3, temperature=1.0, seed=1)
    assert again.choices[0].message.content == cut.choices[0].message.content  # a seed repeats the sample
    unseeded = {client.chat.completions.create(model="tiny", messages=ASK, max_tokens=8, temperature=1.0)
                .choices[0].message.content for _ in range(4)}
    assert len(unseeded) > 1  # no fixed seed behind the scenes
    two = client.chat.completions.create(model="tiny", messages=ASK, max_tokens=8, n=2, temperature=1.0, seed=3)
    assert [c.index for c in two.choices] == [0, 1]
    full = client.chat.completions.create(model="tiny", messages=ASK, max_tokens=12, temperature=0)
    text = full.choices[0].message.content
    words = text.split()
    if len(words) > 2:  # a stop string cuts the answer where it first occurs and ends it with "stop"
        stopped = client.chat.completions.create(model="tiny", messages=ASK, max_tokens=12, temperature=0,
                                                 stop=[words[1]])
        assert stopped.choices[0].message.content == text[: text.find(words[1])]
        assert stopped.choices[0].finish_reason == "stop"
    stream = client.chat.completions.create(model="tiny", messages=ASK, max_tokens=12, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == full.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert client.models.retrieve("tiny").id == "tiny"
    # max_tokens past the model's 128 positions: clamped to the room the prompt leaves
    long = client.chat.completions.create(model="tiny", messages=ASK, max_tokens=100_000, temperature=0)
    assert long.usage.prompt_tokens + long.usage.completion_tokens <= 128


@pytest.mark.parametrize("body, status, param", [
    ({"max_tokens": -1}, 400, "max_tokens"),
    ({"max_tokens": 0}, 400, "max_tokens"),
    ({"n": -2}, 400, "n"),
    ({"n": 0}, 400, "n"),
    ({"top_p": 0}, 400, "top_p"),
    ({"temperature": 5}, 400, "temperature"),
    ({"messages": []}, 400, "messages"),
    ({"messages": [{"role": "user", "content": None}]}, 400, "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, 400, "messages"),
    ({"messages": "hi"}, 400, "messages"),
    ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ({"logprobs": True}, 400, "logprobs"),
    ({"frequency_penalty": 0.5}, 400, "presence_penalty"),
    ({"tools": []}, 400, "tools"),
    ({"model": "gpt-4"}, 404, "model"),
    ({"messages": [{"role": "user", "content": "word " * 400}]}, 400, "messages"),
])
def test_malformed_requests_get_openai_errors(tiny_server, body, status, param):
    payload = {"model": "tiny", "messages": ASK, **body}
    req = urllib.request.Request(tiny_server.base_url + "/chat/completions", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == status
    error = json.loads(err.value.read())["error"]
    assert error["message"] and error["type"] and (error["param"] or "").startswith(param), error


def test_content_parts_and_not_json(tiny_server):
    client = _client(tiny_server)
    parts = client.chat.completions.create(model="tiny", max_tokens=4, temperature=0, messages=[
        {"role": "user", "content": [{"type": "text", "text": "What is 2 plus 3?"}]}])
    plain = client.chat.completions.create(model="tiny", max_tokens=4, temperature=0, messages=ASK)
    assert parts.choices[0].message.content == plain.choices[0].message.content
    req = urllib.request.Request(tiny_server.base_url + "/chat/completions", data=b"{not json",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 400 and "error" in json.loads(err.value.read())
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4")


def test_concurrent_requests_are_decoded_together(tiny_server):
    client = _client(tiny_server)
    before = len(tiny_server.worker.batches)
    out = [None] * 8

    def ask(k):
        out[k] = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": f"Add {k} and 1."}],
                                                max_tokens=6, temperature=0).choices[0].message.content

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(o is not None for o in out)
    assert max(tiny_server.worker.batches[before:]) > 1  # not one request at a time


def test_a_request_whose_client_left_is_not_decoded():
    def respond(messages):
        if messages[-1]["content"] == "slow":
            time.sleep(1.0)
        return "ok"

    backend = ScriptedBackend(respond, name="s")
    server = ChatServer(backend, "127.0.0.1", 0, batch_wait_s=0.0)
    server.start_background()
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=30)
        slow = threading.Thread(target=lambda: client.chat.completions.create(
            model="s", messages=[{"role": "user", "content": "slow"}]))
        slow.start()
        time.sleep(0.2)  # the worker is busy with "slow"
        impatient = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=0.3)
        with pytest.raises(openai.APITimeoutError):
            impatient.chat.completions.create(model="s", messages=[{"role": "user", "content": "gone"}])
        slow.join()
        time.sleep(0.3)
        assert [m[-1]["content"] for m in backend.requests] == ["slow"]  # "gone" was dropped, never decoded
    finally:
        server.shutdown()
        server.server_close()


def test_a_request_cancelled_while_decoding_leaves_its_batch(tmp_path):
    """The client gives up while its answer is being decoded: its rows leave the batch at the next
    step instead of running to max_tokens."""
    from align.config.model_spec import ModelSpec, TinyModelSpec
    from align.models import load_model, save_model
    from align.world.generator import generate_world

    paths = generate_world(tmp_path / "world", prompts=60, test_prompts=5)
    model, tok = load_model(ModelSpec(tiny=TinyModelSpec(hidden_size=64, layers=2, heads=2, max_position_embeddings=2048),
                                      tokenizer=str(paths["tokenizer"])), seed=0)
    backend = LocalModelBackend.load(str(save_model(model, tok, tmp_path / "model")), "t")
    server = ChatServer(backend, "127.0.0.1", 0, max_tokens=2000, batch_wait_s=0.0)
    server.start_background()
    try:
        patient = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=120)
        t0 = time.monotonic()
        full = patient.chat.completions.create(model="t", messages=ASK, max_tokens=2000, temperature=1.0, seed=5)
        took = time.monotonic() - t0
        ran = server.worker.recent[-1].decoded_tokens  # the same seed: the same tokens, up to the cut
        assert ran > 100, (ran, took)  # a long random answer, so the impatient client leaves mid-decode
        # leave halfway through, whatever this machine's decode speed (a fixed 0.2 s outlasted it on a fast one)
        impatient = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=took / 2)
        with pytest.raises(openai.APITimeoutError):
            impatient.chat.completions.create(model="t", messages=ASK, max_tokens=2000, temperature=1.0, seed=5)
        deadline = time.monotonic() + 60
        while not (server.worker.recent and server.worker.recent[-1].cancelled) and time.monotonic() < deadline:
            time.sleep(0.05)
        job = server.worker.recent[-1]
        assert job.cancelled and 0 < job.decoded_tokens < ran and full.usage.completion_tokens <= ran
    finally:
        server.shutdown()
        server.server_close()


def test_serve_through_the_hf_engine_answers_like_native(tmp_path, capsys):
    """`align serve --engine hf`: the same greedy answers as the native loop, the same API (n, seed,
    max_tokens cut, batching of concurrent requests); `--engine vllm` without vllm is exit 2, fix named."""
    import torch

    from align.cli import main
    from align.config.model_spec import ModelSpec, TinyModelSpec
    from align.engines import HFEngine, vllm_available
    from align.models import load_model, save_model
    from align.world.generator import generate_world
    from evals.server import EngineBackend, load_backend

    paths = generate_world(tmp_path / "world", prompts=60, test_prompts=5)
    model, tok = load_model(ModelSpec(tiny=TinyModelSpec(hidden_size=32, layers=2, heads=2, max_position_embeddings=128),
                                      tokenizer=str(paths["tokenizer"])), seed=0)
    with torch.no_grad():
        model.lm_head.weight.mul_(30)  # peaked logits: greedy ties cannot flip between the two decoders
    path = str(save_model(model, tok, tmp_path / "model"))
    servers = {e: ChatServer(load_backend(path, "t", engine=e), "127.0.0.1", 0, batch_wait_s=0.05)
               for e in ("native", "hf")}
    assert isinstance(servers["hf"].backend, EngineBackend) and isinstance(servers["hf"].backend.engine, HFEngine)
    try:
        for s in servers.values():
            s.start_background()
        clients = {e: openai.OpenAI(base_url=s.base_url, api_key="x", max_retries=0, timeout=60)
                   for e, s in servers.items()}
        asks = [[{"role": "user", "content": f"Add {k} and 2."}] for k in range(4)] + [ASK]
        greedy = {e: [c.chat.completions.create(model="t", messages=m, max_tokens=10, temperature=0).choices[0]
                      for m in asks] for e, c in clients.items()}
        assert [(c.message.content, c.finish_reason) for c in greedy["hf"]] == \
               [(c.message.content, c.finish_reason) for c in greedy["native"]]
        hf = clients["hf"]
        cut = hf.chat.completions.create(model="t", messages=ASK, max_tokens=3, temperature=1.0, seed=1)
        assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 3
        two = hf.chat.completions.create(model="t", messages=ASK, max_tokens=8, n=2, temperature=1.0, seed=3)
        again = hf.chat.completions.create(model="t", messages=ASK, max_tokens=8, n=2, temperature=1.0, seed=3)
        assert [c.index for c in two.choices] == [0, 1]
        assert [c.message.content for c in two.choices] == [c.message.content for c in again.choices]
        before = len(servers["hf"].worker.batches)
        threads = [threading.Thread(target=hf.chat.completions.create, kwargs={
            "model": "t", "messages": m, "max_tokens": 6, "temperature": 0}) for m in asks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert max(servers["hf"].worker.batches[before:]) > 1  # requests that arrive together: one engine call
    finally:
        for s in servers.values():
            s.shutdown()
            s.server_close()
    if not vllm_available():
        assert main(["serve", path, "--engine", "vllm", "--port", "0"]) == 2
        err = capsys.readouterr().err
        assert "make install-vllm" in err and "Traceback" not in err
