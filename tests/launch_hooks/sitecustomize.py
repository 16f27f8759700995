"""Test hooks for launched stage processes (tests/test_deepspeed.py puts this folder on PYTHONPATH).

The runner starts each distributed stage in fresh processes, out of reach of pytest's
monkeypatch; Python imports `sitecustomize` at start-up, so these hooks reach them. Each
does nothing unless its environment variable is set.

- ALIGN_TEST_STOP_AT_STEP=N: every rank raises KeyboardInterrupt when optimizer step N+1
  starts (a run killed mid-stage, to test resuming).
- ALIGN_TEST_ZERO3_PARTITION_ALL=1: DeepSpeed ZeRO-3 keeps no parameter whole between uses
  (by default parameters under 1e5 elements stay gathered, and a tiny test model has no
  others, which would hide any rank-0-only use of partitioned weights).
"""
import os

if os.environ.get("ALIGN_TEST_STOP_AT_STEP"):
    from align.trainers import base as _base

    _check_finite = _base.BaseTrainer._check_finite

    def _stop(self, loss, _step=int(os.environ["ALIGN_TEST_STOP_AT_STEP"])):
        if self.global_step == _step:
            raise KeyboardInterrupt(f"test hook: stopped at step {_step}")
        return _check_finite(self, loss)

    _base.BaseTrainer._check_finite = _stop

if os.environ.get("ALIGN_TEST_ZERO3_PARTITION_ALL"):
    from accelerate.utils import dataclasses as _accelerate_dataclasses

    _post_init = _accelerate_dataclasses.DeepSpeedPlugin.__post_init__

    def _partition_all(self):
        _post_init(self)
        self.deepspeed_config.setdefault("zero_optimization", {}).update(
            stage3_param_persistence_threshold=0, stage3_max_live_parameters=0, stage3_max_reuse_distance=0)

    _accelerate_dataclasses.DeepSpeedPlugin.__post_init__ = _partition_all
