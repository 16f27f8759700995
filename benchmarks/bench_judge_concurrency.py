"""LLM-judge throughput: bounded concurrency (evals.openai_client.ChatEndpoint.chat_many) vs one
request at a time, on the same questions, answers, judge prompts and HTTP server.

The judge is a ScriptedBackend behind the real `align serve` HTTP server, with a fixed
per-request latency standing in for a remote judge (--latency seconds; a hosted GPT-4-class
judge typically takes seconds). The figure is judgements per second; the ratio approaches
the concurrency while the judge, not the client, is the bottleneck.

run: .venv/bin/python benchmarks/bench_judge_concurrency.py [--questions 20] [--concurrency 8] [--latency 0.5]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

PROMPTS = [{"name": n, "system_prompt": "Grade.", "prompt_template": t, "output_format": "[[rating]]"} for n, t in (
    ("single-v1", "{question}\n{answer}"), ("single-math-v1", "{question}\n{ref_answer_1}\n{answer}"),
    ("single-v1-multi-turn", "{question_1}\n{answer_1}\n{question_2}\n{answer_2}"),
    ("single-math-v1-multi-turn", "{question_1}\n{answer_1}\n{question_2}\n{ref_answer_2}\n{answer_2}"))]


class _Slow:
    """A judge with a fixed latency per call, however many requests the server batches into it
    (a remote API serves concurrent requests in parallel)."""

    name = "slow-judge"
    context_length = None

    def __init__(self, latency: float):
        self.latency = latency

    def count_tokens(self, messages):
        return 1

    def run(self, jobs):
        from evals.server import Choice

        time.sleep(self.latency)
        for job in jobs:
            job.choices = [Choice("Rating: [[7]]", "stop", 3)] * job.n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--latency", type=float, default=0.5)
    args = ap.parse_args()

    import threading

    from align.io_utils import write_jsonl
    from evals.judge_prompts import load_judge_prompts
    from evals.judges import LLMJudge
    from evals.openai_client import ChatEndpoint
    from evals.server import ChatServer
    from evals.world_suite import make_world_suite

    qs = make_world_suite(per_category=max(1, args.questions // 7))[: args.questions]
    answers = [q.reference for q in qs]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.jsonl"
        write_jsonl(path, PROMPTS)
        prompts = load_judge_prompts(str(path))
    server = ChatServer(_Slow(args.latency), "127.0.0.1", 0)
    server.lock = _NoLock()  # the scripted judge is thread-safe; a real remote judge is not behind our lock
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        timings = {}
        for label, conc in (("baseline (1 in flight)", 1), (f"ours ({args.concurrency} in flight)", args.concurrency)):
            judge = LLMJudge(ChatEndpoint(server.base_url, "slow-judge", concurrency=conc), prompts)
            t0 = time.perf_counter()
            ratings = judge.score(qs, answers)
            dt = time.perf_counter() - t0
            n = sum(len(r) for r in ratings)
            assert all(x == 7.0 for r in ratings for x in r)
            timings[label] = n / dt
            print(f"{label}: {n} judgements in {dt:.2f}s = {n / dt:.1f} judgements/s")
        base, ours = timings.values()
        print(f"ratio ours/baseline: {ours / base:.2f}x (judge latency {args.latency}s)")
    finally:
        server.shutdown()
        server.server_close()


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
