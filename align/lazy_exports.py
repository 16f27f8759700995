"""Package-root names that load their module on first use (PEP 562), so `import align` stays light
(no torch) and `align run --dry-run` stays fast while `from align import DPOTrainer` works."""
from __future__ import annotations

import importlib


def lazy_exports(package: str, namespace: dict, exports: dict[str, str]):
    """(__getattr__, __dir__) for a package whose `exports` map public names to defining modules."""

    def __getattr__(name: str):
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
