"""Sans-I/O command building and reply reading, shared by ``Client`` and ``SyncClient``.

Everything here turns arguments into packed command bytes (validating them first, so a
bad value raises before anything is sent) or turns a reply into the value a client method
returns; ``faktory.bulk`` does the same for ``push_bulk``.  No sockets, no event loop: the
asyncio ``Client`` and the blocking ``SyncClient`` differ only in how they move these bytes.
"""
from __future__ import annotations

import json
import os
import socket
import traceback
from types import ModuleType
from typing import Any

from faktory.errors import ConnectionProtocolError
from faktory.job import Job, check_json, validate_queue

__all__ = ["MAX_BACKTRACE", "Rejections", "loads", "job_payload", "pack_push", "pack_fetch",
           "fail_payload", "format_backtrace", "beat_payload", "parse_beat", "queue_args",
           "queue_latency"]

MAX_BACKTRACE = 50  # lines the server keeps
STATES = ("quiet", "terminate")
_decode = json.JSONDecoder().decode

#: ``push_bulk``'s result: ``{key: (reason, payload)}`` for the jobs not enqueued; the key
#: is the jid, or the job's index in the input when it has no usable jid.
Rejections = dict[str | int, tuple[str, dict[str, Any]]]


def loads(reply: bytes | str) -> Any:
    """Decode a JSON reply (``json.loads(bytes)`` sniffs the encoding; the server always
    sends UTF-8)."""
    return _decode(reply.decode("utf-8") if isinstance(reply, bytes) else reply)


def job_payload(job: Job | dict[str, Any]) -> dict[str, Any]:
    """The validated payload of a ``Job`` or a payload dict (checked like a ``Job``)."""
    if isinstance(job, Job):
        return job._d
    if isinstance(job, dict):
        return Job.from_payload(job)._d
    raise TypeError(f"a job must be a Job or a dict, not {type(job).__name__}: {job!r}")


def pack_push(codec: ModuleType, payload: dict[str, Any]) -> bytes:
    """``PUSH <json>``; a field that is not JSON raises naming the field."""
    try:
        data: bytes = codec.pack_push(payload)
    except (TypeError, ValueError, OverflowError):
        check_json(payload, codec.dumps)
        raise
    return data


def pack_fetch(codec: ModuleType, queues: tuple[str, ...]) -> bytes:
    """``FETCH q1 q2...``: at least one queue, names checked."""
    if not queues:
        raise ValueError("fetch needs at least one queue name")
    for queue in queues:
        validate_queue(queue)
    data: bytes = codec.pack_fetch(queues)
    return data


def format_backtrace(exc: BaseException, limit: int = MAX_BACKTRACE) -> list[str]:
    """The frames of ``exc``'s traceback, innermost first (as Faktory's web UI, and the
    Ruby and Go clients, show them), at most ``limit`` lines, each
    ``File "path", line N, in function``.  No source files are read."""
    frames = [(tb_frame.f_code.co_filename, lineno, tb_frame.f_code.co_name)
              for tb_frame, lineno in traceback.walk_tb(exc.__traceback__)]
    frames.reverse()
    return [f'File "{filename}", line {lineno}, in {name}' for filename, lineno, name in frames[:limit]]


def fail_payload(jid: str, exc: BaseException | None = None, *, errtype: str | None = None,
                 message: str | None = None, backtrace: list[str] | None = None,
                 backtrace_limit: int = MAX_BACKTRACE) -> dict[str, Any]:
    """The FAIL payload (see ``Client.fail``)."""
    if not isinstance(jid, str):
        raise TypeError(f"jid must be a str, not {type(jid).__name__}: {jid!r}")
    limit = max(0, min(int(backtrace_limit), MAX_BACKTRACE))
    if exc is not None:
        if errtype is None:
            errtype = type(exc).__name__
        if message is None:
            message = str(exc)
        if backtrace is None:
            backtrace = format_backtrace(exc, limit)
    payload: dict[str, Any] = {"jid": jid}
    if errtype is not None:
        payload["errtype"] = str(errtype)
    if message is not None:
        payload["message"] = str(message)
    if backtrace is not None:
        payload["backtrace"] = [str(line) for line in backtrace[:limit]]
    return payload


def beat_payload(wid: str | None, current_state: str | None, rss_kb: int | None) -> dict[str, Any]:
    """The BEAT payload (see ``Client.beat``)."""
    if not wid:
        raise ValueError("beat() needs a worker id: create the client with Client(wid=...)")
    payload: dict[str, Any] = {"wid": wid}
    if current_state:
        if current_state not in STATES:
            raise ValueError(f"current_state must be 'quiet' or 'terminate', got {current_state!r}")
        payload["current_state"] = current_state
    if rss_kb is not None:
        if not isinstance(rss_kb, int) or isinstance(rss_kb, bool) or rss_kb < 0:
            raise TypeError(f"rss_kb must be an int >= 0, got {rss_kb!r}")
        payload["rss_kb"] = rss_kb
    return payload


def parse_beat(reply: Any) -> str:
    """The worker state in a BEAT reply: ``"OK"`` (``+OK``), or the ``state`` of the JSON
    the server sends once a worker is told to quiet or terminate (a bulk string on the
    real server, a simple string in the spec): ``"quiet"`` or ``"terminate"``.  Anything
    else is a ``ConnectionProtocolError``."""
    if reply == "OK":
        return "OK"
    try:
        state = loads(reply)["state"]
    except (TypeError, ValueError, KeyError, AttributeError, UnicodeDecodeError):
        raise ConnectionProtocolError(f"unexpected reply to BEAT: {reply!r}") from None
    if state in STATES:
        return str(state)
    if not state:
        return "OK"
    raise ConnectionProtocolError(f"unexpected worker state in the reply to BEAT: {reply!r}")


def queue_args(queues: tuple[str, ...], wildcard: bool) -> tuple[str, ...]:
    """Queue names for QUEUE PAUSE/RESUME/REMOVE (``"*"`` allowed) or LATENCY (not)."""
    if not queues:
        raise ValueError("give at least one queue name" + (' (or "*")' if wildcard else ""))
    for queue in queues:
        if queue == "*":
            if not wildcard:
                raise ValueError('QUEUE LATENCY does not support the wildcard "*"')
        else:
            validate_queue(queue)
    return queues


def queue_latency(reply: Any) -> dict[str, float]:
    """The QUEUE LATENCY reply as ``{queue: seconds}``."""
    return {name: float(value) for name, value in loads(reply).items()}


def hello_fields(hostname: str | None, wid: str | None, pid: int | None, labels: list[str]) -> dict[str, Any]:
    """The identity fields of HELLO: the hostname always; with a ``wid``, the worker's pid
    (this process's by default) and labels too."""
    hello: dict[str, Any] = {"hostname": hostname or socket.gethostname()}
    if wid:
        hello["wid"] = wid
        hello["pid"] = pid if pid is not None else os.getpid()
        hello["labels"] = labels
    return hello
