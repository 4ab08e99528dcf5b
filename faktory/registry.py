"""The jobtype registry: which function runs a fetched job of each jobtype."""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["register_into"]


def register_into(registry: dict[str, Callable[..., Any]], name: Any, fn: Any) -> Any:
    """``register(name, fn)`` / ``@register`` / ``@register("name")`` over ``registry``;
    returns ``fn`` (or the decorator).  Raises ``TypeError`` for a jobtype that is not a
    non-empty str, or a function that is not callable."""
    if callable(name) and fn is None:
        fn, name = name, getattr(name, "__name__", None)
    if fn is None:
        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            registered: Callable[..., Any] = register_into(registry, name if name is not None else func.__name__,
                                                           func)
            return registered
        return decorator
    if not isinstance(name, str) or not name:
        raise TypeError(f"jobtype must be a non-empty str, not {name!r}")
    if not callable(fn):
        raise TypeError(f"job function for {name!r} must be callable, not {fn!r}")
    registry[name] = getattr(fn, "__faktory_task_fn__", fn)  # a Task: its function
    registered: Callable[..., Any] = fn
    return registered
