"""The whole exception tree of the library, shared by both codecs, the client and the server."""
from __future__ import annotations

from typing import Any

__all__ = [
    "FaktoryError",
    "ProtocolError",
    "FaktoryConnectionError",
    "HandshakeError",
    "CommandTimeout",
    "ConnectionProtocolError",
    "NotSentError",
    "ServerUnreachableError",
    "BulkPushError",
    "ServerError",
    "UnknownWorkerError",
    "JobNotFoundError",
    "InvalidPasswordError",
    "NotUniqueError",
    "UnknownJobTypeError",
    "JobCancelledError",
    "InvalidJobError",
    "StorageError",
    "ServerStartError",
    "MissingExtraError",
    "BatchError",
    "ERROR_CODES",
    "server_error",
]


class FaktoryError(Exception):
    """Root of every error this library raises on purpose."""


class ProtocolError(FaktoryError):
    """The peer sent bytes that are not valid RESP; the connection cannot be used any more."""


class FaktoryConnectionError(FaktoryError, ConnectionError):
    """The connection to the server could not be made, or was lost."""


class HandshakeError(FaktoryConnectionError):
    """The HI/HELLO handshake failed (wrong protocol version, closed during handshake...)."""


class CommandTimeout(FaktoryConnectionError, TimeoutError):
    """No reply arrived within the command's timeout; the connection was closed."""


class ConnectionProtocolError(ProtocolError, FaktoryConnectionError):
    """The server sent bytes that are not valid RESP (or a reply nobody asked for);
    the connection was aborted.  Both a ``ProtocolError`` and a ``FaktoryConnectionError``."""


class NotSentError(FaktoryConnectionError):
    """The connection was already closed: the command was never written, so it is
    always safe to send it again on another connection."""


class ServerUnreachableError(NotSentError):
    """No connection to the server could be made within the call's patience
    (``reconnect_timeout``, or ``first_connect_timeout`` for a server never reached):
    nothing was written."""


class BulkPushError(FaktoryConnectionError):
    """``push_bulk`` stopped because a chunk failed for good (the server stayed away, a
    command timed out...); the cause is ``__cause__``.

    What is known at that point:

    * ``rejected``: the rejections collected so far, keyed like ``push_bulk``'s result;
    * ``enqueued``: how many jobs the server certainly accepted (their chunk's reply came);
    * ``not_enqueued``: how many certainly were not (never sent, or rejected);
    * ``unknown``: how many were sent but got no reply (they may or may not be queued:
      pushing them again may make duplicates, with the same jids).
    * ``unknown_jids``: the jids of those ``unknown`` jobs.
    """

    def __init__(self, message: str, *, rejected: dict[str | int, tuple[str, dict[str, Any]]], enqueued: int,
                 not_enqueued: int,
                 unknown: int, unknown_jids: list[str]) -> None:
        super().__init__(message)
        self.rejected = rejected
        self.enqueued = enqueued
        self.not_enqueued = not_enqueued
        self.unknown = unknown
        self.unknown_jids = unknown_jids


class ServerError(FaktoryError):
    """The server answered a command with an error line ``-CODE message``.

    ``code`` is the first word (``ERR`` for ordinary errors, ``NOTUNIQUE`` ...),
    ``message`` the rest of the line.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} {message}" if message else code)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[ServerError], tuple[str, str]]:  # keep pickling (multiprocessing) working with two args
        return (type(self), (self.code, self.message))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServerError) and type(other) is type(self) and (
            (other.code, other.message) == (self.code, self.message))

    def __hash__(self) -> int:
        return hash((type(self), self.code, self.message))


class UnknownWorkerError(ServerError):
    """``-ERR unknown worker <wid>``: the server forgot this worker; reconnect with HELLO."""


class JobNotFoundError(ServerError):
    """``-ERR Job not found <jid>``: FAIL of a job the server does not hold; final, never retry."""


class InvalidPasswordError(ServerError):
    """``-ERR Invalid password``: the handshake was refused."""


class NotUniqueError(ServerError):
    """``-NOTUNIQUE ...`` (Faktory Enterprise unique jobs): an equal job is already queued."""


class UnknownJobTypeError(FaktoryError, LookupError):
    """No function is registered for the fetched job's jobtype (the job is FAILed)."""

    def __init__(self, jobtype: str) -> None:
        super().__init__(f"no function registered for jobtype {jobtype!r}")
        self.jobtype = jobtype


class JobCancelledError(FaktoryError):
    """The worker gave up on a running job (shutdown deadline or immediate stop).

    This is what the job is FAILed with, so the server schedules a retry.
    """


class InvalidJobError(FaktoryError, ValueError):
    """A fetched job the worker cannot run at all (not JSON, no ``jobtype``...): it is
    FAILed at once with this error instead of waiting out its reservation."""


class StorageError(FaktoryError, RuntimeError):
    """The embedded server's storage file cannot be used (not ours, a newer schema, in use
    by another server, or a write failed)."""


class ServerStartError(FaktoryError, RuntimeError):
    """A ``ServerProcess`` child exited, or did not accept connections in time, during
    start-up.  ``returncode`` is its exit status (``None`` if it was still running and was
    killed at the deadline); ``output`` what it printed."""

    def __init__(self, message: str, returncode: int | None, output: str) -> None:
        super().__init__(f"{message}\n{output}" if output else message)
        self.returncode = returncode
        self.output = output


class MissingExtraError(FaktoryError, ImportError):
    """An optional integration was used without the package it needs.

    The message names the extra that installs it: ``pip install 'faktory-turbo[metrics]'``.
    ``extra`` is that extra's name; ``name`` (as for ``ImportError``) the missing module.
    """

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(f"{feature} needs the optional package {module!r}, which is not installed: "
                         f"pip install 'faktory-turbo[{extra}]'", name=module)
        self.feature = feature
        self.extra = extra

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.feature, self.extra, self.name))


class BatchError(FaktoryError):
    """A Faktory Enterprise batch was used out of order (pushing into a batch that is
    not created yet or already committed, committing twice)."""


#: Error classes chosen by the code word of the error line.
ERROR_CODES: dict[str, type[ServerError]] = {
    "NOTUNIQUE": NotUniqueError,
}

# ``-ERR`` messages that callers handle differently, matched by prefix (case-insensitive).
_ERR_PREFIXES: tuple[tuple[str, type[ServerError]], ...] = (
    ("unknown worker", UnknownWorkerError),
    ("job not found", JobNotFoundError),
    ("invalid password", InvalidPasswordError),
)


def server_error(code: str, message: str) -> ServerError:
    """Build the most specific ``ServerError`` for an error line's code and message."""
    if code == "ERR":
        lowered = message[:16].lower()
        for prefix, cls in _ERR_PREFIXES:
            if lowered.startswith(prefix):
                return cls(code, message)
        return ServerError(code, message)
    return ERROR_CODES.get(code, ServerError)(code, message)
