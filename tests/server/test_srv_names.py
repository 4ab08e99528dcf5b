"""The server's classes are named for their side, and its exception lives in faktory.errors."""
from __future__ import annotations

import warnings

import pytest

import faktory
from faktory import errors


def test_storage_error_is_in_the_exception_tree() -> None:
    from faktory.server import sqlite

    assert faktory.StorageError is errors.StorageError
    assert sqlite.StorageError is errors.StorageError  # the old import keeps working
    assert issubclass(errors.StorageError, errors.FaktoryError)
    assert issubclass(errors.StorageError, RuntimeError)


def test_server_classes_are_named_for_the_server_side() -> None:
    from faktory.server import server

    assert server.WorkerRecord.__name__ == "WorkerRecord"
    assert server.ServerConnection.__name__ == "ServerConnection"
    assert "Worker" not in server.__all__


@pytest.mark.parametrize("old, new", [("Worker", "WorkerRecord"), ("_Connection", "ServerConnection")])
def test_old_server_class_names_warn(old: str, new: str) -> None:
    from faktory.server import server

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cls = getattr(server, old)
    assert cls is getattr(server, new)
    assert [str(w.message) for w in seen] == [f"faktory.server.server.{old} is now {new}"]
    assert seen[0].category is DeprecationWarning
