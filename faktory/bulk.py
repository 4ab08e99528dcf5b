"""``push_bulk``'s bookkeeping, with no I/O: chunking the input, encoding a chunk, and
what is known of each job (so that the asyncio ``Client`` and a blocking client share it).

Every job of the input ends up in exactly one of: enqueued (its chunk's reply came and
did not reject it), rejected (by the client's checks or the server: a key of
``BulkState.rejected``), never sent, or unknown (its chunk was sent and no reply came).
"""
from __future__ import annotations

import json
from itertools import islice
from types import ModuleType
from typing import Any, Callable, Iterator

from faktory.errors import BulkPushError
from faktory.job import Job, check_json

__all__ = ["BulkState", "Chunk", "take_chunk", "pack_chunk", "record_reply", "too_big"]

#: ``(index in the input, payload)`` of each job of a chunk.
Chunk = list[tuple[int, dict[str, Any]]]

_decode = json.JSONDecoder().decode


class BulkState:
    """What one ``push_bulk`` call knows so far (see ``BulkPushError``)."""

    __slots__ = ("rejected", "enqueued", "not_enqueued", "unknown", "unknown_jids", "error")

    def __init__(self) -> None:
        self.rejected: dict[str | int, tuple[str, dict[str, Any]]] = {}
        self.enqueued = 0
        self.not_enqueued = 0
        self.unknown = 0
        self.unknown_jids: list[str] = []
        self.error: BaseException | None = None

    def reject(self, jid: Any, index: int, reason: str, payload: dict[str, Any]) -> None:
        """Record a job that will not be enqueued: keyed by its jid, or by its index in the
        input when the jid cannot be a key (not a str, or already a key)."""
        key: str | int = jid if isinstance(jid, str) and jid not in self.rejected else index
        self.rejected[key] = (reason, payload)
        self.not_enqueued += 1

    def not_sent(self, chunk: Chunk, error: BaseException) -> None:
        """The chunk was certainly not written."""
        self.error = self.error or error
        self.not_enqueued += len(chunk)

    def unsure(self, chunk: Chunk, error: BaseException | None = None) -> None:
        """The chunk was sent (or may have been) and no reply came."""
        if error is not None:
            self.error = self.error or error
        self.unknown += len(chunk)
        self.unknown_jids.extend(payload["jid"] for _, payload in chunk)

    def raise_if_failed(self, address: str) -> None:
        """Raise ``BulkPushError`` when a chunk failed for good."""
        if self.error is not None:
            raise BulkPushError(
                f"push_bulk to {address} stopped: {self.error} ({self.enqueued} jobs enqueued, "
                f"{self.not_enqueued} not, {self.unknown} unknown)",
                rejected=self.rejected, enqueued=self.enqueued, not_enqueued=self.not_enqueued,
                unknown=self.unknown, unknown_jids=self.unknown_jids) from self.error


def take_chunk(it: Iterator[tuple[int, Any]], size: int, state: BulkState,
               payload: Callable[[Any], dict[str, Any]]) -> tuple[Chunk, bool]:
    """The next ``size`` items of ``it`` (``enumerate(jobs)``) as payloads, and whether the
    input is exhausted; an item ``payload()`` refuses (``TypeError``/``ValueError``) is
    rejected in ``state`` instead."""
    chunk: Chunk = []
    append = chunk.append
    taken = 0
    for index, item in islice(it, size):
        taken += 1
        if type(item) is Job:
            append((index, item._d))
            continue
        try:
            append((index, payload(item)))
        except (TypeError, ValueError) as exc:
            if isinstance(item, dict):
                state.reject(item.get("jid"), index, str(exc), item)
            else:
                state.reject(None, index, str(exc), {"job": item})
    return chunk, taken < size


def too_big(payload: dict[str, Any], size: int, limit: int) -> str:
    """The reason a job is refused for its size (no byte of it is sent)."""
    return (f"job {payload.get('jid')} ({payload.get('jobtype')}) is {size:,} bytes encoded, over the "
            f"{limit:,}-byte command limit (max_command_bytes, the server's line limit): keep big data "
            "out of jobs (store it, pass a reference)")


def pack_chunk(chunk: Chunk, state: BulkState, codec: ModuleType,
               limit: int | None = None) -> list[tuple[Chunk, bytes]]:
    """``chunk`` as PUSHB commands: one, or (when it encodes to more than ``limit`` bytes)
    several, splitting the chunk in halves until each fits.  Jobs that cannot be encoded,
    or that alone exceed ``limit``, are rejected in ``state`` and left out."""
    if not chunk:
        return []
    pack_pushb = codec.pack_pushb
    try:
        data = pack_pushb([payload for _, payload in chunk])
    except (TypeError, ValueError, OverflowError):
        chunk = _encodable(chunk, state, codec)
        if not chunk:
            return []
        data = pack_pushb([payload for _, payload in chunk])
    if limit is None or len(data) <= limit:
        return [(chunk, data)]
    if len(chunk) == 1:
        index, payload = chunk[0]
        state.reject(payload.get("jid"), index, too_big(payload, len(data) - len(b"PUSHB []\r\n"), limit),
                     payload)
        return []
    half = len(chunk) // 2
    return pack_chunk(chunk[:half], state, codec, limit) + pack_chunk(chunk[half:], state, codec, limit)


def _encodable(chunk: Chunk, state: BulkState, codec: ModuleType) -> Chunk:
    # Some job cannot be encoded: find it (them) and reject it; the rest go on.
    dumps = codec.dumps
    good: Chunk = []
    for index, payload in chunk:
        try:
            dumps(payload)
        except (TypeError, ValueError, OverflowError):
            try:
                check_json(payload, dumps)
                reason = "job is not JSON-serialisable"
            except (TypeError, ValueError, OverflowError) as exc:
                reason = str(exc)
            state.reject(payload.get("jid"), index, reason, payload)
        else:
            good.append((index, payload))
    return good


def record_reply(reply: bytes | None, chunk: Chunk, state: BulkState) -> None:
    """A chunk's PUSHB reply came: ``{jid: reason}`` for the jobs the server refused."""
    if not reply or reply == b"{}":
        state.enqueued += len(chunk)
        return
    errors = _decode(reply.decode("utf-8"))
    if not errors:
        state.enqueued += len(chunk)
        return
    by_jid = {payload.get("jid"): (index, payload) for index, payload in chunk}
    for jid, reason in errors.items():
        index, payload = by_jid.get(jid, (-1, {}))
        state.reject(jid, index, reason, payload)
    state.enqueued += len(chunk) - len(errors)
