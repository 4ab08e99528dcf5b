# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True, auto_pickle=False
"""Compiled RESP codec: the twin of ``faktory/_resp_py.py`` (same names, same behaviour,
same error texts, the same errors at the same points for the same chunks).

The contract is ``faktory/_resp.pyi``.  Comments here say *why*; the pure module is the
readable reference for *what*.
"""
cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport (PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize,
                            PyBytes_GET_SIZE)
from cpython.dict cimport PyDict_CheckExact, PyDict_Next
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_CheckExact
from cpython.list cimport PyList_GET_ITEM
from cpython.long cimport PyLong_CheckExact
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_CheckExact, PyTuple_GET_ITEM
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_DecodeUTF8
from libc.math cimport fabs, isfinite, signbit
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcmp, memcpy, memmove, strlen
from libc.time cimport time_t, tm

import json
import time as _time
from asyncio import InvalidStateError

from faktory._const import DEFAULT_MAX_BULK, DEFAULT_MAX_LINE, NEED_DATA
from faktory._const import MAX_ARRAY as _PY_MAX_ARRAY, MAX_DEPTH as _PY_MAX_DEPTH
from faktory.errors import ProtocolError, server_error

cdef extern from "<time.h>" nogil:
    tm* gmtime_r(const time_t* timep, tm* result)

cdef extern from "Python.h":
    # Not exposed by Cython's cpython.* pxds; part of the stable C API for decades.
    bint PyUnicode_IS_COMPACT_ASCII(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    bint PyUnicode_CheckExact(object o)
    bint PyList_CheckExact(object o)
    object PyUnicode_AsASCIIString(object o)
    Py_ssize_t PY_SSIZE_T_MAX
    int PyUnicode_KIND(object o)
    Py_UCS4 PyUnicode_READ(int kind, void* data, Py_ssize_t index)
    long long PyLong_AsLongLongAndOverflow(object o, int* overflow) except? -1
    char* PyOS_double_to_string(double value, char format_code, int precision, int flags,
                                int* ptype) except NULL
    double PyOS_string_to_double(const char* s, char** endptr, PyObject* overflow_exception) except? -1.0
    int Py_DTSF_ADD_DOT_0

__all__ = ["IMPLEMENTATION", "NEED_DATA", "Reader", "dumps", "pack_command", "pack_json",
           "pack_fetch", "pack_ack", "pack_push", "pack_pushb", "scan_push",
           "scan_pushb", "format_stamp", "PUSHB_ELEMENT_MAX"]

IMPLEMENTATION = "cython"

cdef object _NEED_DATA = NEED_DATA
cdef Py_ssize_t _MAX_ARRAY = _PY_MAX_ARRAY
cdef int _MAX_DEPTH = _PY_MAX_DEPTH
# A parse that runs off the end of the buffer returns this (never seen outside the module).
cdef object _INCOMPLETE = object()
# "+OK" is most of the traffic: hand out one shared str instead of decoding two bytes.
cdef str _OK = "OK"
# The buffer grows to at least this size on first use, and is given back down to it once
# drained after a large reply (a 64 MiB bulk must not pin 64 MiB for the connection's life).
cdef Py_ssize_t _INITIAL_CAPACITY = 4096
cdef Py_ssize_t _SHRINK_ABOVE = 256 * 1024


@cython.final
cdef class Reader:
    """Push parser for RESP2 replies (see ``faktory/_resp.pyi``)."""

    # The bytearray is storage with spare capacity: only [_pos:_end] holds unconsumed bytes.
    # Consumed bytes are dropped lazily, by sliding the tail to the front when a feed needs
    # room (or by starting over when everything was consumed), instead of after every
    # reply: the common case (each chunk holds whole replies) then never moves memory and
    # never reallocates.  Observable behaviour (buffered(), replies, errors) is the pure
    # module's, which deletes the prefix past 1 KiB.
    cdef bytearray _buf
    cdef Py_ssize_t _pos
    cdef Py_ssize_t _end
    cdef Py_ssize_t _max_bulk
    cdef Py_ssize_t _max_line
    cdef object _dead  # None, or the message of the ProtocolError that killed the reader

    def __init__(self, max_bulk=DEFAULT_MAX_BULK, max_line=DEFAULT_MAX_LINE):
        if max_bulk < 0 or max_line < 1:
            raise ValueError("max_bulk must be >= 0 and max_line >= 1")
        # Lengths on the wire have at most 18 digits, so clamping a huge limit to
        # PY_SSIZE_T_MAX changes no outcome.
        self._max_bulk = min(max_bulk, PY_SSIZE_T_MAX)
        self._max_line = min(max_line, PY_SSIZE_T_MAX)
        self._buf = bytearray()  # allocated on first feed: idle readers cost nothing
        self._pos = 0
        self._end = 0
        self._dead = None

    def feed(self, data):
        """Append received bytes to the buffer."""
        cdef Py_buffer view
        if PyBytes_CheckExact(data):
            self._append(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
            return
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._append(<const char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    cdef int _append(self, const char* data, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap, live, new_cap
        cdef char* base
        if n <= 0:
            return 0
        cap = PyByteArray_GET_SIZE(self._buf)
        live = self._end - self._pos
        if live == 0:
            # Everything consumed: start over at the front.
            self._pos = self._end = 0
        if self._end + n > cap or (cap > _SHRINK_ABOVE and live + n <= cap // 4):
            # Out of room, or a big buffer (left by a big reply) mostly idle: slide the
            # unconsumed tail to the front, then size the buffer for what it holds now.
            if self._pos > 0:
                base = PyByteArray_AS_STRING(self._buf)
                memmove(base, base + self._pos, <size_t>live)
                self._pos = 0
                self._end = live
            if live + n > cap:
                # Geometric growth keeps a reply that arrives in many chunks linear.
                new_cap = max(live + n, cap * 2, _INITIAL_CAPACITY)
            elif cap > _SHRINK_ABOVE and live + n <= cap // 4:
                new_cap = max(2 * (live + n), _INITIAL_CAPACITY)
            else:
                new_cap = cap
            if new_cap != cap:
                PyByteArray_Resize(self._buf, new_cap)
        memcpy(PyByteArray_AS_STRING(self._buf) + self._end, data, n)
        self._end += n
        return 0

    def buffered(self):
        """How many received bytes are not yet consumed by a complete reply."""
        return self._end - self._pos

    def gets(self):
        """Return the next complete reply, or ``NEED_DATA``; raise ``ProtocolError`` on bad bytes."""
        cdef Py_ssize_t end = 0
        if self._dead is not None:
            raise ProtocolError(self._dead)
        reply = self._parse(self._pos, 0, &end)
        if reply is _INCOMPLETE:
            return _NEED_DATA
        self._pos = end
        return reply

    def dispatch(self, callback):
        """Call ``callback(reply)`` for each complete reply, in order; return how many.

        Same as ``while (r := gets()) is not NEED_DATA: callback(r)``.
        """
        cdef Py_ssize_t end = 0
        cdef Py_ssize_t count = 0
        while True:
            # Re-read the state every time: the callback may feed() (moving the buffer)
            # or call gets() itself.
            if self._dead is not None:
                raise ProtocolError(self._dead)
            reply = self._parse(self._pos, 0, &end)
            if reply is _INCOMPLETE:
                return count
            self._pos = end
            count += 1
            callback(reply)

    def resolve(self, waiters, deadlines, orphans):
        """Hand each complete reply to the next of ``waiters`` (a deque of pending
        futures or ``Callback``\\ s, answered in order): pop it and the first entry of
        ``deadlines``, then call its ``set_result(reply)``.

        Stops at the first reply it cannot hand over so (no waiter left, ``orphans`` is
        not empty, or the next waiter's ``set_result`` raises ``InvalidStateError``:
        it is done already, and it goes back to the front with its deadline) and returns
        it, consumed, in a 1-tuple for the caller to deal with; returns ``None`` when no
        complete reply is left.  Bad bytes raise ``ProtocolError`` after every reply
        before them was handed over.  A connection's reply loop in C: the hot path of
        every command.
        """
        cdef Py_ssize_t end = 0
        # Bound once per call, not once per reply (a read usually carries several).
        wpop = waiters.popleft
        dpop = deadlines.popleft
        while True:
            if self._dead is not None:
                raise ProtocolError(self._dead)
            reply = self._parse(self._pos, 0, &end)
            if reply is _INCOMPLETE:
                return None
            self._pos = end
            if orphans or not waiters:
                return (reply,)
            # Popped before set_result: a Callback's handler may send more commands, or
            # end the connection, from inside it.  A done waiter (a cancelled or timed
            # out caller) raises instead of asking done() of every one that is not.
            waiter = wpop()
            deadline = dpop()
            try:
                waiter.set_result(reply)
            except InvalidStateError:
                waiters.appendleft(waiter)
                deadlines.appendleft(deadline)
                return (reply,)

    cdef object _fail(self, str message):
        # Every malformed-input error goes through here so the reader is marked dead
        # without a try/except on the hot path.
        self._dead = message
        raise ProtocolError(message)

    cdef Py_ssize_t _line(self, const char* base, Py_ssize_t pos) except -2:
        # Index of the CR ending the line whose body starts at pos; -1: not all here yet.
        cdef Py_ssize_t end = self._end
        cdef Py_ssize_t cr
        cdef const char* hit = <const char*>memchr(base + pos, 13, <size_t>(end - pos))
        if hit == NULL:
            if end - pos > self._max_line:
                self._fail(f"line longer than {self._max_line} bytes")
            return -1
        cr = hit - base
        if cr - pos > self._max_line:
            self._fail(f"line longer than {self._max_line} bytes")
        if cr + 1 >= end:
            return -1
        if base[cr + 1] != 10:
            self._fail("expected LF after CR")
        return cr

    cdef int _parse_int(self, const char* p, Py_ssize_t n, str what,
                        long long* out) except -1:
        # Strict: optional '-', then 1..18 ASCII digits (no '+', '_', spaces).
        cdef Py_ssize_t i = 0
        cdef long long value = 0
        cdef bint negative = n > 0 and p[0] == 45
        cdef unsigned char c
        if negative:
            i = 1
        if n - i <= 0 or n - i > 18:
            self._bad_int(p, n, what)
        while i < n:
            c = <unsigned char>p[i]
            if c < 48 or c > 57:
                self._bad_int(p, n, what)
            value = value * 10 + (c - 48)
            i += 1
        out[0] = -value if negative else value
        return 0

    cdef object _bad_int(self, const char* p, Py_ssize_t n, str what):
        self._fail(f"invalid {what}: {PyBytes_FromStringAndSize(p, min(n, 32))!r}")

    cdef object _parse(self, Py_ssize_t pos, int depth, Py_ssize_t* out):
        # The pointer is taken here, fresh: nothing below runs Python code that could feed
        # before it is used, except server_error(), after which this frame returns.
        cdef const char* base = PyByteArray_AS_STRING(self._buf)
        cdef Py_ssize_t cr, n, end
        cdef long long number = 0
        cdef unsigned char kind
        cdef list items
        cdef Py_ssize_t remaining
        if pos >= self._end:
            return _INCOMPLETE
        kind = <unsigned char>base[pos]
        if kind != 43 and kind != 45 and kind != 58 and kind != 36 and kind != 42:
            self._fail(f"invalid reply type byte 0x{kind:02x}")
        cr = self._line(base, pos + 1)
        if cr < 0:
            return _INCOMPLETE
        n = cr - pos - 1
        base += pos + 1  # the line body
        out[0] = cr + 2
        if kind == 43:  # '+'
            if n == 2 and base[0] == 79 and base[1] == 75:
                return _OK
            return PyUnicode_DecodeUTF8(base, n, "replace")
        if kind == 45:  # '-'
            code, _, message = PyUnicode_DecodeUTF8(base, n, "replace").partition(" ")
            return server_error(code, message)
        if kind == 58:  # ':'
            self._parse_int(base, n, "integer", &number)
            return number
        if kind == 36:  # '$'
            self._parse_int(base, n, "bulk length", &number)
            if number == -1:
                return None
            if number < -1:
                self._fail(f"invalid bulk length: {number}")
            if number > self._max_bulk:
                self._fail(f"bulk length {number} exceeds limit {self._max_bulk}")
            pos = cr + 2
            end = pos + <Py_ssize_t>number
            if end + 2 > self._end:
                return _INCOMPLETE
            base = PyByteArray_AS_STRING(self._buf)
            if base[end] != 13 or base[end + 1] != 10:
                self._fail("bulk string not terminated by CRLF")
            out[0] = end + 2
            return PyBytes_FromStringAndSize(base + pos, <Py_ssize_t>number)
        # '*'
        self._parse_int(base, n, "array length", &number)
        if number == -1:
            return None
        if number < -1:
            self._fail(f"invalid array length: {number}")
        if number > _MAX_ARRAY:
            self._fail(f"array length {number} exceeds limit {_MAX_ARRAY}")
        if depth >= _MAX_DEPTH:
            self._fail(f"arrays nested deeper than {_MAX_DEPTH}")
        items = []
        pos = cr + 2
        remaining = <Py_ssize_t>number
        while remaining > 0:
            remaining -= 1
            item = self._parse(pos, depth + 1, &pos)
            if item is _INCOMPLETE:
                return _INCOMPLETE
            items.append(item)
        out[0] = pos
        return items


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode


# ---------------------------------------------------------------------------------------
# JSON writer.  The stdlib's C encoder pays, per container, a markers-dict entry and a list
# of chunks, and, per call, a Python-level encode()/iterencode() and a new encoder object.
# This writer produces the same bytes straight into one buffer for the types jobs are made
# of: exact str (keys too), int, float, bool, None, list, tuple and dict.  Anything else
# (subclasses, NaN/infinity, non-str keys, big ints, very deep nesting that may be circular)
# makes it give up on the whole object, which then goes through the stdlib encoder exactly
# as in the pure module: same output, same exceptions, by construction.

cdef struct _Out:
    char* data
    Py_ssize_t len
    Py_ssize_t cap

# Deeper than this may be a reference cycle: leave it to the stdlib (ValueError/RecursionError).
cdef int _JSON_MAX_DEPTH = 64
cdef const char* _HEX = b"0123456789abcdef"


cdef int _reserve(_Out* out, Py_ssize_t extra) except -1:
    cdef Py_ssize_t cap
    cdef char* data
    if out.len + extra <= out.cap:
        return 0
    cap = max(out.cap * 2, out.len + extra)
    data = <char*>PyMem_Realloc(out.data, <size_t>cap)
    if data == NULL:
        raise MemoryError()
    out.data = data
    out.cap = cap
    return 0


cdef inline int _put(_Out* out, const char* p, Py_ssize_t n) except -1:
    if out.len + n > out.cap:
        _reserve(out, n)
    memcpy(out.data + out.len, p, <size_t>n)
    out.len += n
    return 0


cdef inline char _short_escape(unsigned int c) noexcept:
    # The letter of a two-character escape (\" \\ \b \f \n \r \t), 0 when there is none.
    if c == 34 or c == 92:
        return <char>c
    if c == 8:
        return 98
    if c == 12:
        return 102
    if c == 10:
        return 110
    if c == 13:
        return 114
    if c == 9:
        return 116
    return 0


cdef inline void _put_u_escape(char* w, unsigned int u) noexcept:
    # \uXXXX (lower-case hex, as json.dumps writes it) at w[0:6]
    w[0] = 92
    w[1] = 117
    w[2] = _HEX[(u >> 12) & 15]
    w[3] = _HEX[(u >> 8) & 15]
    w[4] = _HEX[(u >> 4) & 15]
    w[5] = _HEX[u & 15]


# 1 for the bytes a JSON string holds as they are (printable ASCII but '"' and '\\').
cdef unsigned char _PLAIN[256]
for _c in range(256):
    _PLAIN[_c] = 1 if 32 <= _c <= 126 and _c != 34 and _c != 92 else 0


cdef int _put_str(_Out* out, object text) except -1:
    # The stdlib's encode_basestring_ascii: printable ASCII but '"' and '\\' as is,
    # the usual short escapes, everything else \\u00XX / \\uXXXX / a surrogate pair.
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    cdef Py_ssize_t i
    cdef unsigned int c  # not Py_UCS4: Cython treats that as a 1-char str
    cdef char* w
    cdef char e
    _reserve(out, n + 2)
    w = out.data + out.len
    w[0] = 34
    w += 1
    i = 0
    if PyUnicode_IS_COMPACT_ASCII(text):
        # Fast path: copy the run of plain characters at once (one table look-up each).
        while i < n and _PLAIN[(<const unsigned char*>data)[i]]:
            i += 1
        memcpy(w, data, <size_t>i)
        w += i
    out.len = w - out.data
    while i < n:
        c = <unsigned int>PyUnicode_READ(kind, data, i)
        i += 1
        _reserve(out, 12 + 1 + (n - i))
        w = out.data + out.len
        if 32 <= c <= 126 and c != 34 and c != 92:
            w[0] = <char>c
            out.len += 1
            continue
        e = _short_escape(c)
        if e:
            w[0] = 92
            w[1] = e
            out.len += 2
        elif c >= 0x10000:  # outside the BMP: a surrogate pair
            _put_u_escape(w, 0xD800 | ((c - 0x10000) >> 10))
            _put_u_escape(w + 6, 0xDC00 | ((c - 0x10000) & 0x3FF))
            out.len += 12
        else:
            _put_u_escape(w, c)
            out.len += 6
    _reserve(out, 1)
    out.data[out.len] = 34
    out.len += 1
    return 0


cdef int _put_json(_Out* out, object obj, int depth) except -1:
    # 0: written; 1: not a type handled here (nothing useful written; the caller gives up).
    cdef long long number
    cdef unsigned long long magnitude
    cdef int overflow = 0
    cdef char digits[24]
    cdef Py_ssize_t i, n
    cdef char* text
    cdef double value
    cdef Py_ssize_t pos = 0
    cdef PyObject* key = NULL
    cdef PyObject* item = NULL
    if PyUnicode_CheckExact(obj):
        return _put_str(out, obj)
    if obj is None:
        return _put(out, b"null", 4)
    if obj is True:
        return _put(out, b"true", 4)
    if obj is False:
        return _put(out, b"false", 5)
    if PyLong_CheckExact(obj):
        number = PyLong_AsLongLongAndOverflow(obj, &overflow)
        if overflow:
            return 1
        magnitude = <unsigned long long>number
        if number < 0:
            magnitude = (~magnitude) + 1
        i = 24
        while True:
            i -= 1
            digits[i] = <char>(48 + magnitude % 10)
            magnitude //= 10
            if magnitude == 0:
                break
        if number < 0:
            i -= 1
            digits[i] = 45
        return _put(out, digits + i, 24 - i)
    if PyFloat_CheckExact(obj):
        value = PyFloat_AS_DOUBLE(obj)
        if not isfinite(value):
            return 1
        # float.__repr__, which is what the stdlib encoder calls
        text = PyOS_double_to_string(value, 114, 0, Py_DTSF_ADD_DOT_0, NULL)
        try:
            _put(out, text, <Py_ssize_t>strlen(text))
        finally:
            PyMem_Free(text)
        return 0
    if depth >= _JSON_MAX_DEPTH:
        return 1
    if PyList_CheckExact(obj) or PyTuple_CheckExact(obj):
        n = len(obj)
        _put(out, b"[", 1)
        for i in range(n):
            if i:
                _put(out, b",", 1)
            item = PyList_GET_ITEM(obj, i) if PyList_CheckExact(obj) else PyTuple_GET_ITEM(obj, i)
            if _put_json(out, <object>item, depth + 1):
                return 1
        return _put(out, b"]", 1)
    if PyDict_CheckExact(obj):
        _put(out, b"{", 1)
        i = 0
        while PyDict_Next(obj, &pos, &key, &item):
            if not PyUnicode_CheckExact(<object>key):
                return 1
            if i:
                _put(out, b",", 1)
            i = 1
            _put_str(out, <object>key)
            _put(out, b":", 1)
            if _put_json(out, <object>item, depth + 1):
                return 1
        return _put(out, b"}", 1)
    return 1


cdef object _framed(const char* head, Py_ssize_t head_len, object obj, const char* tail,
                    Py_ssize_t tail_len):
    # head + JSON(obj) + tail as bytes, or None when the stdlib encoder must do it.
    cdef _Out out
    out.data = NULL
    out.len = 0
    out.cap = 0
    try:
        _reserve(&out, head_len + tail_len + 256)
        _put(&out, head, head_len)
        if _put_json(&out, obj, 0):
            return None
        _put(&out, tail, tail_len)
        return PyBytes_FromStringAndSize(out.data, out.len)
    finally:
        PyMem_Free(out.data)


def dumps(obj):
    """Compact, single-line, ASCII JSON (no spaces: MUTATE requires it; NaN rejected)."""
    out = _framed(b"", 0, obj, b"", 0)
    if out is None:
        return _encode(obj)
    return PyUnicode_DecodeASCII(PyBytes_AS_STRING(out), PyBytes_GET_SIZE(out), NULL)


cdef int _check_arg(object arg) except -1:
    if not isinstance(arg, str):
        raise TypeError(f"command argument must be str, not {type(arg).__name__}: {arg!r}")
    if "\r" in arg or "\n" in arg or " " in arg or not arg:
        raise ValueError(f"invalid command argument (empty, or contains a space or line break): {arg!r}")
    return 0


def pack_command(verb, *args):
    """``VERB arg1 arg2\\r\\n``; each argument must be non-empty, without spaces or line breaks."""
    _check_arg(verb)
    for arg in args:
        _check_arg(arg)
    return (" ".join((verb,) + args) + "\r\n").encode("utf-8")


def pack_json(verb, obj):
    """``VERB <compact json>\\r\\n``."""
    _check_arg(verb)
    if PyUnicode_CheckExact(verb) and PyUnicode_IS_COMPACT_ASCII(verb):
        head = PyUnicode_AsASCIIString(verb) + b" "
        out = _framed(head, len(head), obj, b"\r\n", 2)
        if out is not None:
            return out
    return (verb + " " + _encode(obj) + "\r\n").encode("ascii")


def pack_fetch(queues):
    """``FETCH q1 q2 ...\\r\\n`` (at least one queue)."""
    if not queues:
        raise ValueError("FETCH needs at least one queue")
    for queue in queues:
        _check_arg(queue)
    return ("FETCH " + " ".join(queues) + "\r\n").encode("utf-8")


cdef bint _plain(object text):
    # True when json.dumps(text) == '"' + text + '"': printable ASCII, no quote or backslash.
    cdef const unsigned char* p
    cdef Py_ssize_t i, n
    cdef unsigned char c
    if not PyUnicode_CheckExact(text) or not PyUnicode_IS_COMPACT_ASCII(text):
        return False
    p = <const unsigned char*>PyUnicode_DATA(text)
    n = PyUnicode_GET_LENGTH(text)
    for i in range(n):
        c = p[i]
        if c < 32 or c > 126 or c == 34 or c == 92:
            return False
    return True


def pack_ack(jid):
    """``ACK {"jid":"..."}\\r\\n``."""
    cdef Py_ssize_t n
    cdef bytes out
    cdef char* p
    if not isinstance(jid, str):
        raise TypeError(f"jid must be str, not {type(jid).__name__}: {jid!r}")
    if not _plain(jid):
        return b'ACK {"jid":' + _encode(jid).encode("ascii") + b"}\r\n"
    # One allocation, three copies: the ASCII text is already the JSON string body.
    n = PyUnicode_GET_LENGTH(jid)
    out = PyBytes_FromStringAndSize(NULL, 12 + n + 4)
    p = PyBytes_AS_STRING(out)
    memcpy(p, b'ACK {"jid":"', 12)
    memcpy(p + 12, PyUnicode_DATA(jid), n)
    memcpy(p + 12 + n, b'"}\r\n', 4)
    return out


def pack_push(job):
    """``PUSH <job json>\\r\\n``."""
    out = _framed(b"PUSH ", 5, job, b"\r\n", 2)
    if out is None:
        return b"PUSH " + _encode(job).encode("ascii") + b"\r\n"
    return out


def pack_pushb(jobs):
    """``PUSHB [<job>,<job>,...]\\r\\n``: the list encoded once, in linear time."""
    if not PyList_CheckExact(jobs):
        jobs = list(jobs)
    out = _framed(b"PUSHB ", 6, jobs, b"\r\n", 2)
    if out is None:
        return b"PUSHB " + _encode(jobs).encode("ascii") + b"\r\n"
    return out


# ----------------------------------------------------------------------------- the server's PUSH

# scan_push: the embedded server's fast path for the common PUSH payload.  It accepts only
# what Go's decode-then-marshal leaves byte for byte as it is (compact JSON; strings of
# printable ASCII without quote, backslash, <, > or & (in args and custom also valid UTF-8
# but U+2028 and U+2029); integers without sign games (in args and custom any number that
# float64 prints back as it came); objects in args/custom without a repeated key, whose keys
# it puts in order where they are not, as Go sorts map keys) and copies those bytes into the
# stored payload in the order Go writes client.Job.  A top-level key that is none of
# client.Job's fields in any letter case (the Node client's "priority") is dropped, as Go
# drops it, once its value is scanned the same way.  Anything else returns None and
# the general path (gojson) decides, errors included.  The pure twin is the reference.

cdef Py_ssize_t _SCAN_MAX_DEPTH = 32
cdef long long _MAX_RESERVE = 86400

# the slots of the top-level fields in the span arrays: strings, then integers, then the rest
cdef enum:
    _K_JID = 0
    _K_QUEUE = 1
    _K_JOBTYPE = 2
    _K_CREATED = 3
    _K_ENQUEUED = 4
    _K_AT = 5
    _K_RETRY = 6
    _K_RESERVE = 7
    _K_BACKTRACE = 8
    _K_ARGS = 9
    _K_CUSTOM = 10
    _K_COUNT = 11


cdef inline bint _plain_byte(unsigned char c) noexcept:
    return 0x20 <= c <= 0x7e and c != 0x22 and c != 0x5c and c != 0x3c and c != 0x3e and c != 0x26


cdef Py_ssize_t _scan_plain_str(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    # p[i] == '"': the end of a string whose bytes Go writes back unchanged, else -1
    i += 1
    while i < n and _plain_byte(p[i]):
        i += 1
    if i < n and p[i] == 0x22:
        return i + 1
    return -1


cdef Py_ssize_t _scan_text_str(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    # p[i] == '"': the end of a string of args or custom that Go writes back unchanged (plain
    # ASCII as above, and valid UTF-8 but U+2028 and U+2029, which Go escapes), else -1
    cdef unsigned char c, c1
    i += 1
    while i < n:
        c = p[i]
        if c < 0x80:
            if not _plain_byte(c):
                break
            i += 1
            continue
        if 0xc2 <= c <= 0xdf:
            if n - i < 2 or not (0x80 <= p[i + 1] <= 0xbf):
                return -1
            i += 2
        elif 0xe0 <= c <= 0xef:
            if n - i < 3:
                return -1
            c1 = p[i + 1]
            if not (0x80 <= c1 <= 0xbf) or not (0x80 <= p[i + 2] <= 0xbf):
                return -1
            if (c == 0xe0 and c1 < 0xa0) or (c == 0xed and c1 > 0x9f):
                return -1  # overlong, or a surrogate: Go reads U+FFFD
            if c == 0xe2 and c1 == 0x80 and (p[i + 2] == 0xa8 or p[i + 2] == 0xa9):
                return -1  # U+2028, U+2029: escaped by Go
            i += 3
        elif 0xf0 <= c <= 0xf4:
            if n - i < 4:
                return -1
            c1 = p[i + 1]
            if not (0x80 <= c1 <= 0xbf) or not (0x80 <= p[i + 2] <= 0xbf) \
                    or not (0x80 <= p[i + 3] <= 0xbf):
                return -1
            if (c == 0xf0 and c1 < 0x90) or (c == 0xf4 and c1 > 0x8f):
                return -1  # overlong, or beyond U+10FFFF
            i += 4
        else:
            return -1
    if i < n and p[i] == 0x22:
        return i + 1
    return -1


cdef Py_ssize_t _scan_plain_int(const unsigned char* p, Py_ssize_t i, Py_ssize_t n,
                                Py_ssize_t max_digits) noexcept:
    # 0, or -?[1-9][0-9]* with at most max_digits digits; the caller checks what follows
    cdef Py_ssize_t start
    if i < n and p[i] == 0x30:  # "0" ("-0" is not plain: Go keeps the sign of a float)
        return i + 1
    if i < n and p[i] == 0x2d:
        i += 1
    if i >= n or not (0x31 <= p[i] <= 0x39):
        return -1
    start = i
    while i < n and 0x30 <= p[i] <= 0x39:
        i += 1
    if i - start > max_digits:
        return -1
    return i


cdef bint _go_number(const unsigned char* p, Py_ssize_t start, Py_ssize_t end) noexcept:
    # p[start:end], a JSON number: whether Go writes the float64 it reads back as these bytes
    # (strconv 'f' with the shortest digits for 1e-6 <= |x| < 1e21, else 'e' with e-7 for
    # e-07; -0 stays -0), the digits being Python's repr's (the same shortest round trip)
    cdef char* endp = NULL
    cdef char* r = NULL
    cdef const char* q
    cdef double x, ax
    cdef char digits[40]
    cdef char out[80]
    cdef int nd = 0, dp = 0, e = 0, w = 0, k, ex
    cdef bint seen_point = False, eneg = False
    cdef char tmp[8]
    if end - start > 40:
        return False
    try:
        x = PyOS_string_to_double(<const char*>p + start, &endp, NULL)
        if endp != <char*>p + end or not isfinite(x):
            return False
        if x == 0:
            if signbit(x):
                return end - start == 2 and p[start] == 0x2d and p[start + 1] == 0x30
            return end - start == 1 and p[start] == 0x30
        r = PyOS_double_to_string(x, b"r", 0, 0, NULL)
    except Exception:
        return False
    q = r
    if q[0] == b"-":
        out[w] = b"-"
        w += 1
        q += 1
    while q[0] != 0 and q[0] != b"e":
        if q[0] == b".":
            seen_point = True
        elif nd == 0 and q[0] == b"0":  # a leading zero
            if seen_point:
                dp -= 1
        elif nd < 32:
            digits[nd] = q[0]
            nd += 1
            if not seen_point:
                dp += 1
        q += 1
    if q[0] == b"e":
        q += 1
        if q[0] == b"-":
            eneg = True
            q += 1
        elif q[0] == b"+":
            q += 1
        while q[0] != 0:
            e = e * 10 + (q[0] - 48)
            q += 1
        dp += -e if eneg else e
    PyMem_Free(r)
    if nd == 0 or nd >= 32:
        return False  # pragma: no cover - not a finite non-zero repr
    while nd > 1 and digits[nd - 1] == b"0":
        nd -= 1
    ax = fabs(x)
    if ax < 1e-6 or ax >= 1e21:
        out[w] = digits[0]
        w += 1
        if nd > 1:
            out[w] = b"."
            w += 1
            memcpy(out + w, digits + 1, nd - 1)
            w += nd - 1
        out[w] = b"e"
        w += 1
        ex = dp - 1
        if ex < 0:
            out[w] = b"-"
            ex = -ex
        else:
            out[w] = b"+"
        w += 1
        k = 0
        while ex > 0 or k < (1 if dp - 1 < 0 else 2):
            tmp[k] = <char>(48 + ex % 10)
            ex //= 10
            k += 1
        while k > 0:
            k -= 1
            out[w] = tmp[k]
            w += 1
    elif dp <= 0:
        out[w] = b"0"
        out[w + 1] = b"."
        w += 2
        for k in range(-dp):
            out[w] = b"0"
            w += 1
        memcpy(out + w, digits, nd)
        w += nd
    elif dp >= nd:
        memcpy(out + w, digits, nd)
        w += nd
        for k in range(dp - nd):
            out[w] = b"0"
            w += 1
    else:
        memcpy(out + w, digits, dp)
        w += dp
        out[w] = b"."
        w += 1
        memcpy(out + w, digits + dp, nd - dp)
        w += nd - dp
    return w == end - start and memcmp(out, p + start, w) == 0


cdef Py_ssize_t _scan_number(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    # a number of args or custom (a float64 to Go): the end of one Go writes back unchanged
    cdef Py_ssize_t start = i, first
    cdef bint whole = True
    if i < n and p[i] == 0x2d:
        i += 1
    first = i
    if i < n and p[i] == 0x30:
        i += 1
    elif i < n and 0x31 <= p[i] <= 0x39:
        while i < n and 0x30 <= p[i] <= 0x39:
            i += 1
    else:
        return -1
    if i < n and p[i] == 0x2e:
        whole = False
        i += 1
        if i >= n or not (0x30 <= p[i] <= 0x39):
            return -1
        while i < n and 0x30 <= p[i] <= 0x39:
            i += 1
    if i < n and (p[i] == 0x65 or p[i] == 0x45):
        whole = False
        i += 1
        if i < n and (p[i] == 0x2b or p[i] == 0x2d):
            i += 1
        if i >= n or not (0x30 <= p[i] <= 0x39):
            return -1
        while i < n and 0x30 <= p[i] <= 0x39:
            i += 1
    if whole and i - first <= 15 and not (p[start] == 0x2d and p[first] == 0x30):
        return i  # |v| < 10**15 < 2**53: float64 prints it as is
    return i if _go_number(p, start, i) else -1


cdef inline bint _literal(const unsigned char* p, Py_ssize_t i, Py_ssize_t n, const char* word,
                          Py_ssize_t size) noexcept:
    return n - i >= size and memcmp(p + i, word, size) == 0


cdef inline bint _key_after(const unsigned char* prev, Py_ssize_t prev_len,
                            const unsigned char* key, Py_ssize_t key_len) noexcept:
    # key > prev, bytewise (Go's sort.Strings: byte order, which is code point order in UTF-8)
    cdef int r = memcmp(prev, key, key_len if key_len < prev_len else prev_len)
    return r < 0 or (r == 0 and key_len > prev_len)


cdef Py_ssize_t _scan_plain_value(const unsigned char* p, Py_ssize_t i, Py_ssize_t n,
                                  Py_ssize_t depth, bint* unsorted) noexcept:
    # one value of args or custom that Go's []interface{} / map round trip leaves unchanged
    # but for the order of object keys (Go sorts them): ``unsorted`` set when one is not
    # strictly after the one before it (_sorted_copy puts them in order, or finds a repeat)
    cdef unsigned char c
    cdef Py_ssize_t key, key_len, prev, prev_len
    if i >= n or depth > _SCAN_MAX_DEPTH:
        return -1
    c = p[i]
    if c == 0x22:
        return _scan_text_str(p, i, n)
    if c == 0x2d or 0x30 <= c <= 0x39:
        return _scan_number(p, i, n)
    if c == 0x74:
        return i + 4 if _literal(p, i, n, b"true", 4) else -1
    if c == 0x66:
        return i + 5 if _literal(p, i, n, b"false", 5) else -1
    if c == 0x6e:
        return i + 4 if _literal(p, i, n, b"null", 4) else -1
    if c == 0x5b:
        i += 1
        if i < n and p[i] == 0x5d:
            return i + 1
        while True:
            i = _scan_plain_value(p, i, n, depth + 1, unsorted)
            if i < 0 or i >= n:
                return -1
            if p[i] == 0x5d:
                return i + 1
            if p[i] != 0x2c:
                return -1
            i += 1
    if c == 0x7b:
        i += 1
        if i < n and p[i] == 0x7d:
            return i + 1
        prev = -1
        prev_len = 0
        while True:
            if i >= n or p[i] != 0x22:
                return -1
            key = i + 1
            i = _scan_text_str(p, i, n)
            if i < 0:
                return -1
            key_len = i - 1 - key
            if prev >= 0 and not _key_after(p + prev, prev_len, p + key, key_len):
                unsorted[0] = True  # not strictly after the previous key, as Go's sorted ones are
            prev = key
            prev_len = key_len
            if i >= n or p[i] != 0x3a:
                return -1
            i = _scan_plain_value(p, i + 1, n, depth + 1, unsorted)
            if i < 0 or i >= n:
                return -1
            if p[i] == 0x7d:
                return i + 1
            if p[i] != 0x2c:
                return -1
            i += 1
    return -1


cdef struct _Member:
    Py_ssize_t key      # the key's opening quote
    Py_ssize_t value    # its value (after the colon)
    Py_ssize_t end      # after the value


cdef inline int _key_cmp(const unsigned char* p, _Member* a, _Member* b) noexcept:
    # bytewise order of the keys (between their quotes)
    cdef Py_ssize_t la = a.value - 2 - a.key - 1
    cdef Py_ssize_t lb = b.value - 2 - b.key - 1
    cdef int r = memcmp(p + a.key + 1, p + b.key + 1, la if la < lb else lb)
    if r != 0:
        return r
    return (la > lb) - (la < lb)


cdef Py_ssize_t _emit_sorted(const unsigned char* p, Py_ssize_t i, Py_ssize_t n, char* out,
                             Py_ssize_t* w) noexcept:
    # copy the value at p[i] (checked by _scan_plain_value) to out + w[0] with the members of
    # every object in key order; the end of the value, or -1 for a repeated key (Go keeps the
    # last one: the general path's business) or no memory
    cdef unsigned char c = p[i]
    cdef bint ignored = False
    cdef Py_ssize_t j, e, count, cap, k, m
    cdef _Member* members
    cdef _Member* grown
    cdef _Member tmp
    if c == 0x5b:
        out[w[0]] = b"["
        w[0] += 1
        i += 1
        if p[i] == 0x5d:
            out[w[0]] = b"]"
            w[0] += 1
            return i + 1
        while True:
            i = _emit_sorted(p, i, n, out, w)
            if i < 0:
                return -1
            c = p[i]
            out[w[0]] = <char>c
            w[0] += 1
            i += 1
            if c == 0x5d:
                return i
    if c == 0x7b and p[i + 1] != 0x7d:
        cap = 8
        count = 0
        members = <_Member*>malloc(cap * sizeof(_Member))
        if members is NULL:
            return -1
        j = i + 1
        while True:
            if count == cap:
                cap *= 2
                grown = <_Member*>realloc(members, cap * sizeof(_Member))
                if grown is NULL:
                    free(members)
                    return -1
                members = grown
            members[count].key = j
            j = _scan_text_str(p, j, n) + 1  # after the colon
            members[count].value = j
            j = _scan_plain_value(p, j, n, 1, &ignored)
            members[count].end = j
            count += 1
            if p[j] == 0x7d:
                break
            j += 1
        for k in range(1, count):  # insertion sort: objects are small
            tmp = members[k]
            m = k - 1
            while m >= 0 and _key_cmp(p, &members[m], &tmp) > 0:
                members[m + 1] = members[m]
                m -= 1
            members[m + 1] = tmp
        for k in range(1, count):
            if _key_cmp(p, &members[k - 1], &members[k]) == 0:
                free(members)
                return -1
        out[w[0]] = b"{"
        w[0] += 1
        for k in range(count):
            if k:
                out[w[0]] = b","
                w[0] += 1
            memcpy(out + w[0], p + members[k].key, members[k].value - members[k].key)
            w[0] += members[k].value - members[k].key
            if _emit_sorted(p, members[k].value, n, out, w) < 0:
                free(members)
                return -1
        out[w[0]] = b"}"
        w[0] += 1
        free(members)
        return j + 1
    e = _scan_plain_value(p, i, n, 1, &ignored)
    memcpy(out + w[0], p + i, e - i)
    w[0] += e - i
    return e


cdef object _sorted_copy(const unsigned char* p, Py_ssize_t start, Py_ssize_t end, Py_ssize_t n):
    # the value p[start:end] with its objects' keys in order (the same size), or None
    cdef bytes out = PyBytes_FromStringAndSize(NULL, end - start)
    cdef Py_ssize_t w = 0
    if _emit_sorted(p, start, n, PyBytes_AS_STRING(out), &w) != end or w != end - start:
        return None
    return out


cdef int _field(const unsigned char* p, Py_ssize_t n) noexcept:
    # the slot of a top-level key (its bytes between the quotes), -1 for any other key
    if n == 3 and memcmp(p, b"jid", 3) == 0:
        return _K_JID
    if n == 4 and memcmp(p, b"args", 4) == 0:
        return _K_ARGS
    if n == 5:
        if memcmp(p, b"queue", 5) == 0:
            return _K_QUEUE
        if memcmp(p, b"retry", 5) == 0:
            return _K_RETRY
    if n == 7 and memcmp(p, b"jobtype", 7) == 0:
        return _K_JOBTYPE
    if n == 10 and memcmp(p, b"created_at", 10) == 0:
        return _K_CREATED
    if n == 11:
        if memcmp(p, b"enqueued_at", 11) == 0:
            return _K_ENQUEUED
        if memcmp(p, b"reserve_for", 11) == 0:
            return _K_RESERVE
    if n == 9 and memcmp(p, b"backtrace", 9) == 0:
        return _K_BACKTRACE
    if n == 2 and memcmp(p, b"at", 2) == 0:
        return _K_AT
    if n == 6 and memcmp(p, b"custom", 6) == 0:
        return _K_CUSTOM
    return -1


cdef bint _folds_to_field(const unsigned char* p, Py_ssize_t n) noexcept:
    # whether a key (plain ASCII) is one of Go's client.Job fields but for letter case, or
    # "failure" (a field the fast path leaves to the general one)
    cdef unsigned char low[11]
    cdef Py_ssize_t k
    if n > 11:
        return False
    for k in range(n):
        low[k] = p[k] + 32 if 0x41 <= p[k] <= 0x5a else p[k]
    return _field(low, n) >= 0 or (n == 7 and memcmp(low, b"failure", 7) == 0)


cdef long long _int_value(const unsigned char* p, Py_ssize_t n) noexcept:
    # a plain integer's value (at most 18 digits: no overflow)
    cdef long long v = 0
    cdef Py_ssize_t i = 1 if p[0] == 0x2d else 0
    while i < n:
        v = v * 10 + (p[i] - 0x30)
        i += 1
    return -v if p[0] == 0x2d else v


cdef inline char* _put_raw(char* w, const void* src, Py_ssize_t n) noexcept:
    memcpy(w, src, n)
    return w + n


cdef object _scan_job(const unsigned char* p, Py_ssize_t n, Py_ssize_t start, const char* tsp,
                      Py_ssize_t ts_len, Py_ssize_t* stop):
    # one job object at p[start]: its (jid, queue, reserve_for, payload) and, in stop, the
    # offset after its closing brace; None when it does not qualify (see scan_push)
    cdef Py_ssize_t i, key, vstart
    cdef int field
    cdef Py_ssize_t begin[_K_COUNT]
    cdef Py_ssize_t end[_K_COUNT]
    cdef long long reserve_for = 0
    cdef Py_ssize_t size, jid_len, queue_len
    cdef bint custom, reserve, backtrace
    cdef bint unsorted
    cdef bytes out
    cdef char* w
    cdef const unsigned char* args_p = NULL
    cdef const unsigned char* custom_p = NULL
    args_sorted = None
    custom_sorted = None
    for i in range(_K_COUNT):
        begin[i] = -1
        end[i] = -1
    i = start
    if i < 0 or i >= n or p[i] != 0x7b:
        return None
    i += 1
    if i < n and p[i] == 0x7d:
        return None  # {}: no jid, the general path says so
    while True:
        if i >= n or p[i] != 0x22:
            return None
        key = i + 1
        i = _scan_plain_str(p, i, n)
        if i < 0 or i >= n or p[i] != 0x3a:
            return None
        field = _field(p + key, i - 1 - key)
        if field < 0:
            if _folds_to_field(p + key, i - 1 - key):
                return None  # Go matches it to one of its fields case-insensitively
            # a key Go drops (the Node client's "priority", say): its value checked, not kept
            unsorted = False
            i = _scan_plain_value(p, i + 1, n, 1, &unsorted)
        else:
            if begin[field] >= 0:
                return None  # a repeated key (the last wins in Go)
            i += 1
            vstart = i
            if field <= _K_AT:
                if i >= n or p[i] != 0x22:
                    return None
                i = _scan_plain_str(p, i, n)
            elif field <= _K_BACKTRACE:
                i = _scan_plain_int(p, i, n, 18)  # Go's int is 64 bits: 18 digits always fit
            else:
                if i >= n or p[i] != (0x5b if field == _K_ARGS else 0x7b):
                    return None  # args is an array, custom an object
                unsorted = False
                i = _scan_plain_value(p, i, n, 1, &unsorted)
                if unsorted and i > 0:
                    sorted_value = _sorted_copy(p, vstart, i, n)
                    if sorted_value is None:
                        return None
                    if field == _K_ARGS:
                        args_sorted = sorted_value
                    else:
                        custom_sorted = sorted_value
        if i < 0 or i >= n:
            return None
        if field >= 0:
            begin[field] = vstart
            end[field] = i
        if p[i] == 0x7d:
            break
        if p[i] != 0x2c:
            return None
        i += 1
    stop[0] = i + 1
    # the checks of manager.Push that fail: the general path gives their errors
    jid_len = end[_K_JID] - begin[_K_JID] - 2
    if begin[_K_JID] < 0 or jid_len < 8:
        return None
    if begin[_K_JOBTYPE] < 0 or end[_K_JOBTYPE] - begin[_K_JOBTYPE] == 2:
        return None
    if begin[_K_ARGS] < 0:
        return None
    if begin[_K_AT] >= 0 and end[_K_AT] - begin[_K_AT] != 2:
        return None  # a time to parse, maybe a scheduled job
    if begin[_K_RESERVE] >= 0:
        reserve_for = _int_value(p + begin[_K_RESERVE], end[_K_RESERVE] - begin[_K_RESERVE])
        if reserve_for > _MAX_RESERVE:
            return None
    if begin[_K_QUEUE] < 0 or end[_K_QUEUE] - begin[_K_QUEUE] == 2:
        queue_len = 0
    else:
        queue_len = end[_K_QUEUE] - begin[_K_QUEUE]
    custom = begin[_K_CUSTOM] >= 0 and end[_K_CUSTOM] - begin[_K_CUSTOM] > 2   # {} is omitted
    reserve = reserve_for != 0
    backtrace = begin[_K_BACKTRACE] >= 0 and not (
        end[_K_BACKTRACE] - begin[_K_BACKTRACE] == 1 and p[begin[_K_BACKTRACE]] == 0x30)
    # {"retry":R,"custom":C,"jid":J,"queue":Q,"jobtype":T,"created_at":"..","enqueued_at":"..",
    #  "args":A,"reserve_for":N,"backtrace":N}
    size = 9 + (end[_K_RETRY] - begin[_K_RETRY] if begin[_K_RETRY] >= 0 else 2)
    if custom:
        size += 10 + end[_K_CUSTOM] - begin[_K_CUSTOM]
    size += 7 + jid_len + 2
    size += 9 + (queue_len if queue_len else 9)
    size += 11 + end[_K_JOBTYPE] - begin[_K_JOBTYPE]
    if begin[_K_CREATED] >= 0 and end[_K_CREATED] - begin[_K_CREATED] > 2:
        size += 14 + end[_K_CREATED] - begin[_K_CREATED]
    else:
        size += 14 + ts_len + 2
    size += 16 + ts_len
    size += 9 + end[_K_ARGS] - begin[_K_ARGS]
    if reserve:
        size += 15 + end[_K_RESERVE] - begin[_K_RESERVE]
    if backtrace:
        size += 13 + end[_K_BACKTRACE] - begin[_K_BACKTRACE]
    size += 1
    # args and custom as they came, or with their objects' keys put in order (the same size)
    args_p = p + begin[_K_ARGS] if args_sorted is None else <const unsigned char*>PyBytes_AS_STRING(args_sorted)
    if custom:
        custom_p = p + begin[_K_CUSTOM] if custom_sorted is None \
            else <const unsigned char*>PyBytes_AS_STRING(custom_sorted)
    out = PyBytes_FromStringAndSize(NULL, size)
    w = PyBytes_AS_STRING(out)
    w = _put_raw(w, b'{"retry":', 9)
    if begin[_K_RETRY] >= 0:
        w = _put_raw(w, p + begin[_K_RETRY], end[_K_RETRY] - begin[_K_RETRY])
    else:
        w = _put_raw(w, b"25", 2)
    if custom:
        w = _put_raw(w, b',"custom":', 10)
        w = _put_raw(w, custom_p, end[_K_CUSTOM] - begin[_K_CUSTOM])
    w = _put_raw(w, b',"jid":', 7)
    w = _put_raw(w, p + begin[_K_JID], jid_len + 2)
    w = _put_raw(w, b',"queue":', 9)
    if queue_len:
        w = _put_raw(w, p + begin[_K_QUEUE], queue_len)
    else:
        w = _put_raw(w, b'"default"', 9)
    w = _put_raw(w, b',"jobtype":', 11)
    w = _put_raw(w, p + begin[_K_JOBTYPE], end[_K_JOBTYPE] - begin[_K_JOBTYPE])
    w = _put_raw(w, b',"created_at":', 14)
    if begin[_K_CREATED] >= 0 and end[_K_CREATED] - begin[_K_CREATED] > 2:
        w = _put_raw(w, p + begin[_K_CREATED], end[_K_CREATED] - begin[_K_CREATED])
    else:
        w = _put_raw(w, b'"', 1)
        w = _put_raw(w, tsp, ts_len)
        w = _put_raw(w, b'"', 1)
    w = _put_raw(w, b',"enqueued_at":"', 16)
    w = _put_raw(w, tsp, ts_len)
    w = _put_raw(w, b'","args":', 9)
    w = _put_raw(w, args_p, end[_K_ARGS] - begin[_K_ARGS])
    if reserve:
        w = _put_raw(w, b',"reserve_for":', 15)
        w = _put_raw(w, p + begin[_K_RESERVE], end[_K_RESERVE] - begin[_K_RESERVE])
    if backtrace:
        w = _put_raw(w, b',"backtrace":', 13)
        w = _put_raw(w, p + begin[_K_BACKTRACE], end[_K_BACKTRACE] - begin[_K_BACKTRACE])
    w = _put_raw(w, b"}", 1)
    if w != PyBytes_AS_STRING(out) + size:  # pragma: no cover - the sizes above are wrong
        raise AssertionError("scan_push: payload size mismatch")
    jid = PyUnicode_DecodeASCII(<const char*>p + begin[_K_JID] + 1, jid_len, NULL)
    if queue_len:
        queue = PyUnicode_DecodeASCII(<const char*>p + begin[_K_QUEUE] + 1, queue_len - 2, NULL)
    else:
        queue = "default"
    return (jid, queue, reserve_for, out)


def scan_push(data, Py_ssize_t start, ts):
    """The embedded server's PUSH fast path: ``data[start:]`` is a PUSH command's JSON,
    ``ts`` the enqueue time (``bytes``, RFC 3339).  Returns ``(jid, queue, reserve_for,
    payload)`` for a valid job that the real server would store exactly as ``payload``
    (its fields copied in Go's order, ``created_at`` defaulted to ``ts``, ``enqueued_at``
    set to ``ts``, ``retry`` to 25, the queue to ``"default"``), or ``None`` for anything
    else (the general path decides then, errors included)."""
    cdef Py_ssize_t stop = -1
    cdef Py_ssize_t n
    if not PyBytes_CheckExact(data) or not PyBytes_CheckExact(ts):
        return None
    n = PyBytes_GET_SIZE(data)
    if start < 0 or start >= n:
        return None
    job = _scan_job(<const unsigned char*>PyBytes_AS_STRING(data), n, start, PyBytes_AS_STRING(ts),
                    PyBytes_GET_SIZE(ts), &stop)
    if job is None or stop != n:
        return None  # (or bytes after the object)
    return job


#: the longest PUSHB element the fast path takes (bytes): scanning one costs up to some
#: 30 ms; a longer one (a huge job) goes to the server's general path, in steps
PUSHB_ELEMENT_MAX = 256 * 1024


def scan_pushb(data, Py_ssize_t start, ts, Py_ssize_t limit):
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
    cdef const unsigned char* p
    cdef Py_ssize_t n, i, stop, bound
    cdef const char* tsp
    cdef Py_ssize_t ts_len
    cdef list jobs = []
    if not PyBytes_CheckExact(data) or not PyBytes_CheckExact(ts):
        return jobs, -1
    p = <const unsigned char*>PyBytes_AS_STRING(data)
    n = PyBytes_GET_SIZE(data)
    tsp = PyBytes_AS_STRING(ts)
    ts_len = PyBytes_GET_SIZE(ts)
    if start < 0 or start + 1 >= n or not (p[start] == 0x5b or p[start] == 0x2c):
        return jobs, -1
    i = start + 1
    if p[start] == 0x5b and p[i] == 0x5d:
        return jobs, (n if i + 1 == n else -1)  # []
    while True:
        stop = -1
        bound = n if n - i <= PUSHB_ELEMENT_MAX else i + PUSHB_ELEMENT_MAX
        job = _scan_job(p, bound, i, tsp, ts_len, &stop)
        if job is None or stop >= bound:
            return jobs, -1
        jobs.append(job)
        i = stop
        if p[i] == 0x5d:
            return jobs, (n if i + 1 == n else -1)
        if p[i] != 0x2c:
            return jobs, -1
        if i - start >= limit:
            return jobs, i
        i += 1


def format_stamp(double t):
    """``t`` (epoch seconds) as the server stamps jobs: ``time.RFC3339Nano`` in UTC,
    nanoseconds with trailing zeros trimmed, as ``bytes`` (what ``gojson.format_time``
    gives, for the fast paths' ``ts``)."""
    cdef double v = t * 1e9
    cdef long long ns, frac
    cdef time_t secs
    cdef tm parts
    cdef char out[40]
    cdef int w, k
    if not (0 <= v < 9.0e18):
        return _format_stamp(t)  # before 1970, or far ahead: the general formatting
    ns = <long long>v  # an integer already (t * 1e9 >= 2**53 from 1970-04 on) or rounded as round()
    if <double>ns != v:
        return _format_stamp(t)
    secs = <time_t>(ns // 1000000000)
    frac = ns % 1000000000
    if gmtime_r(&secs, &parts) is NULL or not (1000 <= parts.tm_year + 1900 <= 9999):
        return _format_stamp(t)
    _put_number(out, parts.tm_year + 1900, 4)
    out[4] = b"-"
    _put_number(out + 5, parts.tm_mon + 1, 2)
    out[7] = b"-"
    _put_number(out + 8, parts.tm_mday, 2)
    out[10] = b"T"
    _put_number(out + 11, parts.tm_hour, 2)
    out[13] = b":"
    _put_number(out + 14, parts.tm_min, 2)
    out[16] = b":"
    _put_number(out + 17, parts.tm_sec, 2)
    w = 19
    if frac:
        out[w] = b"."
        _put_number(out + w + 1, frac, 9)
        w += 10
        while out[w - 1] == b"0":
            w -= 1
    out[w] = b"Z"
    return PyBytes_FromStringAndSize(out, w + 1)


cdef inline void _put_number(char* w, long long v, int digits) noexcept:
    cdef int k
    for k in range(digits - 1, -1, -1):
        w[k] = <char>(48 + v % 10)
        v //= 10


def _format_stamp(t):
    ns = int(round(t * 1e9))
    secs, frac = divmod(ns, 1_000_000_000)
    prefix = _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(secs))
    return ((f"{prefix}.{frac:09d}".rstrip("0") + "Z") if frac else prefix + "Z").encode()
