"""The exception tree: every exception the library raises is importable from ``faktory``
(defined once, in ``faktory.errors``), and the tree is what callers catch by."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings

import pytest

import faktory
from faktory import errors


def _library_exceptions() -> dict[str, type[BaseException]]:
    # Every exception class defined anywhere in the package (the server included).
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(faktory.__path__, "faktory."):
        if info.name.endswith(("._resp", "__main__")):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__.startswith("faktory")
                    and not name.startswith("_")):
                found[name] = obj
    return found


#: The server's Go-JSON emulation signals decode failures with these; the server turns each
#: into an ``-ERR`` reply, so none ever reaches a user of the library.
SERVER_INTERNAL = {"JSONError", "TimeParseError"}


def test_every_exception_is_defined_in_errors_and_exported_from_faktory():
    import faktory.server

    for name, cls in _library_exceptions().items():
        if name in SERVER_INTERNAL:
            assert cls.__module__ == "faktory.server.gojson" and name not in faktory.server.__all__
            continue
        assert cls.__module__ == "faktory.errors", f"{name} is defined in {cls.__module__}"
        assert getattr(faktory, name) is cls, f"faktory.{name} missing"
        assert name in faktory.__all__ and name in errors.__all__


def test_the_tree():
    assert issubclass(faktory.FaktoryError, Exception)
    for cls in (faktory.ProtocolError, faktory.FaktoryConnectionError, faktory.ServerError,
                faktory.UnknownJobTypeError, faktory.JobCancelledError, faktory.InvalidJobError):
        assert issubclass(cls, faktory.FaktoryError)
    assert issubclass(faktory.ServerUnreachableError, faktory.NotSentError)
    for cls in (faktory.HandshakeError, faktory.CommandTimeout, faktory.NotSentError,
                faktory.ConnectionProtocolError, faktory.BulkPushError):
        assert issubclass(cls, faktory.FaktoryConnectionError) and issubclass(cls, ConnectionError)
    assert issubclass(faktory.CommandTimeout, TimeoutError)
    assert issubclass(faktory.ConnectionProtocolError, faktory.ProtocolError)
    for cls in (faktory.UnknownWorkerError, faktory.JobNotFoundError, faktory.InvalidPasswordError,
                faktory.NotUniqueError):
        assert issubclass(cls, faktory.ServerError)
    assert issubclass(faktory.UnknownJobTypeError, LookupError)
    assert issubclass(faktory.InvalidJobError, ValueError)


@pytest.mark.parametrize("name,new_home", [
    ("queue_order", "faktory.queues"), ("weighted_shuffle", "faktory.queues"), ("QueueSpec", "faktory.queues"),
    ("rss_kb", "faktory.rss"), ("register_into", "faktory.registry"),
    ("UnknownJobTypeError", "faktory.errors"), ("JobCancelledError", "faktory.errors"),
])
def test_names_moved_out_of_faktory_worker_still_import_with_a_deprecation_warning(name, new_home):
    import faktory.worker

    with pytest.warns(DeprecationWarning, match=rf"faktory\.worker\.{name} moved to {new_home}"):
        old = getattr(faktory.worker, name)
    assert old is getattr(importlib.import_module(new_home), name)


def test_the_codec_argument_still_works_with_a_deprecation_warning():
    from faktory import Client, Worker, protocol

    with pytest.warns(DeprecationWarning, match=r"Client\(codec=\.\.\.\) is deprecated"):
        client = Client("tcp://127.0.0.1:1", codec=protocol.CODECS["python"])
    assert client.codec is protocol.CODECS["python"]
    with pytest.warns(DeprecationWarning, match=r"Worker\(codec=\.\.\.\)"):
        Worker(codec="python")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with protocol.selected("python"):
            assert Client("tcp://127.0.0.1:1").codec is protocol.CODECS["python"]
        assert Client("tcp://127.0.0.1:1").codec is protocol.codec
