"""Import an optional dependency, or fail with an error naming the extra that installs it."""
from __future__ import annotations

import importlib
from types import ModuleType

from faktory.errors import MissingExtraError

__all__ = ["require"]


def require(module: str, extra: str, feature: str) -> ModuleType:
    """``importlib.import_module(module)``; ``MissingExtraError`` (an ``ImportError``)
    naming ``pip install 'faktory-turbo[extra]'`` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(feature, extra, module) from exc
