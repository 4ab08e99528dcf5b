"""``Job``: a validated Faktory job payload, and a builder for one.

A ``Job`` holds its wire payload as a plain dict (``to_dict()``), built once at
construction; the properties validate on assignment and write straight into that
dict, so pushing a job never copies or re-validates it.  Validation is cheap and
local (types, ranges, the queue name, the ``at`` timestamp); whether ``args`` and
``custom`` are JSON-serialisable is checked when the job is encoded for sending
(``Client.push``), still before any byte leaves the process.

Priority: Faktory has no per-job priority since server 0.9.6 (a ``priority`` field
is silently dropped by the server).  ``Job`` therefore *rejects* it: there is no
``priority`` argument or property, and ``Job.from_payload`` refuses a payload that
carries one.  Order work with the queue list given to ``fetch`` instead.
"""
from __future__ import annotations

import os
import random
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from faktory.client import Client

__all__ = ["Job", "generate_jid", "validate_queue", "check_json", "KWARGS_KEY", "job_kwargs"]

_QUEUE_RE = re.compile(r"[a-zA-Z0-9._-]+")
# RFC 3339 (the subset Go's time.RFC3339Nano parses): date, 'T', time, optional 1-9
# fraction digits, and a zone that is either 'Z' or +hh:mm / -hh:mm.
_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})"
)
# Job ids come from a generator of their own, seeded from os.urandom: application code
# that calls random.seed() (tests often do) must not make processes push the same jids.
# A forked child reseeds it, as the standard library does for the module-level one.
_jid_rng = random.Random()
_randbytes = _jid_rng.randbytes
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_jid_rng.seed)
_MIN_JID = 8
_RESERVE_MIN = 60
_RESERVE_MAX = 86400

# Queue names already validated (bounded, so a stream of distinct names cannot grow it).
_valid_queues: set[str] = {"default"}
_VALID_QUEUES_MAX = 4096


def generate_jid() -> str:
    """A fresh random job id: 24 hex characters (96 random bits).

    From a private ``random.Random`` seeded from ``os.urandom`` (and reseeded in a forked
    child), not ``os.urandom`` per job: jids must be unique, not secret, and this is about
    three times cheaper than a system call per job.  ``random.seed()`` does not affect it."""
    return _randbytes(12).hex()


def validate_queue(queue: object, field: str = "queue") -> str:
    """Return ``queue`` if it is a valid Faktory queue name (``[a-zA-Z0-9._-]+``).

    Raises ``TypeError`` (not a str) or ``ValueError`` (bad characters), naming ``field``.
    """
    if type(queue) is str and queue in _valid_queues:
        return queue
    if not isinstance(queue, str):
        raise TypeError(f"{field} must be a str, not {type(queue).__name__}: {queue!r}")
    if _QUEUE_RE.fullmatch(queue) is None:
        raise ValueError(f"{field} must match [a-zA-Z0-9._-]+, got {queue!r}")
    if len(_valid_queues) < _VALID_QUEUES_MAX:
        _valid_queues.add(queue)
    return queue


def _check_int(value: object, field: str) -> int:
    if type(value) is not int:  # bool is an int subclass: refuse it too
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{field} must be an int, not {type(value).__name__}: {value!r}")
        value = int(value)
    return value


def _check_jid(jid: object) -> str:
    if not isinstance(jid, str):
        raise TypeError(f"jid must be a str, not {type(jid).__name__}: {jid!r}")
    if len(jid) < _MIN_JID:
        raise ValueError(f"jid must be at least {_MIN_JID} characters, got {jid!r}")
    return jid


def _check_jobtype(jobtype: object) -> str:
    if not isinstance(jobtype, str):
        raise TypeError(f"jobtype must be a str, not {type(jobtype).__name__}: {jobtype!r}")
    if not jobtype:
        raise ValueError("jobtype must not be empty, got ''")
    return jobtype


def _check_args(args: object) -> list[Any]:
    if type(args) is list:
        return args
    if isinstance(args, (list, tuple)):
        return list(args)
    raise TypeError(f"args must be a list or tuple, not {type(args).__name__}: {args!r}")


def _check_retry(retry: object) -> int:
    retry = _check_int(retry, "retry")
    if retry < -1:
        raise ValueError(f"retry must be -1 (straight to dead), 0 (no retry) or more, got {retry!r}")
    return retry


def _check_reserve_for(value: object) -> int | None:
    if value is None:
        return None
    value = _check_int(value, "reserve_for")
    if not _RESERVE_MIN <= value <= _RESERVE_MAX:
        raise ValueError(f"reserve_for must be between {_RESERVE_MIN} and {_RESERVE_MAX} seconds, got {value!r}")
    return value


def _check_backtrace(value: object) -> int | None:
    if value is None:
        return None
    value = _check_int(value, "backtrace")
    if value < 0:
        raise ValueError(f"backtrace must be >= 0, got {value!r}")
    return value


def _check_custom(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"custom must be a dict, not {type(value).__name__}: {value!r}")
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"custom keys must be str, got {key!r} in custom={value!r}")
    return value


def format_at(at: object) -> str | None:
    """Validate ``at`` (aware ``datetime`` or RFC 3339 string with a zone) and return
    it as an RFC 3339 string with a zone (``datetime`` values are converted to UTC, ``Z``)."""
    if at is None:
        return None
    if isinstance(at, datetime):
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"at must be a timezone-aware datetime, got naive {at!r}")
        text = at.astimezone(timezone.utc).isoformat()
        return text[:-6] + "Z"  # isoformat of a UTC datetime ends with +00:00
    if isinstance(at, str):
        match = _RFC3339_RE.fullmatch(at)
        if match is None:
            raise ValueError(
                f"at must be an RFC 3339 timestamp with a zone (e.g. 2030-01-01T00:00:00Z), got {at!r}"
            )
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        zone = match.group(8)
        try:
            datetime(year, month, day, hour, minute, second)
            if zone != "Z" and (int(zone[1:3]) > 23 or int(zone[4:6]) > 59):
                raise ValueError(zone)
        except ValueError:
            raise ValueError(f"at is not a valid RFC 3339 timestamp: {at!r}") from None
        return at
    raise TypeError(f"at must be an aware datetime or an RFC 3339 str, not {type(at).__name__}: {at!r}")


def check_json(payload: dict[str, Any], dumps: Any) -> None:
    """Raise a ``TypeError``/``ValueError`` naming the field of ``payload`` that ``dumps``
    cannot encode (called after encoding the whole payload failed)."""
    for field in ("args", "custom"):
        if field in payload:
            try:
                dumps(payload[field])
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{field} is not JSON-serialisable ({exc}): {payload[field]!r}") from None
    for field, value in payload.items():
        try:
            dumps(value)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{field} is not JSON-serialisable ({exc}): {value!r}") from None


#: The key of a job's ``custom`` hash that carries its keyword arguments.  Faktory's
#: ``args`` is a JSON list, so a task pushed with keyword arguments that cannot travel
#: positionally (keyword-only parameters, ``**kwargs``) sends them as
#: ``custom["kwargs"] = {name: value}``; the worker calls ``fn(*args, **kwargs)``.
KWARGS_KEY = "kwargs"


def job_kwargs(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The keyword arguments a job payload carries (``custom["kwargs"]``), or None."""
    custom = payload.get("custom")
    if custom:
        kwargs = custom.get(KWARGS_KEY)
        if type(kwargs) is dict and kwargs:
            return kwargs
    return None


_OPTIONAL_CHECKS = (("at", format_at), ("reserve_for", _check_reserve_for),
                    ("custom", _check_custom), ("backtrace", _check_backtrace))


class Job:
    """One Faktory job: a builder with validated fields, and the payload sent by PUSH.

    ``Job("SendEmail", 42, "hi", queue="mail")``.  Every field is checked when it is
    given or assigned, and a bad value raises ``TypeError``/``ValueError`` naming the
    field and the value, before anything is sent:

    - ``jid``: str of at least 8 characters; generated (24 random hex digits) when omitted.
    - ``jobtype``: non-empty str.  ``args``: positional arguments (JSON-serialisable,
      checked when the job is encoded for sending).
    - ``queue``: matches ``[a-zA-Z0-9._-]+`` (default ``"default"``).
    - ``retry``: int >= -1, default 25, *always* sent (0 = discard on failure, -1 =
      straight to the dead set).
    - ``at``: aware ``datetime`` or an RFC 3339 string with a zone; sent as RFC 3339
      with a zone (datetimes in UTC with ``Z``).  The property returns that string.
    - ``reserve_for``: seconds, 60..86400, or None for the server's default (1800).
    - ``custom``: dict with str keys (keys starting ``_`` are reserved by Faktory).
    - ``backtrace``: int >= 0, lines of backtrace to keep on failure, or None.

    There is no ``priority``: the server dropped per-job priority (0.9.6) and strips the
    field, so passing one raises ``TypeError`` rather than being silently lost.
    """

    __slots__ = ("_d", "client")

    def __init__(
        self,
        jobtype: str,
        *args: Any,
        client: Client | None = None,
        jid: str | None = None,
        queue: str = "default",
        retry: int = 25,
        at: datetime | str | None = None,
        reserve_for: int | None = None,
        custom: dict[str, Any] | None = None,
        backtrace: int | None = None,
    ) -> None:
        if type(jobtype) is not str or not jobtype:
            _check_jobtype(jobtype)
        d: dict[str, Any] = {
            "jid": generate_jid() if jid is None else _check_jid(jid),
            "jobtype": jobtype,
            "args": list(args),
            "queue": queue if queue == "default" else validate_queue(queue),
            "retry": retry if type(retry) is int and retry >= -1 else _check_retry(retry),
        }
        if at is not None:
            d["at"] = format_at(at)
        if reserve_for is not None:
            d["reserve_for"] = _check_reserve_for(reserve_for)
        if custom is not None:
            d["custom"] = _check_custom(custom)
        if backtrace is not None:
            d["backtrace"] = _check_backtrace(backtrace)
        self._d = d
        self.client = client

    # -- construction from a payload -------------------------------------------------
    @classmethod
    def from_payload(cls, payload: dict[str, Any], *, client: Client | None = None,
                     validate: bool = True) -> Job:
        """A ``Job`` around a copy of ``payload`` (a dict as sent or fetched).

        With ``validate`` (the default) every known field is checked as in the
        constructor (a missing ``jid`` is generated, a missing ``retry`` set to 25,
        a missing ``queue`` to ``"default"``, a ``datetime`` ``at`` formatted); the
        server's own fields (``created_at``, ``enqueued_at``, ``failure``) are kept.
        ``validate=False`` trusts the payload (e.g. one just fetched from the server).
        """
        if not isinstance(payload, dict):
            raise TypeError(f"a job payload must be a dict, not {type(payload).__name__}: {payload!r}")
        job = cls.__new__(cls)
        job.client = client
        d = dict(payload)
        job._d = d
        if not validate:
            return job
        # Inline fast paths for well-formed payloads (push_bulk of dicts calls this per
        # job); the _check_* helpers only run to build the error or normalise a value.
        get = d.get
        jid = get("jid")
        if jid is None:
            d["jid"] = generate_jid()
        elif type(jid) is not str or len(jid) < _MIN_JID:
            _check_jid(jid)
        jobtype = get("jobtype")
        if type(jobtype) is not str or not jobtype:
            if jobtype is None:
                raise ValueError(f"jobtype is required, missing from {payload!r}")
            _check_jobtype(jobtype)
        args = get("args")
        if type(args) is not list:
            if args is None:
                raise ValueError(f"args is required (use [] for none), missing from {payload!r}")
            d["args"] = _check_args(args)
        queue = get("queue")
        if queue is None or queue == "":
            d["queue"] = "default"
        elif type(queue) is not str or queue not in _valid_queues:
            validate_queue(queue)
        retry = get("retry")
        if retry is None:
            d["retry"] = 25
        elif type(retry) is not int or retry < -1:
            d["retry"] = _check_retry(retry)
        if len(d) > 5:  # anything beyond the five fields every job has
            if "priority" in d:
                raise ValueError(
                    f"priority is not supported (Faktory dropped per-job priority; use queue order): "
                    f"priority={d['priority']!r}")
            for key, check in _OPTIONAL_CHECKS:
                if key in d:
                    value = check(d[key])
                    if value is None:
                        del d[key]
                    else:
                        d[key] = value
        return job

    def to_dict(self) -> dict[str, Any]:
        """The wire payload (the job's own dict: copy it before changing it)."""
        return self._d

    # -- validated properties --------------------------------------------------------
    @property
    def jid(self) -> str:
        """The job id (at least 8 characters)."""
        jid: str = self._d["jid"]
        return jid

    @jid.setter
    def jid(self, value: str) -> None:
        self._d["jid"] = _check_jid(value)

    @property
    def jobtype(self) -> str:
        """The job type: the name a worker registered its function under."""
        jobtype: str = self._d["jobtype"]
        return jobtype

    @jobtype.setter
    def jobtype(self, value: str) -> None:
        self._d["jobtype"] = _check_jobtype(value)

    @property
    def args(self) -> list[Any]:
        """Positional arguments of the job (a list)."""
        args: list[Any] = self._d["args"]
        return args

    @args.setter
    def args(self, value: Iterable[Any]) -> None:
        self._d["args"] = _check_args(value)

    @property
    def queue(self) -> str:
        """The queue name (``[a-zA-Z0-9._-]+``)."""
        return self._d.get("queue") or "default"

    @queue.setter
    def queue(self, value: str) -> None:
        self._d["queue"] = validate_queue(value)

    @property
    def retry(self) -> int:
        """How many times the job is retried after failures (always sent; default 25)."""
        value = self._d.get("retry")
        return 25 if value is None else value

    @retry.setter
    def retry(self, value: int) -> None:
        self._d["retry"] = _check_retry(value)

    @property
    def at(self) -> str | None:
        """When to run the job, as an RFC 3339 string with a zone, or None for now."""
        return self._d.get("at")

    @at.setter
    def at(self, value: datetime | str | None) -> None:
        self._set_optional("at", format_at(value))

    @property
    def reserve_for(self) -> int | None:
        """Seconds a worker may hold the job before it is failed and retried (60..86400)."""
        return self._d.get("reserve_for")

    @reserve_for.setter
    def reserve_for(self, value: int | None) -> None:
        self._set_optional("reserve_for", _check_reserve_for(value))

    @property
    def custom(self) -> dict[str, Any] | None:
        """Free-form extra data (dict with str keys) carried with the job."""
        return self._d.get("custom")

    @custom.setter
    def custom(self, value: dict[str, Any] | None) -> None:
        self._set_optional("custom", _check_custom(value))

    @property
    def backtrace(self) -> int | None:
        """Backtrace lines the server should keep when the job fails."""
        return self._d.get("backtrace")

    @backtrace.setter
    def backtrace(self, value: int | None) -> None:
        self._set_optional("backtrace", _check_backtrace(value))

    @property
    def created_at(self) -> str | None:
        """Set by the server (read-only here): when the job was first pushed."""
        return self._d.get("created_at")

    @property
    def enqueued_at(self) -> str | None:
        """Set by the server (read-only here): when the job entered its queue."""
        return self._d.get("enqueued_at")

    @property
    def failure(self) -> dict[str, Any] | None:
        """Set by the server (read-only here): details of the last failure, if any."""
        return self._d.get("failure")

    def _set_optional(self, key: str, value: Any) -> None:
        if value is None:
            self._d.pop(key, None)
        else:
            self._d[key] = value

    # -- sending ---------------------------------------------------------------------
    async def push(self) -> str:
        """Push this job through its bound ``client``; return the jid."""
        if self.client is None:
            raise RuntimeError(
                f"job {self.jid} has no client: create it with client.job(...) or Job(..., client=c), "
                f"or call client.push(job)"
            )
        return await self.client.push(self)

    def __repr__(self) -> str:
        extra = "".join(
            f", {k}={self._d[k]!r}" for k in ("at", "reserve_for", "custom", "backtrace") if k in self._d
        )
        return (f"Job({self.jobtype!r}, args={self.args!r}, jid={self.jid!r}, "
                f"queue={self.queue!r}, retry={self.retry!r}{extra})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other._d == self._d

    __hash__ = None  # type: ignore[assignment]  # mutable
