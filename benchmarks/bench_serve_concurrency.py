"""`align serve` under load: 20 concurrent chat requests vs the same 20 one after another.

Both go through the official `openai` client to one server on one model, with the same
prompts and settings (greedy, fixed max_tokens); concurrent requests are decoded together
by the server's batching worker, sequential ones one at a time. Prints the wall time of
each (median over repeats), the ratio and the batch sizes the server formed.
Model: runs/quickstart/sft/model if present (run the quickstart first), else a tiny random
Llama on a freshly generated world tokenizer.

run: .venv/bin/python benchmarks/bench_serve_concurrency.py [--requests 20] [--max-tokens 32]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def model_dir(path: str, tmp: Path) -> str:
    if Path(path).exists():
        return path
    from align.config.model_spec import ModelSpec, TinyModelSpec
    from align.models import load_model, save_model
    from align.world.generator import generate_world

    generate_world(tmp / "w", prompts=100, test_prompts=32)
    model, tok = load_model(ModelSpec(tiny=TinyModelSpec(hidden_size=128, layers=4), tokenizer=str(tmp / "w/tokenizer")))
    return str(save_model(model, tok, tmp / "model"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="runs/quickstart/sft/model")
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import openai

    from evals.server import ChatServer, LocalModelBackend

    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalModelBackend.load(model_dir(args.model, Path(tmp)), "m")
        server = ChatServer(backend, "127.0.0.1", 0, max_tokens=args.max_tokens)
        server.start_background()
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=600)
        prompts = [f"What is {k % 6} plus {k // 6 % 6}?" for k in range(args.requests)]

        def ask(text: str) -> str:
            return client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}],
                                                  max_tokens=args.max_tokens, temperature=0).choices[0].message.content

        try:
            ask(prompts[0])  # warm-up
            seq, conc = [], []
            for _ in range(args.repeats):  # interleaved, so load on the machine hits both alike
                t0 = time.perf_counter()
                one_by_one = [ask(p) for p in prompts]
                seq.append(time.perf_counter() - t0)
                start = len(server.worker.batches)
                t0 = time.perf_counter()
                with ThreadPoolExecutor(max_workers=args.requests) as pool:
                    together = list(pool.map(ask, prompts))
                conc.append(time.perf_counter() - t0)
                batches = server.worker.batches[start:]
                assert together == one_by_one, "batched greedy answers differ from one-by-one ones"
        finally:
            server.shutdown()
            server.server_close()
    s, c = statistics.median(seq), statistics.median(conc)
    print(f"{args.requests} requests, max_tokens {args.max_tokens}, median of {args.repeats}")
    print(f"  ours (concurrent, batched):  {c:.2f} s  (server batches: {batches})")
    print(f"  baseline (sequential):       {s:.2f} s")
    print(f"  ratio: {s / c:.2f}x faster")


if __name__ == "__main__":
    main()
