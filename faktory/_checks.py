"""Checks of constructor arguments shared by ``Client`` and ``Worker``: each error names
the argument and shows the value (never a password), raised before anything is sent."""
from __future__ import annotations

import math
import ssl as _ssl
from typing import Any, Iterable, NamedTuple

__all__ = ["check_client_arguments", "check_seconds", "check_str"]


def check_str(value: Any, field: str) -> None:
    """``value`` is ``None`` or a non-empty str."""
    if value is not None and (not isinstance(value, str) or not value):
        raise TypeError(f"{field} must be a non-empty str, not {value!r}")


def check_seconds(value: Any, field: str, *, zero: bool = True, none: bool = False) -> None:
    """``value`` is a finite number of seconds, ``>= 0`` (``> 0`` without ``zero``), or
    ``None`` when ``none``."""
    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not (value >= 0 if zero else value > 0):
        need = ">= 0" if zero else "> 0"
        raise ValueError(f"{field} must be a number of seconds {need}{' or None' if none else ''}, got {value!r}")


def check_client_arguments(*, host: Any, port: Any, password: Any, connect_timeout: Any, command_timeout: Any,
                           reconnect_timeout: Any, first_connect_timeout: Any, max_command_bytes: Any,
                           hostname: Any, pid: Any, labels: Iterable[str]) -> list[str]:
    """The checks ``Client`` and ``SyncClient`` make of their arguments, in one order;
    returns ``labels`` as a list."""
    check_str(host, "host")
    if port is not None and (type(port) is not int or not 0 < port < 65536):
        raise ValueError(f"port must be an int from 1 to 65535, got {port!r}")
    if password is not None and not isinstance(password, str):
        raise TypeError(f"password must be a str, not {type(password).__name__}")
    check_seconds(connect_timeout, "connect_timeout", zero=False)
    check_seconds(command_timeout, "command_timeout", zero=False, none=True)
    check_seconds(reconnect_timeout, "reconnect_timeout")
    check_seconds(first_connect_timeout, "first_connect_timeout")
    if max_command_bytes is not None and (type(max_command_bytes) is not int or max_command_bytes < 64):
        raise ValueError(f"max_command_bytes must be an int >= 64 or None, got {max_command_bytes!r}")
    check_str(hostname, "hostname")
    if pid is not None and (type(pid) is not int or pid < 0):
        raise ValueError(f"pid must be an int >= 0, got {pid!r}")
    if isinstance(labels, str):
        raise TypeError(f"labels must be an iterable of str, not the str {labels!r}")
    checked = list(labels)
    for label in checked:
        check_str(label, "each label")
    return checked


class ClientTarget(NamedTuple):
    """Where a client connects and as whom, resolved from its URL and arguments."""

    host: str
    port: int
    password: str | None
    ssl: _ssl.SSLContext | None
    labels: list[str]


def client_target(url: str | None, *, host: Any, port: Any, password: Any, tls: Any, wid: Any,
                  connect_timeout: Any, command_timeout: Any, reconnect_timeout: Any,
                  first_connect_timeout: Any, max_command_bytes: Any, hostname: Any, pid: Any,
                  labels: Iterable[str]) -> ClientTarget:
    """What ``Client`` and ``SyncClient`` make of their connection arguments, in one
    order: the URL (``None``: ``FAKTORY_URL`` / ``FAKTORY_PROVIDER``, else the default),
    the checks of every argument, then ``host``/``port``/``password``/``tls`` over the
    URL's (``tls=True``: the default SSL context)."""
    from faktory.url import parse_url, url_from_env

    if url is None:
        url = url_from_env()
    url_host, url_port, url_password, url_tls = parse_url(url)
    checked = check_client_arguments(
        host=host, port=port, password=password, connect_timeout=connect_timeout,
        command_timeout=command_timeout, reconnect_timeout=reconnect_timeout,
        first_connect_timeout=first_connect_timeout, max_command_bytes=max_command_bytes,
        hostname=hostname, pid=pid, labels=labels)
    if tls is None:
        tls = url_tls
    if tls is True:
        context: _ssl.SSLContext | None = _ssl.create_default_context()
    elif tls is False:
        context = None
    elif isinstance(tls, _ssl.SSLContext):
        context = tls
    else:
        raise TypeError(f"tls must be None, a bool or an ssl.SSLContext, not {type(tls).__name__}: {tls!r}")
    if wid is not None and (not isinstance(wid, str) or not wid):
        raise ValueError(f"wid must be a non-empty str, got {wid!r}")
    return ClientTarget(host if host is not None else url_host, port if port is not None else url_port,
                        password if password is not None else url_password, context, checked)
