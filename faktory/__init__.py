"""faktory: a fast asyncio client, worker and embedded server for the Faktory job protocol."""
from faktory.errors import (
    CommandTimeout,
    FaktoryConnectionError,
    FaktoryError,
    HandshakeError,
    InvalidPasswordError,
    JobNotFoundError,
    NotUniqueError,
    ProtocolError,
    ServerError,
    UnknownWorkerError,
)

__version__ = "0.1.0"

__all__ = [
    "CommandTimeout",
    "FaktoryConnectionError",
    "FaktoryError",
    "HandshakeError",
    "InvalidPasswordError",
    "JobNotFoundError",
    "NotUniqueError",
    "ProtocolError",
    "ServerError",
    "UnknownWorkerError",
    "__version__",
]
