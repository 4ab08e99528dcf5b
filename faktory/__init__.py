"""faktory: a fast asyncio client, worker and embedded server for the Faktory job protocol.

The public names below import lazily (PEP 562): ``import faktory`` costs next to nothing,
and the first use of a name (``faktory.Client``, ``from faktory import register``) imports
the module that defines it.  This keeps the pytest plugin (``faktory.testing``, loaded in
every pytest session of an environment that has the package) free of the client, the
worker and the embedded server until a test asks for them.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - what the names are, for type checkers and readers
    from faktory.app import Faktory, configure, connect, create, register, stop, task, use, work
    from faktory.client import Client
    from faktory.connection import Connection
    from faktory.errors import (
        BatchError,
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
        MissingExtraError,
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
    from faktory.middleware import JobContext
    from faktory.mutation import Mutation
    from faktory.sync import SyncClient
    from faktory.tasks import Task
    from faktory.worker import Worker

__version__ = "0.1.0"

# name -> the module that defines it
_LAZY: dict[str, str] = {
    **dict.fromkeys(("Faktory", "configure", "connect", "create", "register", "stop", "task",
                     "use", "work"), "faktory.app"),
    "Client": "faktory.client",
    "Connection": "faktory.connection",
    **dict.fromkeys(("BatchError", "MissingExtraError", "BulkPushError", "CommandTimeout", "ConnectionProtocolError", "FaktoryConnectionError",
                     "FaktoryError", "HandshakeError", "InvalidJobError", "InvalidPasswordError",
                     "JobCancelledError", "JobNotFoundError", "NotSentError", "NotUniqueError",
                     "ProtocolError", "ServerError", "ServerStartError", "ServerUnreachableError", "StorageError",
                     "UnknownJobTypeError", "UnknownWorkerError"),
                    "faktory.errors"),
    "Job": "faktory.job",
    "JobContext": "faktory.middleware",
    "Mutation": "faktory.mutation",
    "SyncClient": "faktory.sync",
    "Task": "faktory.tasks",
    "Worker": "faktory.worker",
}

__all__ = [
    "Faktory",
    "JobContext",
    "Task",
    "Worker",
    "configure",
    "connect",
    "create",
    "register",
    "stop",
    "task",
    "use",
    "work",
    "Client",
    "Connection",
    "Job",
    "Mutation",
    "SyncClient",
    "BatchError",
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
    "MissingExtraError",
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


# Submodules that ``import faktory`` used to load: ``faktory.app.default`` keeps working
# without an ``import faktory.app`` first.
_SUBMODULES = frozenset({"app", "bulk", "client", "commands", "connection", "errors", "executor", "job",
                         "middleware", "mutation", "pool", "protocol", "queues", "registry", "rss",
                         "sync", "tasks", "url", "worker"})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        if name in _SUBMODULES:
            return importlib.import_module(f"faktory.{name}")  # sets the attribute itself
        raise AttributeError(f"module 'faktory' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
