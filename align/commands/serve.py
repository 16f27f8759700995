"""`align serve MODEL_DIR`: an OpenAI-compatible chat-completions server for a trained model."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "serve", help="serve a model over an OpenAI-compatible /v1/chat/completions",
        description="Serve MODEL (a model dir, hub id or .gguf) at http://HOST:PORT/v1 with OpenAI's chat-completions "
                    "API (POST /v1/chat/completions with usage, finish_reason, stop, seed, n and SSE streaming; "
                    "GET /v1/models). Requests that arrive together are decoded as one batch. --engine hf|vllm decodes "
                    "each batch through that engine (no mid-decode cancellation there; README \"Rollout engines\").\n\n"
                    "example:\n  align serve runs/quickstart/sft/model --port 8000\n"
                    "  curl http://127.0.0.1:8000/v1/chat/completions -d "
                    "'{\"model\": \"sft\", \"messages\": [{\"role\": \"user\", \"content\": \"Add 2 and 3.\"}]}'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model directory, hub id or .gguf file")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    p.add_argument("--name", help="model name reported by /v1/models (default: the directory name)")
    p.add_argument("--max-tokens", type=int, default=512, help="cap on max_tokens per request")
    p.add_argument("--max-batch", type=int, default=32, help="answers decoded together at most")
    p.add_argument("--batch-wait", type=float, default=0.02, help="seconds to wait for more requests to batch")
    p.add_argument("--engine", choices=["native", "hf", "vllm"], default="native",
                   help="how answers are decoded (default native: the project's loop, which drops a cancelled "
                        "request mid-decode; hf: transformers.generate; vllm: `make install-vllm`)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: the cores this process may use)")
    p.set_defaults(func=run)


def run(args) -> int:
    import logging
    import os

    from align.engines import INSTALL_HINT, vllm_available
    from align.errors import ConfigError

    if args.engine == "vllm" and not vllm_available():  # before loading anything: exit 2, the fix named
        raise ConfigError([f"--engine vllm needs the vllm package, which is not installed: {INSTALL_HINT}"],
                          "align serve")
    import torch

    from evals.server import ChatServer, load_backend

    # One worker thread decodes; torch's pool gets the cores (left to itself on a busy machine it
    # can oversubscribe them and run several times slower).
    torch.set_num_threads(args.threads or max(1, len(os.sched_getaffinity(0))))
    backend = load_backend(args.model, args.name, engine=args.engine, batch_size=args.max_batch)
    server = ChatServer(backend, args.host, args.port, max_tokens=args.max_tokens, max_batch=args.max_batch,
                        batch_wait_s=args.batch_wait)
    logging.getLogger("align").info("serving %s at %s (engine %s)", backend.name, server.base_url, args.engine)
    print(f"serving {backend.name} at {server.base_url} (engine {args.engine})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
