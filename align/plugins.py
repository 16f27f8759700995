"""User trainers named by a recipe: `trainer: my_pkg.simpo:SimPOTrainer` on a training stage.

A stage kind that trains (sft, reward_model, steerlm_sft, steerlm2, dpo, ppo) builds its
built-in trainer class unless the recipe names another one. The named class must subclass
that stage's trainer (`Stage.trainer_base`), so the stage can construct and drive it exactly
as it drives its own; its extra settings are a pydantic model, the class's `Options`, filled
from the stage's `trainer_options` and validated with the rest of the recipe, before any
compute. The trainer reads them as `self.options` (set right after construction).

A spec is `package.module:Class` (importable from the current directory or sys.path) or
`path/to/file.py:Class` (a path relative to the current directory, like every path in a
recipe). Nothing is imported unless a recipe names it.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from pydantic import BaseModel, ValidationError

_loaded: dict[str, object] = {}


class PluginError(Exception):
    """A trainer spec that cannot be used; the message says why (no traceback for the user)."""


def split_spec(spec: str) -> tuple[str, str]:
    module, sep, name = spec.rpartition(":")
    if not sep or not module or not name.isidentifier():
        raise PluginError(f"{spec!r} is not 'package.module:Class' or 'path/to/file.py:Class'")
    return module, name


def plugin_file(spec: str | None) -> Path | None:
    """The .py file a spec names (for the stage fingerprint), else None."""
    if not spec or ":" not in spec:
        return None
    module = spec.rpartition(":")[0]
    return Path(module).expanduser() if module.endswith(".py") else None


def _import_module(module: str):
    if module.endswith(".py"):
        path = Path(module).expanduser().resolve()
        if not path.is_file():
            raise PluginError(f"file not found: {module} (relative paths are taken from the current directory, "
                              f"{Path.cwd()})")
        key = f"align_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        if key in sys.modules:
            return sys.modules[key]
        spec = importlib.util.spec_from_file_location(key, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[key] = mod  # dataclasses and pickling look classes up by module
        try:
            spec.loader.exec_module(mod)
        except Exception as exc:
            del sys.modules[key]
            raise PluginError(f"importing {module} failed: {type(exc).__name__}: {exc}") from None
        return mod
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # as `python -m` would: the user's package beside the recipe
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise PluginError(f"cannot import module {module!r}: {exc} (is it on PYTHONPATH, or in the current "
                          "directory?)") from None
    except Exception as exc:
        raise PluginError(f"importing {module} failed: {type(exc).__name__}: {exc}") from None


def load_object(spec: str):
    """The object `spec` names, imported once per process."""
    if spec in _loaded:
        return _loaded[spec]
    module, name = split_spec(spec)
    mod = _import_module(module)
    if not hasattr(mod, name):
        raise PluginError(f"{module} has no {name!r}")
    _loaded[spec] = obj = getattr(mod, name)
    return obj


def load_builtin(spec: str):
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def trainer_class(stage_cls, config) -> type:
    """The trainer class a stage builds: the recipe's `trainer`, checked against the stage's base class."""
    base = load_builtin(stage_cls.trainer_base)
    spec = getattr(config, "trainer", None)
    if not spec:
        return base
    cls = load_object(spec)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        what = f"class {cls.__module__}.{cls.__qualname__}" if isinstance(cls, type) else f"a {type(cls).__name__}"
        raise PluginError(f"{spec} is {what}, not a subclass of {base.__module__}.{base.__qualname__}, "
                          f"the trainer of stage kind {stage_cls.kind!r}")
    return cls


def trainer_options(cls: type, values: dict) -> BaseModel | None:
    """The class's `Options` filled from `values` (None when the class declares none and none are given)."""
    options_cls = getattr(cls, "Options", None)
    if options_cls is None:
        if values:
            raise PluginError(f"{cls.__qualname__} takes no trainer_options (it declares no Options); got "
                              f"{', '.join(sorted(values))}")
        return None
    return options_cls.model_validate(values)


def trainer_problems(stage_cls, config) -> list[str]:
    """Recipe problems of a stage's trainer choice (the runner reports them with the stage's path)."""
    if not getattr(stage_cls, "trainer_base", None):
        return []
    spec = getattr(config, "trainer", None)
    values = getattr(config, "trainer_options", None) or {}
    if not spec and values:
        return ["trainer_options: given without `trainer`; the built-in trainer takes its settings from the "
                "stage's own fields"]
    try:
        cls = trainer_class(stage_cls, config)
        options = trainer_options(cls, values)
    except PluginError as exc:
        return [f"trainer: {exc}"]
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            out.append(f"trainer_options{'.' + loc if loc else ''}: {err['msg']} (got {err.get('input')!r}) "
                       f"[{spec}]")
        return out
    check = getattr(cls, "check_config", None)  # a trainer's own rules on the stage's fields
    return [f"trainer: {p} [{spec}]" for p in check(config, options)] if check else []


def build_trainer(stage_cls, config, *args, **kwargs):
    """Construct the stage's trainer (built-in or the recipe's) and hand it its validated options."""
    cls = trainer_class(stage_cls, config)
    trainer = cls(*args, **kwargs)
    trainer.options = trainer_options(cls, getattr(config, "trainer_options", None) or {})
    return trainer
