"""Queue order: which queues a worker's next FETCH asks for, and in what order.

``queues=`` of a ``Worker`` is one of

* a sequence of names: strict order (the first non-empty queue wins, every time);
* a mapping ``{name: weight}``: weighted random order, drawn afresh for every FETCH
  (``weighted_shuffle``), so a queue of weight 3 comes first three times as often as one
  of weight 1 and no queue starves;
* a callable returning the list for each FETCH.

``queue_order(spec)`` turns it into a function returning the packed FETCH command.
"""
from __future__ import annotations

import random
from types import ModuleType
from typing import Callable, Mapping, Sequence, Union

from faktory import protocol
from faktory.job import validate_queue

__all__ = ["QueueSpec", "queue_order", "weighted_shuffle"]

#: ``queues=``: a sequence (strict order), a mapping ``{name: weight}`` (weighted random
#: order, reshuffled for every FETCH) or a callable returning the list for each FETCH.
QueueSpec = Union[Sequence[str], Mapping[str, float], Callable[[], Sequence[str]]]


def _weighted_order(names: Sequence[str], inverse: Mapping[str, float], rand: Callable[[], float]) -> list[str]:
    # Efraimidis and Spirakis: sort by u ** (1/w), largest first.
    return sorted(names, key=lambda name: rand() ** inverse[name], reverse=True)


def weighted_shuffle(weights: Mapping[str, float], rng: random.Random | None = None) -> list[str]:
    """Order ``weights``' names at random, each pick weighted among those still left.

    A name is first with probability ``weight / sum(weights)``; equal weights give a
    uniformly random permutation.
    """
    return _weighted_order(list(weights), {name: 1.0 / w for name, w in weights.items()},
                           (rng or random).random)


class _StrictOrder:
    __slots__ = ("names", "command")

    def __init__(self, names: Sequence[str], codec: ModuleType) -> None:
        self.names = tuple(names)
        self.command: bytes = codec.pack_fetch(self.names)

    def __call__(self) -> bytes:
        return self.command

    def describe(self) -> str:
        return ", ".join(self.names) + " (strict order)"


class _WeightedOrder:
    __slots__ = ("weights", "names", "_rand", "_pack", "_inverse")

    def __init__(self, weights: Mapping[str, float], codec: ModuleType, rng: random.Random | None) -> None:
        self.weights = dict(weights)
        self.names = tuple(self.weights)
        self._rand = (rng or random.Random()).random
        self._pack = codec.pack_fetch
        self._inverse = {name: 1.0 / weight for name, weight in self.weights.items()}
        codec.pack_fetch(self.names)  # validates the names once

    def __call__(self) -> bytes:
        data: bytes = self._pack(_weighted_order(self.names, self._inverse, self._rand))
        return data

    def describe(self) -> str:
        return ", ".join(f"{n}={w:g}" for n, w in self.weights.items()) + " (weighted random order)"


class _CallableOrder:
    __slots__ = ("fn", "names", "_pack")

    def __init__(self, fn: Callable[[], Sequence[str]], codec: ModuleType) -> None:
        self.fn = fn
        self.names: tuple[str, ...] = ()
        self._pack = codec.pack_fetch

    def __call__(self) -> bytes:
        names = list(self.fn())
        for name in names:
            validate_queue(name, f"queues: a queue name from {getattr(self.fn, '__qualname__', self.fn)!s}")
        data: bytes = self._pack(names)
        return data

    def describe(self) -> str:
        return f"chosen by {getattr(self.fn, '__qualname__', self.fn)!s} for each fetch"


def queue_order(spec: QueueSpec, codec: ModuleType | None = None,
                rng: random.Random | None = None) -> Callable[[], bytes]:
    """Turn a ``queues=`` value into a function returning the FETCH command to send next
    (with a ``describe()`` method for logs).

    Raises ``ValueError``/``TypeError`` for an empty list, a name that is no valid queue
    name (``[a-zA-Z0-9._-]+``: no FETCH of it could succeed) or a weight <= 0.
    """
    codec = codec or protocol.codec
    if isinstance(spec, str):
        raise TypeError(f"queues must be a sequence of names, not the string {spec!r}")
    if isinstance(spec, Mapping):
        if not spec:
            raise ValueError("queues: at least one queue is needed")
        for name, weight in spec.items():
            validate_queue(name, "queues: each queue name")
            if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not weight > 0:
                raise ValueError(f"queue {name!r}: weight must be a number > 0, not {weight!r}")
        return _WeightedOrder(spec, codec, rng)
    if callable(spec):
        return _CallableOrder(spec, codec)
    names = list(spec)
    if not names:
        raise ValueError("queues: at least one queue is needed")
    for name in names:
        validate_queue(name, "queues: each queue name")
    if len(set(names)) != len(names):
        raise ValueError(f"queues: duplicate names in {names!r}")
    return _StrictOrder(names, codec)
