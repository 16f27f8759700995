"""Stage kinds. Importing this package registers the built-in ones.

Configs and glue live here and import torch lazily, so validating a recipe is fast.
"""
from align.stages.base import STAGE_KINDS, Stage, StageConfig, register_stage

# Built-in kinds: importing a module registers its stage.
from align.stages import world as _world  # noqa: F401,E402
from align.stages import tokenizer as _tokenizer  # noqa: F401,E402
from align.stages import sft as _sft  # noqa: F401,E402
from align.stages import reward_model as _reward_model  # noqa: F401,E402
from align.stages import steerability as _steerability  # noqa: F401,E402
from align.stages import steerlm_sft as _steerlm_sft  # noqa: F401,E402
from align.stages import steerlm2 as _steerlm2  # noqa: F401,E402
from align.stages import mtbench as _mtbench  # noqa: F401,E402
from align.stages import dpo as _dpo  # noqa: F401,E402
from align.stages import ppo as _ppo  # noqa: F401,E402

__all__ = ["STAGE_KINDS", "Stage", "StageConfig", "register_stage"]
