"""Faktory URLs: ``tcp://[:password@]host[:port]`` and ``tcp+tls://...``, and where a client
finds its URL when given none (``FAKTORY_PROVIDER`` / ``FAKTORY_URL``)."""
from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

__all__ = ["DEFAULT_URL", "DEFAULT_PORT", "mask_url", "parse_url", "url_from_env"]

DEFAULT_URL = "tcp://127.0.0.1:7419"
DEFAULT_PORT = 7419


_SECRET = "***"


def mask_url(url: str) -> str:
    """``url`` with the password hidden (``tcp://:***@host:7419``), for messages and logs.

    Works on malformed URLs too: whatever stands between ``scheme://`` and the last ``@``
    of the authority is user information; a name before its first ``:`` is kept, the
    rest masked."""
    if not isinstance(url, str):
        return f"<{type(url).__name__}>"
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority_end = len(rest)
    for stop in "/?#":
        found = rest.find(stop)
        if found != -1:
            authority_end = min(authority_end, found)
    authority, tail = rest[:authority_end], rest[authority_end:]
    at = authority.rfind("@")
    if at == -1:
        return url
    userinfo, hostport = authority[:at], authority[at + 1:]
    user, colon, _ = userinfo.partition(":")
    masked = f"{user}:{_SECRET}" if colon else _SECRET
    return f"{scheme}{sep}{masked}@{hostport}{tail}"


def parse_url(url: str) -> tuple[str, int, str | None, bool]:
    """Split a Faktory URL into ``(host, port, password, tls)``.

    ``tcp://[:password@]host[:port]`` or ``tcp+tls://...``; the password is
    percent-decoded; the port defaults to 7419.  Raises ``TypeError`` for a URL that is
    not a str and ``ValueError`` for a malformed one; no message shows the password.
    """
    if not isinstance(url, str):
        raise TypeError(f"a Faktory URL must be a str, not {type(url).__name__}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("tcp", "tcp+tls"):
        raise ValueError(f"Faktory URL must start with tcp:// or tcp+tls://, got {mask_url(url)!r}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"invalid port in Faktory URL {mask_url(url)!r}") from None
    host = parts.hostname or "127.0.0.1"
    password = unquote(parts.password) if parts.password is not None else None
    return host, port, password, scheme == "tcp+tls"


def url_from_env() -> str:
    """The URL in the environment variable named by ``FAKTORY_PROVIDER`` (default
    ``FAKTORY_URL``), else ``DEFAULT_URL``."""
    provider = os.environ.get("FAKTORY_PROVIDER") or "FAKTORY_URL"
    if ":" in provider:
        raise ValueError(
            "FAKTORY_PROVIDER must name the environment variable that holds the URL "
            f"(e.g. FAKTORY_PROVIDER=MY_FAKTORY_URL), not the URL itself: {mask_url(provider)!r}")
    return os.environ.get(provider) or DEFAULT_URL
