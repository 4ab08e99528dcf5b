"""Pure-Python RESP codec: the twin of ``faktory/_resp.pyx``.

Same names, same algorithm, same error texts, so that the two can be compared on any
byte stream.  Keep the two files diffable side by side: change one, change the other.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Sequence

from faktory._const import DEFAULT_MAX_BULK, DEFAULT_MAX_LINE, MAX_ARRAY, MAX_DEPTH, NEED_DATA
from faktory.errors import ProtocolError, server_error

__all__ = ["IMPLEMENTATION", "NEED_DATA", "Reader", "dumps", "pack_command", "pack_json",
           "pack_fetch", "pack_ack", "pack_push", "pack_pushb"]

IMPLEMENTATION = "python"

_DIGITS = frozenset(b"0123456789")
_COMPACT_THRESHOLD = 1024


class _Incomplete(Exception):
    """Internal: the buffer ends before the reply does.

    Always raised as the class, never as a shared instance: re-raising one instance chains
    every raise's traceback onto it, keeping frames alive (memory grows with every gets()).
    """


def _parse_int(line: bytes, what: str) -> int:
    # Strict: optional '-', then 1..18 ASCII digits.  int() would accept ' +5_0 '.
    digits = line[1:] if line[:1] == b"-" else line
    if not 0 < len(digits) <= 18 or not _DIGITS.issuperset(digits):
        raise ProtocolError(f"invalid {what}: {bytes(line[:32])!r}")
    value = int(digits)
    return -value if line[:1] == b"-" else value


class Reader:
    """Push parser for RESP2 replies (see ``faktory/_resp.pyi``)."""

    __slots__ = ("_buf", "_pos", "_max_bulk", "_max_line", "_dead")

    def __init__(self, max_bulk: int = DEFAULT_MAX_BULK, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_bulk < 0 or max_line < 1:
            raise ValueError("max_bulk must be >= 0 and max_line >= 1")
        self._buf = bytearray()
        self._pos = 0
        self._max_bulk = max_bulk
        self._max_line = max_line
        self._dead: str | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes to the buffer."""
        self._buf += data

    def buffered(self) -> int:
        """How many received bytes are not yet consumed by a complete reply."""
        return len(self._buf) - self._pos

    def gets(self) -> Any:
        """Return the next complete reply, or ``NEED_DATA``; raise ``ProtocolError`` on bad bytes."""
        if self._dead is not None:
            raise ProtocolError(self._dead)
        try:
            reply, pos = self._parse(self._pos, 0)
        except _Incomplete:
            return NEED_DATA
        except ProtocolError as exc:
            self._dead = str(exc)
            raise
        if pos > _COMPACT_THRESHOLD:
            del self._buf[:pos]
            pos = 0
        self._pos = pos
        return reply

    def dispatch(self, callback: Callable[[Any], object]) -> int:
        """Call ``callback(reply)`` for each complete reply, in order; return how many.

        Same as ``while (r := gets()) is not NEED_DATA: callback(r)``: bad bytes raise
        ``ProtocolError`` after every reply before them was delivered.
        """
        count = 0
        while True:
            reply = self.gets()
            if reply is NEED_DATA:
                return count
            count += 1
            callback(reply)

    def resolve(self, waiters: Any, deadlines: Any, orphans: Any) -> tuple[Any] | None:
        """Hand each complete reply to the next of ``waiters`` (a deque of pending
        futures or ``Callback``\\ s, answered in order): pop it and the first entry of
        ``deadlines``, then call its ``set_result(reply)``.

        Stops at the first reply it cannot hand over so (no waiter left, the next one is
        done already, or ``orphans`` is not empty) and returns it, consumed, in a 1-tuple
        for the caller to deal with; returns ``None`` when no complete reply is left.
        Bad bytes raise ``ProtocolError`` after every reply before them was handed over.
        """
        while True:
            reply = self.gets()
            if reply is NEED_DATA:
                return None
            if orphans or not waiters:
                return (reply,)
            waiter = waiters[0]
            if waiter.done():
                return (reply,)
            waiters.popleft()
            deadlines.popleft()
            waiter.set_result(reply)

    def _line(self, pos: int) -> int:
        # Index of the CR that ends the line whose body starts at ``pos``.
        buf = self._buf
        cr = buf.find(b"\r", pos)
        if cr < 0:
            if len(buf) - pos > self._max_line:
                raise ProtocolError(f"line longer than {self._max_line} bytes")
            raise _Incomplete
        if cr - pos > self._max_line:
            raise ProtocolError(f"line longer than {self._max_line} bytes")
        if cr + 1 >= len(buf):
            raise _Incomplete
        if buf[cr + 1] != 10:
            raise ProtocolError("expected LF after CR")
        return cr

    def _parse(self, pos: int, depth: int) -> tuple[Any, int]:
        buf = self._buf
        if pos >= len(buf):
            raise _Incomplete
        kind = buf[pos]
        if kind not in b"+-:$*":
            raise ProtocolError(f"invalid reply type byte 0x{kind:02x}")
        cr = self._line(pos + 1)
        line = bytes(buf[pos + 1:cr])
        pos = cr + 2
        if kind == 43:  # '+'
            if line == b"OK":  # most of the traffic: one shared str
                return "OK", pos
            return line.decode("utf-8", "replace"), pos
        if kind == 45:  # '-'
            text = line.decode("utf-8", "replace")
            code, _, message = text.partition(" ")
            return server_error(code, message), pos
        if kind == 58:  # ':'
            return _parse_int(line, "integer"), pos
        if kind == 36:  # '$'
            length = _parse_int(line, "bulk length")
            if length == -1:
                return None, pos
            if length < -1:
                raise ProtocolError(f"invalid bulk length: {length}")
            if length > self._max_bulk:
                raise ProtocolError(f"bulk length {length} exceeds limit {self._max_bulk}")
            end = pos + length
            if end + 2 > len(buf):
                raise _Incomplete
            if buf[end] != 13 or buf[end + 1] != 10:
                raise ProtocolError("bulk string not terminated by CRLF")
            return bytes(buf[pos:end]), end + 2
        # '*'
        count = _parse_int(line, "array length")
        if count == -1:
            return None, pos
        if count < -1:
            raise ProtocolError(f"invalid array length: {count}")
        if count > MAX_ARRAY:
            raise ProtocolError(f"array length {count} exceeds limit {MAX_ARRAY}")
        if depth >= MAX_DEPTH:
            raise ProtocolError(f"arrays nested deeper than {MAX_DEPTH}")
        items = []
        for _ in range(count):
            item, pos = self._parse(pos, depth + 1)
            items.append(item)
        return items, pos


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode


def dumps(obj: Any) -> str:
    """Compact, single-line, ASCII JSON (no spaces: MUTATE requires it; NaN rejected)."""
    return _encode(obj)


def _check_arg(arg: str) -> None:
    if not isinstance(arg, str):
        raise TypeError(f"command argument must be str, not {type(arg).__name__}: {arg!r}")
    if "\r" in arg or "\n" in arg or " " in arg or not arg:
        raise ValueError(f"invalid command argument (empty, or contains a space or line break): {arg!r}")


def pack_command(verb: str, *args: str) -> bytes:
    """``VERB arg1 arg2\\r\\n``; each argument must be non-empty, without spaces or line breaks."""
    _check_arg(verb)
    for arg in args:
        _check_arg(arg)
    return (" ".join((verb,) + args) + "\r\n").encode("utf-8")


def pack_json(verb: str, obj: Any) -> bytes:
    """``VERB <compact json>\\r\\n``."""
    _check_arg(verb)
    return (verb + " " + _encode(obj) + "\r\n").encode("ascii")


def pack_fetch(queues: Sequence[str]) -> bytes:
    """``FETCH q1 q2 ...\\r\\n`` (at least one queue)."""
    if not queues:
        raise ValueError("FETCH needs at least one queue")
    for queue in queues:
        _check_arg(queue)
    return ("FETCH " + " ".join(queues) + "\r\n").encode("utf-8")


def _plain(text: str) -> bool:
    # True when json.dumps(text) == '"' + text + '"' (printable ASCII, no quote or backslash).
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def pack_ack(jid: str) -> bytes:
    """``ACK {"jid":"..."}\\r\\n``."""
    if not isinstance(jid, str):
        raise TypeError(f"jid must be str, not {type(jid).__name__}: {jid!r}")
    if _plain(jid):
        return b'ACK {"jid":"' + jid.encode("ascii") + b'"}\r\n'
    return b'ACK {"jid":' + _encode(jid).encode("ascii") + b"}\r\n"


def pack_push(job: dict[str, Any]) -> bytes:
    """``PUSH <job json>\\r\\n``."""
    return b"PUSH " + _encode(job).encode("ascii") + b"\r\n"


def pack_pushb(jobs: Iterable[dict[str, Any]]) -> bytes:
    """``PUSHB [<job>,<job>,...]\\r\\n``: the list encoded once, in linear time."""
    return b"PUSHB " + _encode(list(jobs)).encode("ascii") + b"\r\n"
