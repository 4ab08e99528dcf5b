"""faktory: a fast asyncio client, worker and embedded server for the Faktory job protocol."""
from faktory.client import Client
from faktory.connection import Connection
from faktory.errors import (
    BulkPushError,
    CommandTimeout,
    ConnectionProtocolError,
    FaktoryConnectionError,
    FaktoryError,
    HandshakeError,
    InvalidJobError,
    InvalidPasswordError,
    JobCancelledError,
    JobNotFoundError,
    NotSentError,
    NotUniqueError,
    ProtocolError,
    ServerError,
    ServerStartError,
    ServerUnreachableError,
    StorageError,
    UnknownJobTypeError,
    UnknownWorkerError,
)
from faktory.job import Job
from faktory.mutation import Mutation
from faktory.app import Faktory, connect, create, register, stop, use, work
from faktory.middleware import JobContext
from faktory.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "Faktory",
    "JobContext",
    "Worker",
    "connect",
    "create",
    "register",
    "stop",
    "use",
    "work",
    "Client",
    "Connection",
    "Job",
    "Mutation",
    "BulkPushError",
    "CommandTimeout",
    "ConnectionProtocolError",
    "FaktoryConnectionError",
    "FaktoryError",
    "HandshakeError",
    "InvalidJobError",
    "InvalidPasswordError",
    "JobCancelledError",
    "JobNotFoundError",
    "NotSentError",
    "NotUniqueError",
    "ProtocolError",
    "ServerError",
    "ServerStartError",
    "ServerUnreachableError",
    "StorageError",
    "UnknownJobTypeError",
    "UnknownWorkerError",
    "__version__",
]
