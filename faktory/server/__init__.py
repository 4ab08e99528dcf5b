"""The embedded Faktory-protocol server (in memory, or durable on SQLite).

``faktory server`` runs it from the command line; in process::

    async with FaktoryServer(port=0) as server:
        ...                       # server.url -> "tcp://127.0.0.1:PORT"

    with ServerThread() as st:    # in a background thread, for sync code and tests
        st.url

    with ServerProcess() as sp:   # in a child process (its own core; SIGKILL for crash tests)
        sp.url
"""
from faktory.server.clock import Clock, ManualClock
from faktory.server.persist import JobRecord, MemoryPersistence, Persistence, Snapshot
from faktory.server.process import ServerProcess, ServerStartError, free_port
from faktory.server.server import DEFAULT_PORT, VERSION, FaktoryServer, ScanIntervals
from faktory.server.thread import ServerThread

__all__ = [
    "Clock",
    "ManualClock",
    "FaktoryServer",
    "ScanIntervals",
    "ServerThread",
    "ServerProcess",
    "ServerStartError",
    "free_port",
    "Persistence",
    "MemoryPersistence",
    "JobRecord",
    "Snapshot",
    "VERSION",
    "DEFAULT_PORT",
]
