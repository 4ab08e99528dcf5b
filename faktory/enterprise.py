"""Faktory Enterprise features: unique and expiring jobs, batches, job tracking.

These build the payloads and commands that Faktory Enterprise understands; the
open-source server (and the embedded one) store the ``custom`` keys without acting on
them and answer ``BATCH``/``TRACK`` with ``-ERR batch|tracking subsystem is only
available in Faktory Enterprise`` (raised as ``ServerError``).  A push that Enterprise
refuses as a duplicate raises ``NotUniqueError``.

Unique and expiring jobs (keys of the job's ``custom`` hash)::

    job = set_unique(Job("report", 7), unique_for=3600, unique_until="start")
    job = set_expiry(Job("notify", 7), expires_in=300)

Batches (``BATCH NEW`` on entry, ``BATCH COMMIT`` on a clean exit; jobs pushed through
the batch carry its bid in ``custom.bid``)::

    async with Batch(client, description="import", success=Job("import_done")) as batch:
        await batch.push(Job("import_row", 1))
        await batch.push_bulk(Job("import_row", n) for n in range(2, 100))
    status = await batch_status(client, batch.bid)

Tracking (``TRACK SET``/``TRACK GET``), also from inside a job (``progress(ctx, ...)``).

Wire format (the Go client's, ``client/batch.go`` and ``client/tracking.go``):

=====================  ==========================================================
``BATCH NEW {json}``   ``{"parent_bid"?, "description"?, "success"?: job,
                       "complete"?: job}`` (at least one callback) -> the bid
``BATCH OPEN bid``     -> the bid (reopen to add jobs or child batches)
``BATCH COMMIT bid``   -> ``OK``
``BATCH STATUS bid``   -> ``{bid, parent_bid, description, created_at, total,
                       pending, failed, complete_st, success_st}``
``TRACK SET {json}``   ``{"jid", "percent"?, "desc"?, "reserve_until"?}`` -> ``OK``
``TRACK GET jid``      -> ``{jid, percent, desc, state, updated_at}``
=====================  ==========================================================
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Iterable

from faktory.errors import BatchError
from faktory.job import Job, format_at

if TYPE_CHECKING:  # pragma: no cover
    from faktory.client import Client
    from faktory.middleware import JobContext

__all__ = [
    "set_unique", "set_expiry", "UNIQUE_UNTIL",
    "Batch", "BatchStatus", "batch_status", "batch_new", "batch_open", "batch_commit",
    "JobTrack", "track_get", "track_set", "progress", "progress_sync",
    "pack_batch_new", "pack_batch", "pack_track_set", "pack_track_get",
]

#: ``unique_until`` values: release the lock when the job succeeds (default) or starts.
UNIQUE_UNTIL = ("success", "start")


# -- unique and expiring jobs ----------------------------------------------------------

def _custom_of(job: Job | dict[str, Any]) -> dict[str, Any]:
    if isinstance(job, Job):
        custom = dict(job.custom or {})
    elif isinstance(job, dict):
        value = job.get("custom")
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"custom must be a dict, not {type(value).__name__}: {value!r}")
        custom = dict(value or {})
    else:
        raise TypeError(f"a job must be a Job or a dict, not {type(job).__name__}: {job!r}")
    return custom


def _store_custom(job: Job | dict[str, Any], custom: dict[str, Any]) -> None:
    if isinstance(job, Job):
        job.custom = custom
    else:
        job["custom"] = custom


def _seconds(value: object, field_name: str) -> int:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise TypeError(f"{field_name} must be a number of seconds (int or timedelta), got {value!r}")
    if value < 1 or value != int(value):
        raise ValueError(f"{field_name} must be a whole number of seconds >= 1, got {value!r}")
    return int(value)


def set_unique(job: Job | dict[str, Any], unique_for: int | float | timedelta,
               unique_until: str | None = None) -> Any:
    """Make ``job`` unique (Enterprise): no equal job (same jobtype, args and queue) is
    accepted for ``unique_for`` seconds, or until the first one succeeds
    (``unique_until="success"``, the server's default) or starts (``"start"``).  A
    duplicate push raises ``NotUniqueError``.  Sets ``custom.unique_for`` (and
    ``custom.unique_until``); returns ``job``."""
    seconds = _seconds(unique_for, "unique_for")
    if unique_until is not None and unique_until not in UNIQUE_UNTIL:
        raise ValueError(f"unique_until must be 'success' or 'start', got {unique_until!r}")
    custom = _custom_of(job)
    custom["unique_for"] = seconds
    if unique_until is not None:
        custom["unique_until"] = unique_until
    else:
        custom.pop("unique_until", None)
    _store_custom(job, custom)
    return job


def set_expiry(job: Job | dict[str, Any], *, expires_at: datetime | str | None = None,
               expires_in: int | float | timedelta | None = None) -> Any:
    """Make ``job`` expire (Enterprise): a worker fetching it after ``expires_at`` (an
    aware ``datetime`` or RFC 3339 string), or more than ``expires_in`` seconds after it
    was pushed, never gets it.  Exactly one of the two; returns ``job``."""
    if (expires_at is None) == (expires_in is None):
        raise ValueError("give exactly one of expires_at and expires_in")
    custom = _custom_of(job)
    if expires_at is not None:
        try:
            custom["expires_at"] = format_at(expires_at)
        except (TypeError, ValueError) as exc:
            raise type(exc)(str(exc).replace("at must", "expires_at must", 1)) from None
        custom.pop("expires_in", None)
    else:
        custom["expires_in"] = _seconds(expires_in, "expires_in")
        custom.pop("expires_at", None)
    _store_custom(job, custom)
    return job


# -- command framing -------------------------------------------------------------------

def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in " \r\n"):
        raise ValueError(f"{what} must be a non-empty str without spaces or line breaks, got {value!r}")
    return value


def _job_payload(job: Job | dict[str, Any], what: str) -> dict[str, Any]:
    if isinstance(job, Job):
        return dict(job.to_dict())
    if isinstance(job, dict):
        try:
            return dict(Job.from_payload(job).to_dict())
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{what} callback: {exc}") from None
    raise TypeError(f"the {what} callback must be a Job or a dict, not {type(job).__name__}: {job!r}")


def pack_batch_new(*, success: Job | dict[str, Any] | None = None,
                   complete: Job | dict[str, Any] | None = None,
                   description: str | None = None, parent_bid: str | None = None) -> bytes:
    """``BATCH NEW {json}\\r\\n``: keys in the Go client's order (``parent_bid``,
    ``description``, ``success``, ``complete``), absent ones left out."""
    if success is None and complete is None:
        raise ValueError("a batch needs a success or a complete callback job (or both)")
    definition: dict[str, Any] = {}
    if parent_bid is not None:
        definition["parent_bid"] = _check_id(parent_bid, "parent_bid")
    if description is not None:
        if not isinstance(description, str):
            raise TypeError(f"description must be a str, got {description!r}")
        definition["description"] = description
    if success is not None:
        definition["success"] = _job_payload(success, "success")
    if complete is not None:
        definition["complete"] = _job_payload(complete, "complete")
    return f"BATCH NEW {_dumps(definition)}\r\n".encode("ascii")


def pack_batch(subcommand: str, bid: str) -> bytes:
    """``BATCH OPEN|COMMIT|STATUS <bid>\\r\\n``."""
    if subcommand not in ("OPEN", "COMMIT", "STATUS"):
        raise ValueError(f"unknown BATCH subcommand {subcommand!r}")
    return f"BATCH {subcommand} {_check_id(bid, 'bid')}\r\n".encode("utf-8")


def pack_track_set(jid: str, percent: int | None = None, desc: str | None = None,
                   reserve_until: datetime | str | None = None) -> bytes:
    """``TRACK SET {"jid","percent","desc","reserve_until"}\\r\\n`` (absent ones left out)."""
    payload: dict[str, Any] = {"jid": _check_id(jid, "jid")}
    if percent is not None:
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise ValueError(f"percent must be an int from 0 to 100, got {percent!r}")
        payload["percent"] = percent
    if desc is not None:
        if not isinstance(desc, str):
            raise TypeError(f"desc must be a str, got {desc!r}")
        payload["desc"] = desc
    if reserve_until is not None:
        try:
            payload["reserve_until"] = format_at(reserve_until)
        except (TypeError, ValueError) as exc:
            raise type(exc)(str(exc).replace("at must", "reserve_until must", 1)) from None
    return f"TRACK SET {_dumps(payload)}\r\n".encode("ascii")


def pack_track_get(jid: str) -> bytes:
    """``TRACK GET <jid>\\r\\n``."""
    return f"TRACK GET {_check_id(jid, 'jid')}\r\n".encode("utf-8")


def _text(reply: Any) -> str:
    if isinstance(reply, (bytes, bytearray)):
        return reply.decode("utf-8")
    if not isinstance(reply, str):
        raise BatchError(f"unexpected reply {reply!r}")
    return reply


# -- batches ---------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchStatus:
    """``BATCH STATUS``: counts, and the callbacks' states (``complete_st``/``success_st``:
    ``""`` pending, ``"1"`` callback enqueued, ``"2"`` callback succeeded)."""

    bid: str
    total: int = 0
    pending: int = 0
    failed: int = 0
    created_at: str = ""
    description: str = ""
    parent_bid: str = ""
    complete_st: str = ""
    success_st: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_reply(cls, data: dict[str, Any]) -> BatchStatus:
        return cls(bid=str(data.get("bid", "")), total=int(data.get("total") or 0),
                   pending=int(data.get("pending") or 0), failed=int(data.get("failed") or 0),
                   created_at=str(data.get("created_at") or ""),
                   description=str(data.get("description") or ""),
                   parent_bid=str(data.get("parent_bid") or ""),
                   complete_st=str(data.get("complete_st") or ""),
                   success_st=str(data.get("success_st") or ""), raw=dict(data))


async def batch_new(client: Client, *, success: Job | dict[str, Any] | None = None,
                    complete: Job | dict[str, Any] | None = None, description: str | None = None,
                    parent_bid: str | None = None) -> str:
    """``BATCH NEW``: create a batch, return its bid.  Never resent after a dropped
    connection (a second one would create a second batch)."""
    data = pack_batch_new(success=success, complete=complete, description=description,
                          parent_bid=parent_bid)
    return _text(await client._call(data, resend=False))


async def batch_open(client: Client, bid: str) -> str:
    """``BATCH OPEN``: reopen a committed batch to add jobs (or child batches)."""
    return _text(await client._call(pack_batch("OPEN", bid)))


async def batch_commit(client: Client, bid: str) -> None:
    """``BATCH COMMIT``: the batch's callbacks may fire once its jobs are done."""
    await client._call(pack_batch("COMMIT", bid))


async def batch_status(client: Client, bid: str) -> BatchStatus:
    """``BATCH STATUS``."""
    return BatchStatus.from_reply(json.loads(_text(await client._call(pack_batch("STATUS", bid)))))


class Batch:
    """A Faktory Enterprise batch: jobs whose completion fires ``success`` and/or
    ``complete`` callback jobs.

    ``async with Batch(client, success=Job("done")) as batch:`` creates it (``BATCH
    NEW``), lets ``batch.push``/``batch.push_bulk`` add jobs (each gets ``custom.bid``),
    and commits on a clean exit.  When the block raises, the batch is *not* committed:
    its callbacks never fire and Faktory drops it after 30 minutes.  ``parent_bid``
    makes it a child batch.  ``Batch.open(client, bid)`` reopens one to add more jobs.
    """

    def __init__(self, client: Client, *, success: Job | dict[str, Any] | None = None,
                 complete: Job | dict[str, Any] | None = None, description: str | None = None,
                 parent_bid: str | None = None) -> None:
        pack_batch_new(success=success, complete=complete, description=description,
                       parent_bid=parent_bid)  # validates before anything is sent
        self.client = client
        self.success = success
        self.complete = complete
        self.description = description
        self.parent_bid = parent_bid
        self.bid: str | None = None
        self.committed = False

    @classmethod
    async def open(cls, client: Client, bid: str) -> Batch:
        """``BATCH OPEN``: a handle on an existing batch, ready for more pushes."""
        batch = cls.__new__(cls)
        batch.client = client
        batch.success = batch.complete = None
        batch.description = batch.parent_bid = None
        batch.bid = await batch_open(client, bid)
        batch.committed = False
        return batch

    async def create(self) -> str:
        """``BATCH NEW`` (once); returns the bid."""
        if self.bid is None:
            self.bid = await batch_new(self.client, success=self.success, complete=self.complete,
                                       description=self.description, parent_bid=self.parent_bid)
        return self.bid

    def _open_bid(self) -> str:
        if self.bid is None:
            raise BatchError("the batch is not created yet: use 'async with batch' or await batch.create()")
        if self.committed:
            raise BatchError(f"batch {self.bid} is committed: reopen it with Batch.open(client, bid)")
        return self.bid

    def _with_bid(self, job: Job | dict[str, Any], bid: str) -> Job | dict[str, Any]:
        custom = _custom_of(job)
        custom["bid"] = bid
        if isinstance(job, Job):
            job.custom = custom
            return job
        return dict(job, custom=custom)

    async def push(self, job: Job | dict[str, Any]) -> str:
        """Push ``job`` into the batch (sets its ``custom.bid``); returns its jid."""
        return await self.client.push(self._with_bid(job, self._open_bid()))

    async def push_bulk(self, jobs: Iterable[Job | dict[str, Any]],
                        **options: Any) -> dict[str | int, tuple[str, dict[str, Any]]]:
        """``client.push_bulk`` of ``jobs``, each with the batch's bid."""
        bid = self._open_bid()
        return await self.client.push_bulk((self._with_bid(job, bid) for job in jobs), **options)

    async def commit(self) -> None:
        """``BATCH COMMIT`` (once)."""
        bid = self._open_bid()
        await batch_commit(self.client, bid)
        self.committed = True

    async def status(self) -> BatchStatus:
        """``BATCH STATUS`` of this batch."""
        if self.bid is None:
            raise BatchError("the batch is not created yet")
        return await batch_status(self.client, self.bid)

    async def __aenter__(self) -> Batch:
        if self.bid is None:
            await self.create()
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if et is None and not self.committed:
            await self.commit()

    def __repr__(self) -> str:
        state = "committed" if self.committed else ("open" if self.bid else "new")
        return f"<Batch {self.bid or '(not created)'} {state}>"


# -- tracking --------------------------------------------------------------------------

@dataclass(frozen=True)
class JobTrack:
    """``TRACK GET``: a job's state (``unknown``, ``enqueued``, ``working``, ``success``,
    ``failed``, ...), its last reported ``percent`` and ``desc``, and ``updated_at``."""

    jid: str
    state: str = "unknown"
    percent: int | None = None
    desc: str | None = None
    updated_at: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_reply(cls, data: dict[str, Any]) -> JobTrack:
        percent = data.get("percent")
        return cls(jid=str(data.get("jid", "")), state=str(data.get("state") or "unknown"),
                   percent=int(percent) if percent is not None else None,
                   desc=data.get("desc"), updated_at=str(data.get("updated_at") or ""),
                   raw=dict(data))


async def track_get(client: Client, jid: str) -> JobTrack:
    """``TRACK GET <jid>``."""
    return JobTrack.from_reply(json.loads(_text(await client._call(pack_track_get(jid)))))


async def track_set(client: Client, jid: str, percent: int | None = None, desc: str | None = None,
                    reserve_until: datetime | str | None = None) -> None:
    """``TRACK SET``: report a job's progress (``percent`` 0..100, ``desc``) and
    optionally extend its reservation to ``reserve_until`` (an aware datetime)."""
    await client._call(pack_track_set(jid, percent, desc, reserve_until))


def _worker_client(ctx: JobContext) -> Client:
    client: Client | None = getattr(ctx.worker, "client", None)
    if client is None:
        raise RuntimeError("progress() needs a running Worker (ctx.worker.client)")
    return client


async def progress(ctx: JobContext, percent: int | None = None, desc: str | None = None,
                   reserve_until: datetime | str | None = None) -> None:
    """From inside a running job (``ctx`` is its ``JobContext``): ``TRACK SET`` for it,
    through the worker's own connections."""
    await track_set(_worker_client(ctx), ctx.jid, percent, desc, reserve_until)


def progress_sync(ctx: JobContext, percent: int | None = None, desc: str | None = None,
                  reserve_until: datetime | str | None = None, timeout: float = 10.0) -> None:
    """``progress()`` for plain (non-async) job functions, which run in the worker's
    threads: sends it on the worker's event loop and waits up to ``timeout`` seconds."""
    client = _worker_client(ctx)
    loop = getattr(ctx.worker, "loop", None)
    if loop is None:
        raise RuntimeError("progress_sync() needs a running Worker (ctx.worker.loop)")
    data = pack_track_set(ctx.jid, percent, desc, reserve_until)  # bad values raise here
    asyncio.run_coroutine_threadsafe(client._call(data), loop).result(timeout)
