"""Pure-Python RESP codec: the twin of ``faktory/_resp.pyx``.

Same names, same algorithm, same error texts, so that the two can be compared on any
byte stream.  Keep the two files diffable side by side: change one, change the other.
"""
from __future__ import annotations

import json
import math
import re
import time
from asyncio import InvalidStateError
from typing import Any, Callable, Iterable, Sequence

from faktory._const import DEFAULT_MAX_BULK, DEFAULT_MAX_LINE, MAX_ARRAY, MAX_DEPTH, NEED_DATA
from faktory.errors import ProtocolError, server_error

__all__ = ["IMPLEMENTATION", "NEED_DATA", "Reader", "dumps", "pack_command", "pack_json",
           "pack_fetch", "pack_ack", "pack_push", "pack_pushb", "scan_push",
           "scan_pushb", "format_stamp", "PUSHB_ELEMENT_MAX"]

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

        Stops at the first reply it cannot hand over so (no waiter left, ``orphans`` is
        not empty, or the next waiter's ``set_result`` raises ``InvalidStateError``:
        it is done already, and it goes back to the front with its deadline) and returns
        it, consumed, in a 1-tuple for the caller to deal with; returns ``None`` when no
        complete reply is left.  Bad bytes raise ``ProtocolError`` after every reply
        before them was handed over.
        """
        wpop = waiters.popleft
        dpop = deadlines.popleft
        while True:
            reply = self.gets()
            if reply is NEED_DATA:
                return None
            if orphans or not waiters:
                return (reply,)
            waiter = wpop()
            deadline = dpop()
            try:
                waiter.set_result(reply)
            except InvalidStateError:
                waiters.appendleft(waiter)
                deadlines.appendleft(deadline)
                return (reply,)

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


# ----------------------------------------------------------------------------- the server's PUSH

# scan_push: the embedded server's fast path for the common PUSH payload (see _resp.pyx for
# why).  It accepts only what Go's decode-then-marshal leaves byte for byte as it is, and
# copies those bytes into the payload in Go's order; anything else is None.

#: a string Go writes back unchanged: printable ASCII but " \ < > &
_PLAIN_STR = re.compile(rb'"[\x20\x21\x23-\x25\x27-\x3b\x3d\x3f-\x5b\x5d-\x7e]*"')
#: a string of args or custom Go writes back unchanged: as above, and valid UTF-8 but U+2028
#: and U+2029 (which Go escapes)
_TEXT_STR = re.compile(
    rb'"(?:[\x20\x21\x23-\x25\x27-\x3b\x3d\x3f-\x5b\x5d-\x7e]+|[\xc2-\xdf][\x80-\xbf]'
    rb'|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1\xe3-\xec\xee\xef][\x80-\xbf]{2}'
    rb'|\xe2(?:[\x81-\xbf][\x80-\xbf]|\x80[\x80-\xa7\xaa-\xbf])|\xed[\x80-\x9f][\x80-\xbf]'
    rb'|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})*"')
#: integers without sign games ("-0" is a float to Go), at most 18 / 15 digits
_PLAIN_INT = re.compile(rb"0|-?[1-9][0-9]{0,17}(?![0-9])")
_PLAIN_ARG_INT = re.compile(rb"0|-?[1-9][0-9]{0,14}(?![0-9])")
#: any JSON number (in args and custom: a float64 to Go)
_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_SCAN_MAX_DEPTH = 32
_MAX_RESERVE = 86400
_STRING_FIELDS = frozenset((b"jid", b"queue", b"jobtype", b"created_at", b"enqueued_at", b"at"))
_INT_FIELDS = frozenset((b"retry", b"reserve_for", b"backtrace"))
#: every field of Go's client.Job (a key that folds to one of these is the general path's)
_GO_FIELDS = _STRING_FIELDS | _INT_FIELDS | {b"args", b"custom", b"failure"}
_LITERALS = {0x74: b"true", 0x66: b"false", 0x6E: b"null"}


def _go_number(token: bytes) -> bool:
    # a JSON number: whether Go writes the float64 it reads back as these bytes (strconv 'f'
    # with the shortest digits for 1e-6 <= |x| < 1e21, else 'e' with e-7 for e-07; -0 stays
    # -0), the digits being repr's (the same shortest round trip)
    x = float(token)
    if not math.isfinite(x):
        return False
    if x == 0:
        return token == (b"-0" if math.copysign(1.0, x) < 0 else b"0")
    text = repr(x)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exponent = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) - (len(whole + frac) - len(digits)) + int(exponent or 0)
    digits = digits.rstrip("0")
    if abs(x) < 1e-6 or abs(x) >= 1e21:
        e10 = point - 1
        out = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        out += f"e-{-e10}" if e10 < 0 else f"e+{e10:02d}"
    elif point <= 0:
        out = "0." + "0" * -point + digits
    elif point >= len(digits):
        out = digits + "0" * (point - len(digits))
    else:
        out = digits[:point] + "." + digits[point:]
    return (sign + out).encode() == token


def _scan_plain_value(data: bytes, i: int, n: int, depth: int, unsorted: list[bool]) -> int:
    # the end of one value of args or custom that Go's round trip leaves unchanged but for the
    # order of object keys (Go sorts them), or -1; unsorted[0] set when a key is not strictly
    # after the one before it (_sorted_copy puts them in order, or finds a repeat)
    if i >= n or depth > _SCAN_MAX_DEPTH:
        return -1
    c = data[i]
    if c == 0x22:
        m = _TEXT_STR.match(data, i)
        return -1 if m is None else m.end()
    if c == 0x2D or 0x30 <= c <= 0x39:
        m = _NUMBER.match(data, i)
        if m is None:
            return -1
        if m.lastindex is None and _PLAIN_ARG_INT.fullmatch(m.group()):
            return m.end()  # |v| < 10**15 < 2**53: float64 prints it as is
        return m.end() if _go_number(m.group()) else -1
    word = _LITERALS.get(c)
    if word is not None:
        return i + len(word) if data.startswith(word, i) else -1
    if c == 0x5B:
        i += 1
        if i < n and data[i] == 0x5D:
            return i + 1
        while True:
            i = _scan_plain_value(data, i, n, depth + 1, unsorted)
            if i < 0 or i >= n:
                return -1
            if data[i] == 0x5D:
                return i + 1
            if data[i] != 0x2C:
                return -1
            i += 1
    if c == 0x7B:
        i += 1
        if i < n and data[i] == 0x7D:
            return i + 1
        prev = None
        while True:
            m = _TEXT_STR.match(data, i)
            if m is None:
                return -1
            key = m.group()
            if prev is not None and not key[1:-1] > prev:
                unsorted[0] = True  # not strictly after the previous key, as Go's sorted ones are
            prev = key[1:-1]
            i = m.end()
            if i >= n or data[i] != 0x3A:
                return -1
            i = _scan_plain_value(data, i + 1, n, depth + 1, unsorted)
            if i < 0 or i >= n:
                return -1
            if data[i] == 0x7D:
                return i + 1
            if data[i] != 0x2C:
                return -1
            i += 1
    return -1


def _sorted_copy(data: bytes, i: int, n: int) -> tuple[bytes, int] | None:
    # the value at data[i] (checked by _scan_plain_value) with the members of every object in
    # key order, and its end; None for a repeated key (Go keeps the last one: the general
    # path's business)
    c = data[i]
    ignored = [False]
    if c == 0x5B:
        parts = [b"["]
        i += 1
        if data[i] == 0x5D:
            return b"[]", i + 1
        while True:
            copied = _sorted_copy(data, i, n)
            if copied is None:
                return None
            parts.append(copied[0])
            i = copied[1]
            parts.append(data[i:i + 1])
            i += 1
            if data[i - 1] == 0x5D:
                return b"".join(parts), i
    if c == 0x7B and data[i + 1] != 0x7D:
        members = []
        j = i + 1
        while True:
            m = _TEXT_STR.match(data, j)
            assert m is not None
            value = m.end() + 1
            j = _scan_plain_value(data, value, n, 1, ignored)
            members.append((m.group()[1:-1], data[m.start():value], value))
            if data[j] == 0x7D:
                break
            j += 1
        members.sort(key=lambda member: member[0])
        if any(members[k - 1][0] == members[k][0] for k in range(1, len(members))):
            return None
        parts = [b"{"]
        for k, (_, head, value) in enumerate(members):
            if k:
                parts.append(b",")
            copied = _sorted_copy(data, value, n)
            if copied is None:
                return None
            parts += [head, copied[0]]
        parts.append(b"}")
        return b"".join(parts), j + 1
    end = _scan_plain_value(data, i, n, 1, ignored)
    return data[i:end], end


def _scan_job(data: bytes, i: int, n: int, ts: bytes) -> tuple[tuple[str, str, int, bytes], int] | None:
    # one job object at data[i]: its (jid, queue, reserve_for, payload) and the offset after
    # its closing brace, or None when it does not qualify (see scan_push)
    if i < 0 or i >= n or data[i] != 0x7B:
        return None
    i += 1
    if i < n and data[i] == 0x7D:
        return None  # {}: no jid, the general path says so
    fields: dict[bytes, bytes] = {}
    while True:
        m = _PLAIN_STR.match(data, i)
        if m is None:
            return None
        i = m.end()
        if i >= n or data[i] != 0x3A:
            return None
        key = m.group()[1:-1]
        if key in fields:
            return None  # a repeated key (the last wins in Go)
        i += 1
        in_order: bytes | None = None
        if key in _STRING_FIELDS:
            m = _PLAIN_STR.match(data, i)
            end = -1 if m is None else m.end()
        elif key in _INT_FIELDS:
            m = _PLAIN_INT.match(data, i)
            end = -1 if m is None else m.end()
        elif key == b"args" or key == b"custom":
            if i >= n or data[i] != (0x5B if key == b"args" else 0x7B):
                return None  # args is an array, custom an object
            unsorted = [False]
            end = _scan_plain_value(data, i, n, 1, unsorted)
            if unsorted[0] and end > 0:
                copied = _sorted_copy(data, i, n)
                if copied is None:
                    return None
                in_order = copied[0]  # (the same size)
        elif key.lower() in _GO_FIELDS:
            return None  # Go matches it to one of its fields case-insensitively: the general path's
        else:
            # a key Go drops (the Node client's "priority", say): its value is checked, not kept
            end = _scan_plain_value(data, i, n, 1, [False])
            key = b""
        if end < 0 or end >= n:
            return None
        if key:
            fields[key] = data[i:end] if in_order is None else in_order
        i = end
        if data[i] == 0x7D:
            break
        if data[i] != 0x2C:
            return None
        i += 1
    stop = i + 1
    # the checks of manager.Push that fail: the general path gives their errors
    jid = fields.get(b"jid")
    if jid is None or len(jid) < 10:
        return None
    jobtype = fields.get(b"jobtype")
    if jobtype is None or jobtype == b'""':
        return None
    args = fields.get(b"args")
    if args is None:
        return None
    if fields.get(b"at", b'""') != b'""':
        return None  # a time to parse, maybe a scheduled job
    reserve = fields.get(b"reserve_for", b"0")
    reserve_for = int(reserve)
    if reserve_for > _MAX_RESERVE:
        return None
    queue = fields.get(b"queue", b'""')
    if queue == b'""':
        queue = b'"default"'
    created = fields.get(b"created_at", b'""')
    stamp = b'"' + ts + b'"'
    parts = [b'{"retry":', fields.get(b"retry", b"25")]
    custom = fields.get(b"custom")
    if custom is not None and custom != b"{}":  # {} is omitted
        parts += [b',"custom":', custom]
    parts += [b',"jid":', jid, b',"queue":', queue, b',"jobtype":', jobtype,
              b',"created_at":', stamp if created == b'""' else created,
              b',"enqueued_at":', stamp, b',"args":', args]
    if reserve_for:
        parts += [b',"reserve_for":', reserve]
    backtrace = fields.get(b"backtrace", b"0")
    if backtrace != b"0":
        parts += [b',"backtrace":', backtrace]
    parts.append(b"}")
    return (jid[1:-1].decode("ascii"), queue[1:-1].decode("ascii"), reserve_for, b"".join(parts)), stop


def scan_push(data: bytes, start: int, ts: bytes) -> tuple[str, str, int, bytes] | None:
    """The embedded server's PUSH fast path: ``data[start:]`` is a PUSH command's JSON,
    ``ts`` the enqueue time (``bytes``, RFC 3339).  Returns ``(jid, queue, reserve_for,
    payload)`` for a valid job that the real server would store exactly as ``payload``
    (its fields copied in Go's order, ``created_at`` defaulted to ``ts``, ``enqueued_at``
    set to ``ts``, ``retry`` to 25, the queue to ``"default"``), or ``None`` for anything
    else (the general path decides then, errors included)."""
    if type(data) is not bytes or type(ts) is not bytes:
        return None
    scanned = _scan_job(data, start, len(data), ts)
    if scanned is None or scanned[1] != len(data):
        return None  # (or bytes after the object)
    return scanned[0]


#: the longest PUSHB element the fast path takes (bytes): a longer one (a huge job) goes to
#: the server's general path, in steps
PUSHB_ELEMENT_MAX = 256 * 1024


def scan_pushb(data: bytes, start: int, ts: bytes,
               limit: int) -> tuple[list[tuple[str, str, int, bytes]], int]:
    """The embedded server's PUSHB fast path, a run of elements per call: ``data[start]``
    is the ``[`` that opens a PUSHB command's array, or the ``,`` after the last element
    a previous call scanned.  Scans elements as :func:`scan_push` does one job, until the
    array ends or ``limit`` bytes are behind.  Returns ``(jobs, next)``: ``jobs`` the
    ``(jid, queue, reserve_for, payload)`` of each element scanned, ``next`` ``len(data)``
    when the array (and the line) ended after them, the offset of the ``,`` to go on from,
    or -1 when the element after them does not qualify (or anything else does not: the
    general path decides the whole command then).  An element of
    ``PUSHB_ELEMENT_MAX`` bytes or more does not qualify: a huge job is the general path's, which
    works through it in steps."""
    jobs: list[tuple[str, str, int, bytes]] = []
    if type(data) is not bytes or type(ts) is not bytes:
        return jobs, -1
    n = len(data)
    if start < 0 or start + 1 >= n or data[start] not in b"[,":
        return jobs, -1
    i = start + 1
    if data[start] == 0x5B and data[i] == 0x5D:
        return jobs, (n if i + 1 == n else -1)  # []
    while True:
        bound = n if n - i <= PUSHB_ELEMENT_MAX else i + PUSHB_ELEMENT_MAX
        scanned = _scan_job(data, i, bound, ts)
        if scanned is None or scanned[1] >= bound:
            return jobs, -1
        jobs.append(scanned[0])
        i = scanned[1]
        if data[i] == 0x5D:
            return jobs, (n if i + 1 == n else -1)
        if data[i] != 0x2C:
            return jobs, -1
        if i - start >= limit:
            return jobs, i
        i += 1


def format_stamp(t: float) -> bytes:
    """``t`` (epoch seconds) as the server stamps jobs: ``time.RFC3339Nano`` in UTC,
    nanoseconds with trailing zeros trimmed, as ``bytes`` (what ``gojson.format_time``
    gives, for the fast paths' ``ts``)."""
    ns = int(round(t * 1e9))
    secs, frac = divmod(ns, 1_000_000_000)
    prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return ((f"{prefix}.{frac:09d}".rstrip("0") + "Z") if frac else prefix + "Z").encode()
