"""The whole exception tree of the library, shared by both codecs, the client and the server."""
from __future__ import annotations

__all__ = [
    "FaktoryError",
    "ProtocolError",
    "FaktoryConnectionError",
    "HandshakeError",
    "CommandTimeout",
    "ServerError",
    "UnknownWorkerError",
    "JobNotFoundError",
    "InvalidPasswordError",
    "NotUniqueError",
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


class ServerError(FaktoryError):
    """The server answered a command with an error line ``-CODE message``.

    ``code`` is the first word (``ERR`` for ordinary errors, ``NOTUNIQUE`` ...),
    ``message`` the rest of the line.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} {message}" if message else code)
        self.code = code
        self.message = message

    def __reduce__(self):  # keep pickling (multiprocessing) working with two args
        return (type(self), (self.code, self.message))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and (other.code, other.message) == (self.code, self.message)  # type: ignore[attr-defined]

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
