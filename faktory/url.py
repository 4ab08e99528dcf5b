"""Faktory URLs: ``tcp://[:password@]host[:port]`` and ``tcp+tls://...``, and where a client
finds its URL when given none (``FAKTORY_PROVIDER`` / ``FAKTORY_URL``)."""
from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

__all__ = ["DEFAULT_URL", "DEFAULT_PORT", "parse_url", "url_from_env"]

DEFAULT_URL = "tcp://127.0.0.1:7419"
DEFAULT_PORT = 7419


def parse_url(url: str) -> tuple[str, int, str | None, bool]:
    """Split a Faktory URL into ``(host, port, password, tls)``.

    ``tcp://[:password@]host[:port]`` or ``tcp+tls://...``; the password is
    percent-decoded; the port defaults to 7419.  Raises ``ValueError`` otherwise.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("tcp", "tcp+tls"):
        raise ValueError(f"Faktory URL must start with tcp:// or tcp+tls://, got {url!r}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"invalid port in Faktory URL {url!r}") from None
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
            f"(e.g. FAKTORY_PROVIDER=MY_FAKTORY_URL), not the URL itself: {provider!r}")
    return os.environ.get(provider) or DEFAULT_URL
