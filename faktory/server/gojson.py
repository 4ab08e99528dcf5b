"""What the embedded server needs to read and write JSON the way the real (Go) server does.

The real Faktory server decodes every payload with Go's ``encoding/json`` into its own
structs and encodes its replies from them.  To be indistinguishable we reproduce, for
the inputs that matter:

* the syntax error texts of Go's JSON scanner (``invalid character 'n' looking for
  beginning of object key string``, ``unexpected end of JSON input``, ...);
* the decoding rules of a struct target: field names matched case-insensitively,
  unknown fields dropped, ``null`` leaving scalars untouched, type mismatches reported as
  ``json: cannot unmarshal <kind> into Go struct field <Struct>.<field> of type <T>``;
* the encoding: struct fields in declaration order with ``omitempty``, map keys sorted,
  ``<``, ``>``, ``&``, U+2028 and U+2029 escaped as ``\\u003c`` ..., numbers of
  ``interface{}`` values passed through float64 and printed like Go's ``strconv``;
* RFC 3339 times as ``time.RFC3339Nano`` formats and parses them, with Go's parse errors.

The fast path is Python's C JSON codec; the Go-specific work only runs where the
result would differ (a syntax error, a float, a large integer, a non-canonical key).
"""
from __future__ import annotations

import calendar
import itertools
import json
import json.encoder
import json.scanner
import math
import re
import secrets
import time
from decimal import Decimal
from typing import Any, Generator

__all__ = [
    "GoFloat", "JSONError", "loads", "syntax_error", "decode_struct", "kind_of",
    "normalize_any", "encode", "encode_steps", "dumps_map", "format_float", "format_time", "parse_time",
    "TimeParseError", "go_quote", "go_upper", "JOB", "FAILURE", "FAIL_PAYLOAD", "CLIENT_BEAT",
    "CLIENT_DATA", "OPERATION", "decode_job", "fast_job",
]


# --------------------------------------------------------------------------- numbers

class GoFloat(float):
    """A float that remembers the literal it was parsed from (for Go's error texts)."""

    __slots__ = ("lit",)
    lit: str

    def __new__(cls, lit: str) -> "GoFloat":
        self = float.__new__(cls, lit)
        self.lit = lit
        return self


class GoNegZero(int):
    """The integer literal ``-0``: Python reads it as ``0``, Go as float64 ``-0`` (written back
    as ``-0`` in an ``interface{}`` value such as ``args``; ``0`` in an int field)."""

    __slots__ = ()


NEG_ZERO = GoNegZero(0)


def format_float(value: float) -> str:
    """Format a float64 like Go's ``encoding/json`` (``strconv.FormatFloat(f, 'f'|'e', -1, 64)``).

    Positional notation for 1e-6 <= |f| < 1e21, else exponent notation with Go's
    exponent style (``1e+21``, ``1e-7``); shortest round-trip digits in both.
    """
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    if not math.isfinite(value):
        raise ValueError(f"unsupported value: {value!r}")
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    exp = int(exponent)  # finite: always an int
    text = "".join(map(str, digits))
    mag = abs(value)
    neg = "-" if sign else ""
    if mag < 1e-6 or mag >= 1e21:
        e10 = len(text) - 1 + exp
        mant = text[0] + ("." + text[1:] if len(text) > 1 else "")
        if e10 < 0:
            return f"{neg}{mant}e-{-e10:d}" if -e10 >= 10 else f"{neg}{mant}e-{-e10}"
        return f"{neg}{mant}e+{e10:02d}"
    if exp >= 0:
        return neg + text + "0" * exp
    point = len(text) + exp
    if point <= 0:
        return neg + "0." + "0" * (-point) + text
    return neg + text[:point] + "." + text[point:]


# --------------------------------------------------------------------------- quoting

_SIMPLE_ESC = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}


def go_quote(s: str) -> str:
    """Go's ``strconv.Quote`` (``%q``): double-quoted, non-printable runes escaped."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif 0xDC80 <= o <= 0xDCFF:  # an undecodable byte (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif o in _SIMPLE_ESC:
            out.append(_SIMPLE_ESC[o])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def _time_quote(s: str) -> str:
    # The time package's own quote(): only '"' and '\\' escaped, other non-ASCII or
    # control bytes as \xNN of their UTF-8 bytes.
    out = ['"']
    for ch in s:
        o = ord(ch)
        if o < 0x20 or o >= 0x80:
            if 0xDC80 <= o <= 0xDCFF:
                data = bytes([o - 0xDC00])
            else:
                data = ch.encode("utf-8", "surrogatepass")
            out.extend(f"\\x{b:02x}" for b in data)
        else:
            if ch == '"' or ch == "\\":
                out.append("\\")
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_upper(text: str) -> str:
    """Go's ``strings.ToUpper``: the simple (one rune to one rune) upper case of each rune,
    so ``ß`` stays ``ß`` where Python writes ``SS``; each byte of invalid UTF-8 (a
    surrogate escape here) becomes U+FFFD."""
    if text.isascii():
        return text.upper()
    out = []
    for c in text:
        if "\ud800" <= c <= "\udfff":
            out.append("\ufffd")
            continue
        upper = c.upper()
        if len(upper) != 1:
            # Python's full mapping expands; Go's simple one is the one-rune title case
            # where there is one (Greek with ypogegrammeni), else the rune unchanged
            title = c.title()
            upper = title if len(title) == 1 else c
        out.append(upper)
    return "".join(out)


def _quote_char(c: int) -> str:
    # encoding/json's quoteChar: the offending *byte*, shown as the rune of that value.
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    return "'" + go_quote(chr(c))[1:-1] + "'"


# --------------------------------------------------------------------------- syntax errors

_WS = re.compile(rb"[ \t\r\n]*")
_STR_BODY = re.compile(rb'[^"\\\x00-\x1f]*')
_DIGITS = re.compile(rb"[0-9]*")


def _span(pattern: "re.Pattern[bytes]", data: bytes, pos: int) -> int:
    # end of the (possibly empty) match of an always-matching pattern at pos
    m = pattern.match(data, pos)
    return pos if m is None else m.end()
_HEX = b"0123456789abcdefABCDEF"


def syntax_error(data: bytes) -> str | None:
    """The error Go's JSON scanner reports for ``data`` (``None`` when it is valid JSON)."""
    n = len(data)
    pos = 0
    stack: list[int] = []  # 0: in object (after value expect , or }), 1: in array
    
    def err(i: int, context: str) -> str:
        return f"invalid character {_quote_char(data[i])} {context}"

    # state: expecting a value at pos
    while True:
        pos = _span(_WS, data, pos)
        if pos >= n:
            return "unexpected end of JSON input"
        c = data[pos]
        if c == 0x7B:  # {
            pos = _span(_WS, data, pos + 1)
            if pos >= n:
                return "unexpected end of JSON input"
            if data[pos] == 0x7D:
                pos += 1
                # fall to end-of-value handling
            else:
                r = _scan_key(data, pos)
                if isinstance(r, str):
                    return r
                pos = r
                stack.append(0)
                continue
        elif c == 0x5B:  # [
            pos = _span(_WS, data, pos + 1)
            if pos >= n:
                return "unexpected end of JSON input"
            if data[pos] == 0x5D:
                pos += 1
            else:
                stack.append(1)
                continue
        elif c == 0x22:
            r = _scan_string(data, pos)
            if isinstance(r, str):
                return r
            pos = r
        elif c == 0x2D or 0x30 <= c <= 0x39:
            r = _scan_number(data, pos)
            if isinstance(r, str):
                return r
            pos = r
        elif c in (0x74, 0x66, 0x6E):  # t f n
            word = {0x74: b"true", 0x66: b"false", 0x6E: b"null"}[c]
            for k in range(1, len(word)):
                if pos + k >= n:
                    return "unexpected end of JSON input"
                if data[pos + k] != word[k]:
                    return err(pos + k,
                               f"in literal {word.decode()} (expecting {_quote_char(word[k])})")
            pos += len(word)
        else:
            return err(pos, "looking for beginning of value")
        # end of a value: close containers as far as possible
        while True:
            pos = _span(_WS, data, pos)
            if not stack:
                if pos < n:
                    return err(pos, "after top-level value")
                return None
            if pos >= n:
                return "unexpected end of JSON input"
            c = data[pos]
            if stack[-1] == 0:
                if c == 0x2C:
                    r = _scan_key(data, _span(_WS, data, pos + 1))
                    if isinstance(r, str):
                        return r
                    pos = r
                    break  # expect a value
                if c == 0x7D:
                    stack.pop()
                    pos += 1
                    continue
                return err(pos, "after object key:value pair")
            if c == 0x2C:
                pos += 1
                break
            if c == 0x5D:
                stack.pop()
                pos += 1
                continue
            return err(pos, "after array element")


#: Above this size a syntax error's text is found from where Python's C decoder stopped
#: (see :func:`error_text`) instead of by scanning the whole input in Python.
FULL_SCAN_LIMIT = 64 * 1024
_WINDOW = 64 * 1024
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"{}[]")
_NUMBER_CHARS = frozenset(b"-+0123456789.eE")
_VALUE_CONTEXT = {0x7B: b'{"k":', 0x5B: b'["",'}   # inside { or [, where a value is expected


def error_text(data: bytes, exc: ValueError, text: str | None = None) -> str:
    """Go's error text for ``data``, which Python's decoder refused with ``exc``.

    Small inputs (and errors without a position) are scanned whole by :func:`syntax_error`.
    A large one is not: Go's scanner stops at the first byte it cannot take, which is in
    the token where Python's decoder stopped.  The nesting there is read off the valid
    prefix with C-speed string operations (strings removed, brackets paired off), and the
    Python scanner runs on a few bytes that reproduce that nesting followed by the rest of
    the input from that token, so the cost no longer grows with the input.
    """
    pos = getattr(exc, "pos", None)
    msg = getattr(exc, "msg", "")
    if len(data) <= FULL_SCAN_LIMIT or pos is None:
        return syntax_error(data) or "invalid JSON"
    if text is None:  # (the decoder's text when data was valid UTF-8: the same characters)
        text = data.decode("utf-8", "surrogateescape")
    bp = len(text[:pos].encode("utf-8", "surrogateescape"))
    return _error_from(data, bp, msg) or "invalid JSON"


def _outside_strings(prefix: bytes) -> bytes:
    """The bytes of ``prefix`` (valid JSON so far, not ending inside a string) that are not
    in a string: escaped backslashes and quotes dropped, then every other quote-separated
    part kept."""
    if b"\\" in prefix:
        prefix = prefix.replace(b"\\\\", b"").replace(b'\\"', b"")
    return b"".join(prefix.split(b'"')[0::2])


def _opening_quote(data: bytes, pos: int) -> int:
    """The opening quote of the string that ``pos`` is in (its content holds no unescaped
    quote: the nearest quote before ``pos`` behind an even number of backslashes)."""
    end = pos
    while True:
        q = data.rfind(b'"', 0, end)
        if q < 0:
            return -1
        k = q
        while k > 0 and data[k - 1] == 0x5C:
            k -= 1
        if (q - k) % 2 == 0:
            return q
        end = q


def _error_from(data: bytes, bp: int, msg: str) -> str | None:
    if msg.startswith("Unterminated string"):
        return "unexpected end of JSON input"  # Go reads to the end looking for the quote
    state = "value"
    if msg.startswith(("Invalid control character", "Invalid \\escape", "Invalid \\u")):
        # inside a string: restart at its opening quote, as a value (Go's texts for a
        # string's errors do not depend on it being a key)
        q = _opening_quote(data, bp)
        if q < 0:
            return syntax_error(data)
        bp = q
    elif msg.startswith("Expecting property name"):
        state = "key"
    elif msg.startswith("Expecting ':'"):
        state = "colon"
    elif msg.startswith(("Expecting ','", "Extra data")):
        start = bp
        while start > 0 and data[start - 1] in _NUMBER_CHARS:
            start -= 1
        if start < bp and data[start] in b"-0123456789" and bp < len(data) and data[bp] in _NUMBER_CHARS:
            # Python ended a number that Go goes on reading ("1." "1e" "01"): the error
            # is Go's, somewhere in that number
            bp = start
        else:
            state = "after"
    elif not msg.startswith("Expecting value"):
        return syntax_error(data)  # a message this shortcut does not know: the whole scan
    prefix = data[:bp]
    if state == "colon":
        # the key just read ends before bp (maybe before whitespace): restart at it
        key_end = prefix.rstrip(b" \t\r\n")
        q = _opening_quote(data, len(key_end) - 1)
        if q < 0:
            return syntax_error(data)
        prefix = data[:q]
    brackets = _outside_strings(prefix).translate(None, _NOT_BRACKETS)
    while True:
        reduced = brackets.replace(b"{}", b"").replace(b"[]", b"")
        if reduced == brackets:
            break
        brackets = reduced
    if any(b in b"}]" for b in brackets):
        return syntax_error(data)  # the prefix was not what Python accepted: be exact
    outer = b"".join(_VALUE_CONTEXT[b] if b == 0x7B else b"[" for b in brackets[:-1])
    top = brackets[-1] if brackets else None
    if state == "value":
        head = outer + (_VALUE_CONTEXT[top] if top is not None else b"")
    elif state == "after":
        # a string as the value before: a number could run on into what follows
        head = outer + ({0x7B: b'{"k":""', 0x5B: b'[""'}[top] if top is not None else b'""')
    elif top != 0x7B:
        return syntax_error(data)  # a key outside an object: not what Python said; be exact
    elif state == "key":
        head = outer + b'{"k":"",'
    else:  # colon: the key again, then what follows it
        head, bp = outer + b"{", len(prefix)
    # Go's scanner fails within a few bytes of bp, but a long token (a huge string) may lie
    # in between: a window first, the rest only if the window ran out before the error
    result = syntax_error(head + data[bp:bp + _WINDOW])
    if (result is None or result == "unexpected end of JSON input") and bp + _WINDOW < len(data):
        result = syntax_error(head + data[bp:])
    return result


def _scan_key(data: bytes, pos: int) -> int | str:
    # An object key and its colon from data[pos] (blanks before it skipped): returns the
    # index after the colon, or an error.
    n = len(data)
    if pos >= n:
        return "unexpected end of JSON input"
    if data[pos] != 0x22:
        return f"invalid character {_quote_char(data[pos])} looking for beginning of object key string"
    r = _scan_string(data, pos)
    if isinstance(r, str):
        return r
    pos = _span(_WS, data, r)
    if pos >= n:
        return "unexpected end of JSON input"
    if data[pos] != 0x3A:
        return f"invalid character {_quote_char(data[pos])} after object key"
    return pos + 1


def _scan_string(data: bytes, pos: int) -> int | str:
    # data[pos] is the opening quote; returns the index after the closing one, or an error.
    n = len(data)
    pos += 1
    while True:
        pos = _span(_STR_BODY, data, pos)
        if pos >= n:
            return "unexpected end of JSON input"
        c = data[pos]
        if c == 0x22:
            return pos + 1
        if c == 0x5C:
            pos += 1
            if pos >= n:
                return "unexpected end of JSON input"
            e = data[pos]
            if e in b'"\\/bfnrt':
                pos += 1
                continue
            if e == 0x75:
                for k in range(1, 5):
                    if pos + k >= n:
                        return "unexpected end of JSON input"
                    if data[pos + k] not in _HEX:
                        return f"invalid character {_quote_char(data[pos + k])} in \\u hexadecimal character escape"
                pos += 5
                continue
            return f"invalid character {_quote_char(e)} in string escape code"
        return f"invalid character {_quote_char(c)} in string literal"


def _scan_number(data: bytes, pos: int) -> int | str:
    n = len(data)
    if data[pos] == 0x2D:
        pos += 1
        if pos >= n:
            return "unexpected end of JSON input"
        if not 0x30 <= data[pos] <= 0x39:
            return f"invalid character {_quote_char(data[pos])} in numeric literal"
    if data[pos] == 0x30:
        pos += 1
    else:
        pos = _span(_DIGITS, data, pos + 1)
    if pos < n and data[pos] == 0x2E:
        pos += 1
        if pos >= n:
            return "unexpected end of JSON input"
        if not 0x30 <= data[pos] <= 0x39:
            return f"invalid character {_quote_char(data[pos])} after decimal point in numeric literal"
        pos = _span(_DIGITS, data, pos + 1)
    if pos < n and data[pos] in b"eE":
        pos += 1
        if pos < n and data[pos] in b"+-":
            pos += 1
        if pos >= n:
            return "unexpected end of JSON input"
        if not 0x30 <= data[pos] <= 0x39:
            return f"invalid character {_quote_char(data[pos])} in exponent of numeric literal"
        pos = _span(_DIGITS, data, pos + 1)
    return pos


class JSONError(ValueError):
    """A payload Go's decoder would reject; ``str(exc)`` is Go's error text."""


def _no_constant(name: str) -> Any:
    raise ValueError(name)


_decoder = json.JSONDecoder(parse_float=GoFloat, parse_constant=_no_constant)
_py_loads = _decoder.decode


def _go_int(lit: str) -> int:
    return NEG_ZERO if lit == "-0" else int(lit)


# Used only when the payload may hold a ``-0`` literal (see loads): every integer then costs
# a Python call, which the common payload does not pay.
_nz_loads = json.JSONDecoder(parse_float=GoFloat, parse_int=_go_int, parse_constant=_no_constant).decode
_MAYBE_NEG_ZERO = re.compile(rb"-0(?![0-9.eE])").search
# The C scanner behind ``decode``, called directly for the common case (no leading
# whitespace): saves the two Python frames and the regex match of ``decode`` per payload.
_scan_once = getattr(json.scanner, "c_make_scanner", None)
_scan_once = _scan_once(_decoder) if _scan_once is not None else None
_JSON_WS = " \t\n\r"


def _fix_text(text: str) -> str:
    # Undecodable bytes (surrogateescape) and lone surrogates become U+FFFD, as in Go.
    return re.sub("[\ud800-\udfff]", "\ufffd", text)


def loads(data: bytes) -> Any:
    """Parse ``data`` like Go would accept it; raise :class:`JSONError` with Go's text."""
    try:
        text = data.decode("utf-8")
        valid: str | None = text
    except UnicodeDecodeError:
        text = _fix_text(data.decode("utf-8", "surrogateescape"))
        valid = None
    if b"-0" in data and _MAYBE_NEG_ZERO(data) is not None:
        try:
            return _nz_loads(text)
        except RecursionError:
            raise JSONError("exceeded max depth") from None
        except ValueError as exc:
            raise JSONError(error_text(data, exc, valid)) from None
    if _scan_once is not None and text and text[0] not in _JSON_WS:
        # one parse, also when it fails: its position leads error_text to Go's text
        try:
            obj, end = _scan_once(text, 0)
        except StopIteration as exc:  # the value at the start is not one
            raise JSONError(error_text(data, json.JSONDecodeError("Expecting value", text, exc.value),
                                       valid)) from None
        except json.JSONDecodeError as exc:
            raise JSONError(error_text(data, exc, valid)) from None
        except (ValueError, RecursionError):
            pass  # NaN and friends, too deep: the general path below
        else:
            if end == len(text):
                return obj
            rest = text[end:].lstrip(_JSON_WS)
            if not rest:
                return obj
            extra = json.JSONDecodeError("Extra data", text, len(text) - len(rest))
            raise JSONError(error_text(data, extra, valid)) from None
    try:
        return _py_loads(text)
    except RecursionError:
        raise JSONError("exceeded max depth") from None
    except ValueError as exc:
        raise JSONError(error_text(data, exc, valid)) from None


def decode_valid(data: bytes) -> Any:
    """What :func:`loads` returns for ``data`` that Go's scanner accepts, nested too little to
    run out of recursion and with no integer too long for ``int()`` (the sliced parse of a
    big line checked that first): the same decoders, without the error handling."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = _fix_text(data.decode("utf-8", "surrogateescape"))
    if b"-0" in data and _MAYBE_NEG_ZERO(data) is not None:
        return _nz_loads(text)
    if _scan_once is not None and text and text[0] not in _JSON_WS:
        obj, end = _scan_once(text, 0)
        if end == len(text):
            return obj
    return _py_loads(text)


# --------------------------------------------------------------------------- decoding

def kind_of(value: Any) -> str:
    """Go's name for the JSON kind of a decoded value (for UnmarshalTypeError texts)."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _num_lit(value: Any) -> str:
    if isinstance(value, GoFloat):
        return value.lit
    if type(value) is GoNegZero:
        return "-0"
    return str(value) if isinstance(value, int) else repr(value)


# Field kinds
STR, INT, INT64, UINT8, PTR_INT, ANY_LIST, ANY_MAP, STR_LIST, STRUCT, TIME = range(10)

_INT_RANGE = {INT: (-(1 << 63), (1 << 63) - 1), INT64: (-(1 << 63), (1 << 63) - 1),
              PTR_INT: (-(1 << 63), (1 << 63) - 1), UINT8: (0, 255)}


class Schema:
    """A Go struct as encoding/json sees it: JSON names, kinds, Go type names."""

    def __init__(self, go_name: str, fields: list[tuple[str, int, str, "Schema | None"]]) -> None:
        self.go_name = go_name          # e.g. "client.Job"
        self.short = go_name.rsplit(".", 1)[-1]
        self.fields = {f[0]: f for f in fields}
        self.folded = {f[0].lower(): f[0] for f in fields}


class _Errors:
    __slots__ = ("first",)

    def __init__(self) -> None:
        self.first: str | None = None

    def add(self, text: str) -> None:
        if self.first is None:
            self.first = text


def _type_error(errors: _Errors, what: str, struct: str, path: str, gotype: str) -> None:
    if struct:
        errors.add(f"json: cannot unmarshal {what} into Go struct field {struct}.{path} of type {gotype}")
    else:
        errors.add(f"json: cannot unmarshal {what} into Go value of type {gotype}")


def _field_for(schema: Schema, key: str) -> str | None:
    if key in schema.fields:
        return key
    return schema.folded.get(key.lower().replace("\u017f", "s"))


def decode_struct(value: Any, schema: Schema, errors: _Errors | None = None, *,
                  struct: str = "", path: str = "",
                  known: dict[int, tuple[Any, Any]] | None = None) -> dict[str, Any] | None:
    """Decode a parsed JSON value into ``schema`` the Go way.

    Returns a dict of the fields present (JSON names as keys, normalised values), or
    ``None`` for JSON ``null``.  The first type error is left in ``errors.first``, or
    raised as :class:`JSONError` when no ``errors`` collector is given.

    ``known``: ``{id(item): (item, normalize_any(item) or the exception it raised)}`` for
    field values (those very lists and dicts) the caller already normalised.
    """
    errs = errors if errors is not None else _Errors()
    if value is None:
        return None
    out: dict[str, Any] = {}
    if not isinstance(value, dict):
        _type_error(errs, kind_of(value), struct, path, schema.go_name)
    else:
        top = struct or schema.short
        for key, item in value.items():
            name = _field_for(schema, key)
            if name is None:
                continue
            _, kind, gotype, sub = schema.fields[name]
            fpath = f"{path}.{name}" if path else name
            decoded = _decode_field(item, kind, gotype, sub, errs, top, fpath, known)
            if decoded is not _SKIP:
                out[name] = decoded
    if errors is None and errs.first is not None:
        raise JSONError(errs.first)
    return out


_SKIP = object()


def _decode_field(item: Any, kind: int, gotype: str, sub: Schema | None, errs: _Errors,
                  struct: str, path: str, known: dict[int, tuple[Any, Any]] | None = None) -> Any:
    if item is None:
        # null: no effect on scalars; pointers, slices and maps become nil
        return None if kind in (PTR_INT, ANY_LIST, ANY_MAP, STR_LIST, STRUCT) else _SKIP
    if kind == STR or kind == TIME:
        if type(item) is not str:
            _type_error(errs, kind_of(item), struct, path, gotype)
            return _SKIP
        if kind == TIME:
            try:
                parse_time(item)
            except TimeParseError as exc:
                errs.add(str(exc))
                return _SKIP
        return item
    if kind in _INT_RANGE:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            _type_error(errs, kind_of(item), struct, path, gotype)
            return _SKIP
        lo, hi = _INT_RANGE[kind]
        if isinstance(item, float) or not lo <= item <= hi or (kind == UINT8 and type(item) is GoNegZero):
            # (strconv.ParseUint refuses "-0"; ParseInt takes it as 0)
            _type_error(errs, "number " + _num_lit(item), struct, path, gotype)
            return _SKIP
        return item
    if kind == ANY_LIST or kind == ANY_MAP:
        if type(item) is not (list if kind == ANY_LIST else dict):
            _type_error(errs, kind_of(item), struct, path, gotype)
            return _SKIP
        try:
            return _normalized(item, known)
        except _Overflow as exc:
            _type_error(errs, "number " + exc.args[0], struct, path, "float64")
            return _SKIP
    if kind == STR_LIST:
        if type(item) is not list:
            _type_error(errs, kind_of(item), struct, path, gotype)
            return _SKIP
        out = []
        for elem in item:
            if elem is None:
                out.append("")
            elif type(elem) is str:
                out.append(elem)
            else:
                _type_error(errs, kind_of(elem), struct, path, "string")
                out.append("")
        return out
    if kind == STRUCT:
        assert sub is not None
        if type(item) is not dict:
            _type_error(errs, kind_of(item), struct, path, sub.go_name)
            return _SKIP
        return decode_struct(item, sub, errs, struct=struct, path=path)
    raise AssertionError(kind)  # pragma: no cover


class _Overflow(Exception):
    """A number float64 cannot hold (in :func:`normalize_any`); ``args[0]``: its literal."""


_TOKEN = "\x00" + secrets.token_hex(6) + ":"
_TOKEN_RE = re.compile(re.escape(json.dumps(_TOKEN)[:-1]) + r'(-?[0-9][0-9.e+-]*)\\u0000"')
_TWO53 = 1 << 53


def _norm_float(f: float) -> Any:
    if not math.isfinite(f):
        raise _Overflow(_num_lit(f))
    if f == 0:
        return _TOKEN + "-0\x00" if math.copysign(1.0, f) < 0 else 0
    if f.is_integer() and abs(f) < 1e21:
        if abs(f) <= _TWO53:
            return int(f)
        return int(Decimal(repr(f)))  # shortest digits, zero padded, as Go prints it
    if abs(f) >= 1e-4:
        return float(f)  # Python's repr agrees with Go here
    return _TOKEN + format_float(float(f)) + "\x00"


def normalize_any(value: Any) -> Any:
    """Pass a decoded ``interface{}`` value through Go's types.

    Numbers become what float64 prints (``1.0`` -> ``1``, big integers rounded), maps get
    sorted keys.  Returns ``value`` itself when nothing changes.
    """
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is GoNegZero:
        return _TOKEN + "-0\x00"
    if t is int:
        if -_TWO53 <= value <= _TWO53:
            return value
        try:
            return _norm_float(float(value))
        except OverflowError:
            raise _Overflow(str(value)) from None
    if t is float or t is GoFloat:
        if not math.isfinite(value):
            raise _Overflow(_num_lit(value))
        return _norm_float(value)
    if t is list:
        for item in value:  # the common args: strings and small integers, nothing to change
            ti = type(item)
            if ti is not str and (ti is not int or not -_TWO53 <= item <= _TWO53):
                break
        else:
            return value
        out = None
        for i, item in enumerate(value):
            new = normalize_any(item)
            if new is not item or type(new) is not type(item):
                if out is None:
                    out = list(value)
                out[i] = new
        return value if out is None else out
    if t is dict:
        keys = list(value)
        changed = keys != sorted(keys)
        items = {}
        for k in (sorted(keys) if changed else keys):
            item = value[k]
            new = normalize_any(item)
            if new is not item or type(new) is not type(item):
                changed = True
            items[k] = new
        return items if changed else value
    return value


# --------------------------------------------------------------------------- encoding

_py_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                             check_circular=False).encode
_py_dumps_sorted = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                                    check_circular=False, sort_keys=True).encode


def _c_encoder(sort_keys: bool) -> Any:
    # The C encoder that JSONEncoder.encode drives, built once and called directly (no
    # Python frames per call); None where the interpreter has none or another signature.
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return None
    try:
        enc = make(None, json.JSONEncoder().default, json.encoder.encode_basestring, None, ":", ",",
                   sort_keys, False, False)
        if "".join(enc({"b": [1, "\u00e9", None, True, 1.5], "a": {}}, 0)) != (
                '{"a":{},"b":[1,"\u00e9",null,true,1.5]}' if sort_keys
                else '{"b":[1,"\u00e9",null,true,1.5],"a":{}}'):
            return None  # pragma: no cover
    except Exception:  # pragma: no cover - another signature: use JSONEncoder
        return None
    return enc


_c_dumps = _c_encoder(False)
_c_dumps_sorted = _c_encoder(True)


def _finish(text: str) -> bytes:
    # Go's HTML-safe escapes: five ``in`` tests and ``replace`` calls (memchr-like C loops)
    # rather than one regex search and ``str.translate`` (a dict lookup per character:
    # 1.4 s for 12 MB of short strings, against 0.1 s)
    if "<" in text or ">" in text or "&" in text or "\u2028" in text or "\u2029" in text:
        text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
                .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    if "\\u0000" in text and _TOKEN_RE.search(text):
        text = _TOKEN_RE.sub(lambda m: m.group(1), text)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _fix_text(text).encode("utf-8")


def encode(obj: Any) -> bytes:
    """Encode an already normalised object (dicts in the order Go writes them)."""
    if _c_dumps is not None and type(obj) is dict:
        return _finish("".join(_c_dumps(obj, 0)))
    return _finish(_py_dumps(obj))


def dumps_map(obj: Any) -> bytes:
    """Encode a Go map (keys sorted at every level) of plain values."""
    if _c_dumps_sorted is not None and type(obj) is dict:
        return _finish("".join(_c_dumps_sorted(obj, 0)))
    return _finish(_py_dumps_sorted(obj))


def _dump(obj: Any) -> str:
    # the text encode() starts from (before _finish), for any value
    if _c_dumps is not None:
        return "".join(_c_dumps(obj, 0))
    return _py_dumps(obj)  # pragma: no cover - CPython always has the C encoder


#: the work :func:`encode_steps` puts into one encoder call: a scalar costs 1 (a float,
#: the dearest, about a microsecond), a string 1 more per 16 characters
STEP_COST = 2048
#: list items or dict members looked at together (no more than one step's cost)
STEP_ITEMS = 1024
#: characters of one string encoded per call
STEP_CHARS = STEP_COST * 16
_FLAT = frozenset((int, float, bool, type(None)))


def _cost(value: Any, cap: int) -> int:
    """What encoding ``value`` costs (see :data:`STEP_COST`), counted only until over ``cap``.
    A loop over a stack of member iterators, not recursion: a value nested a thousand deep
    costs no Python frames."""
    t = type(value)
    if t is str:
        return 1 + (len(value) >> 4)
    if t is not list and t is not dict:
        return 1
    n = 1
    stack: list[tuple[Any, bool]] = [(iter(value.items() if t is dict else value), t is dict)]
    while stack:
        members, is_dict = stack[-1]
        for item in members:
            if is_dict:
                key, item = item
                n += 1 + (len(key) >> 4) if type(key) is str else 1
            ti = type(item)
            if ti is str:
                n += 1 + (len(item) >> 4)
            elif ti is list or ti is dict:
                n += 1
                if n > cap:
                    return n
                stack.append((iter(item.items() if ti is dict else item), ti is dict))
                break
            else:
                n += 1
            if n > cap:
                return n
        else:
            stack.pop()
    return n


def _piece_cost(values: list[Any], cap: int) -> int:
    # the cost of a run of list items or dict values, in C calls where they are flat
    types = set(map(type, values))
    if types <= _FLAT:
        return len(values)
    if str in types and types <= _FLAT | {str}:
        if len(types) == 1:
            return len(values) + (sum(map(len, values)) >> 4)
        return len(values) + (sum(len(v) for v in values if type(v) is str) >> 4)
    n = 0
    for v in values:
        n += _cost(v, cap - n)
        if n > cap:
            break
    return n


def encode_steps(obj: Any) -> Generator[None, None, bytes]:
    """:func:`encode` a step at a time: the same bytes, each step about :data:`STEP_COST`
    of work (a few milliseconds at most), for a huge job encoded a slice of the event loop
    at a time.

    Runs of list items and dict members are encoded by the same C encoder, each by
    itself, with its text finished (escapes, number tokens, invalid UTF-8) on its own:
    every one of those rewrites is local to a character or to one short string, so the
    pieces join to what one call gives.  A string longer than :data:`STEP_CHARS` is
    encoded a run of characters at a time (its escaping is per character too)."""
    out: list[bytes] = []
    yield from flat_steps(_encode_value(obj, out))
    return b"".join(out)


def flat_steps(work: Generator[Any, Any, Any]) -> Generator[None, None, Any]:
    """Run a recursive step generator without recursion: where ``work`` (or a generator it
    yields) would ``yield from child``, it yields ``child`` instead, and gets the child's
    return value back from the yield (or its exception raised there); a bare ``yield`` is a
    step.  The generators are kept on a list, so a value nested a thousand deep takes no
    Python frames beyond this one (``yield from`` takes two per level, and Python's limit is
    about a thousand)."""
    stack = [work]
    sent: Any = None
    error: BaseException | None = None
    while True:
        top = stack[-1]
        try:
            if error is not None:
                thrown, error = error, None
                got = top.throw(thrown)
            else:
                got = top.send(sent)
        except StopIteration as stop:
            stack.pop()
            if not stack:
                return stop.value
            sent = stop.value
            continue
        except BaseException as exc:
            stack.pop()
            if not stack:
                raise
            error = exc
            continue
        sent = None
        if got is None:
            yield
        else:
            stack.append(got)


def _encode_value(value: Any, out: list[bytes]) -> Generator[Any, None, None]:
    t = type(value)
    # (under flat_steps: a yielded generator is a call)
    if t is list:
        yield _encode_members(value, False, out)
    elif t is dict:
        yield _encode_members(value, True, out)
    elif t is str and len(value) > STEP_CHARS and not value.startswith(_TOKEN):  # (a number: whole)
        out.append(b'"')
        for i in range(0, len(value), STEP_CHARS):
            out.append(_finish(_dump(value[i:i + STEP_CHARS])[1:-1]))
            yield
        out.append(b'"')
    else:
        out.append(_finish(_dump(value)))


def _encode_members(value: Any, is_dict: bool, out: list[bytes]) -> Generator[Any, None, None]:
    if _cost(value, STEP_COST) <= STEP_COST:
        out.append(_finish(_dump(value)))
        return
    out.append(b"{" if is_dict else b"[")
    yield  # the cost counted so far: a step for each level of a deeply nested value
    sep = b""  # what comes before the next member
    group: list[Any] = []
    spent = 0

    def flush() -> None:
        nonlocal sep, spent
        if group:
            text = _dump(dict(group) if is_dict else group)
            out.append(sep + _finish(text[1:-1]))
            sep = b","
            group.clear()
        spent = 0

    members = iter(value.items() if is_dict else value)
    while True:
        run = list(itertools.islice(members, STEP_ITEMS))
        if not run:
            break
        if is_dict:
            keys = [k for k, _ in run]
            values = [v for _, v in run]
            key_cost = len(keys) + (sum(len(k) for k in keys if type(k) is str) >> 4)
        else:
            values = run
            key_cost = 0
        cost = key_cost + _piece_cost(values, STEP_COST)
        if cost <= STEP_COST:  # the common case: the run is one piece, or part of one
            if spent + cost > STEP_COST:
                flush()
                yield
            group.extend(run)
            spent += cost
            continue
        for member in run:
            item = member[1] if is_dict else member
            cost = _cost(item, STEP_COST)
            if is_dict:
                key = member[0]
                cost += 1 + (len(key) >> 4) if type(key) is str else 1
            if cost <= STEP_COST:
                if spent + cost > STEP_COST:
                    flush()
                    yield
                group.append(member)
                spent += cost
                continue
            flush()  # a big member by itself, a step at a time
            out.append(sep)
            sep = b","
            if is_dict:
                yield _encode_value(member[0], out)
                out.append(b":")
            yield _encode_value(item, out)
            yield
    flush()
    out.append(b"}" if is_dict else b"]")


# --------------------------------------------------------------------------- time

_LAYOUT = "2006-01-02T15:04:05.999999999Z07:00"
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:[.,]([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})\Z")
_sec_cache: tuple[int, str] = (-1, "")
_last_time: tuple[float, str] = (-1.0, "")


def format_time(t: float) -> str:
    """``time.RFC3339Nano`` in UTC: nanoseconds with trailing zeros trimmed."""
    global _last_time, _sec_cache
    last = _last_time  # one tuple: safe with several server threads
    if last[0] == t:
        return last[1]
    ns = int(round(t * 1e9))
    secs, frac = divmod(ns, 1_000_000_000)
    cached = _sec_cache
    if cached[0] == secs:
        prefix = cached[1]
    else:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        _sec_cache = (secs, prefix)
    text = (f"{prefix}.{frac:09d}".rstrip("0") + "Z") if frac else prefix + "Z"
    _last_time = (t, text)
    return text


class TimeParseError(ValueError):
    """``time.Parse`` failed; ``str(exc)`` is Go's error text."""


def _days_in(month: int, year: int) -> int:
    if month == 2:
        return 29 if calendar.isleap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def parse_time(value: str) -> float:
    """Parse like ``time.Parse(time.RFC3339Nano, value)``: epoch seconds, or
    :class:`TimeParseError` with Go's message."""
    m = _RFC3339.match(value)
    if m is not None:
        year, month, day, hour, minute, sec = (int(m.group(i)) for i in range(1, 7))
        zone = m.group(8)
        if (1 <= month <= 12 and 1 <= day <= _days_in(month, year) and hour < 24
                and minute < 60 and sec < 60 and (zone == "Z" or (int(zone[1:3]) <= 24
                                                                   and int(zone[4:6]) <= 60))):
            frac = m.group(7)
            ns = int(frac[:9].ljust(9, "0")) if frac else 0
            return _epoch(year, month, day, hour, minute, sec, ns, zone)
    result = _slow_parse(value)
    if isinstance(result, str):
        raise TimeParseError(result)
    return result


def _epoch(year: int, month: int, day: int, hour: int, minute: int, sec: int, ns: int,
           zone: str) -> float:
    offset = 0
    if zone != "Z":
        offset = (int(zone[1:3]) * 60 + int(zone[4:6])) * 60 * (-1 if zone[0] == "-" else 1)
    days = _days_from_civil(year, month, day)
    return days * 86400 + hour * 3600 + minute * 60 + sec - offset + ns / 1e9


def _days_from_civil(y: int, m: int, d: int) -> int:
    # days since 1970-01-01 for the proleptic Gregorian calendar (any year)
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _slow_parse(value: str) -> float | str:
    # Walk the RFC3339Nano layout the way Go's time.parse does: the value, or its error.
    v = value

    def cannot(rest: str, elem: str) -> str:
        return (f"parsing time {_time_quote(value)} as {_time_quote(_LAYOUT)}: "
                f"cannot parse {_time_quote(rest)} as {_time_quote(elem)}")

    def out_of_range(what: str) -> str:
        return f"parsing time {_time_quote(value)}: {what} out of range"

    def isdigit(s: str, i: int) -> bool:
        return len(s) > i and "0" <= s[i] <= "9"

    def getnum(s: str, fixed: bool) -> tuple[int, str] | None:
        if not isdigit(s, 0):
            return None
        if not isdigit(s, 1):
            if fixed:
                return None
            return int(s[0]), s[1:]
        return int(s[:2]), s[2:]

    if len(v) < 4 or not all(isdigit(v, i) for i in range(4)):
        return cannot(v, "2006")
    year, v = int(v[:4]), v[4:]
    vals: dict[str, int] = {}
    for prefix, elem, fixed, hi, name in (
            ("-", "01", True, 12, "month"), ("-", "02", True, 99, ""),
            ("T", "15", False, 23, "hour"), (":", "04", True, 59, "minute"),
            (":", "05", True, 59, "second")):
        if not v.startswith(prefix):
            return cannot(v, prefix)
        v = v[1:]
        got = getnum(v, fixed)
        if got is None:
            return cannot(v, elem)
        num, v = got
        if name and not (1 if name == "month" else 0) <= num <= hi:
            return out_of_range(name)
        vals[elem] = num
    ns = 0
    if len(v) >= 2 and v[0] in ".," and isdigit(v, 1):
        i = 1
        while isdigit(v, i):
            i += 1
        ns = int(v[1:min(i, 10)].ljust(9, "0"))
        v = v[i:]
    zone = "Z"
    if v.startswith("Z"):
        v = v[1:]
    else:
        if len(v) < 6 or v[3] != ":":
            return cannot(v, "Z07:00")
        hh, mm = getnum(v[1:3], True), getnum(v[4:6], True)
        hr = hh[0] if hh else 0
        mn = mm[0] if (hh and mm) else 0
        if hr > 24:
            return out_of_range("time zone offset hour")
        if mn > 60:
            return out_of_range("time zone offset minute")
        if hh is None or mm is None or v[0] not in "+-":
            return cannot(v, "Z07:00")
        zone, v = v[:6], v[6:]
    if v:
        return f"parsing time {_time_quote(value)}: extra text: {_time_quote(v)}"
    day = vals["02"]
    if day < 1 or day > _days_in(vals["01"], year):
        return out_of_range("day")
    return _epoch(year, vals["01"], day, vals["15"], vals["04"], vals["05"], ns, zone)


# --------------------------------------------------------------------------- the structs

#: client.Failure
FAILURE = Schema("client.Failure", [
    ("retry_count", INT, "int", None), ("remaining", INT, "int", None),
    ("failed_at", STR, "string", None), ("next_at", STR, "string", None),
    ("message", STR, "string", None), ("errtype", STR, "string", None),
    ("backtrace", STR_LIST, "[]string", None),
])
#: client.Job
JOB = Schema("client.Job", [
    ("jid", STR, "string", None), ("queue", STR, "string", None),
    ("jobtype", STR, "string", None), ("args", ANY_LIST, "[]interface {}", None),
    ("created_at", STR, "string", None), ("enqueued_at", STR, "string", None),
    ("at", STR, "string", None), ("reserve_for", INT, "int", None),
    ("retry", PTR_INT, "int", None), ("backtrace", INT, "int", None),
    ("failure", STRUCT, "client.Failure", FAILURE),
    ("custom", ANY_MAP, "map[string]interface {}", None),
])
#: manager.FailPayload
FAIL_PAYLOAD = Schema("manager.FailPayload", [
    ("jid", STR, "string", None), ("message", STR, "string", None),
    ("errtype", STR, "string", None), ("backtrace", STR_LIST, "[]string", None),
])
#: server.ClientBeat
CLIENT_BEAT = Schema("server.ClientBeat", [
    ("current_state", STR, "string", None), ("wid", STR, "string", None),
    ("rss_kb", INT64, "int64", None),
])
#: server.ClientData (HELLO)
CLIENT_DATA = Schema("server.ClientData", [
    ("hostname", STR, "string", None), ("wid", STR, "string", None),
    ("pid", INT, "int", None), ("rss_kb", INT64, "int64", None),
    ("labels", STR_LIST, "[]string", None), ("pwdhash", STR, "string", None),
    ("username", STR, "string", None), ("v", UINT8, "uint8", None),
    ("StartedAt", TIME, "time.Time", None),
])
_JOB_FILTER = Schema("client.JobFilter", [
    ("jids", STR_LIST, "[]string", None), ("regexp", STR, "string", None),
    ("jobtype", STR, "string", None),
])
#: client.Operation (MUTATE)
OPERATION = Schema("client.Operation", [
    ("cmd", STR, "string", None), ("target", STR, "client.Structure", None),
    ("filter", STRUCT, "client.JobFilter", _JOB_FILTER),
])


_JOB_STR = frozenset(("jid", "queue", "jobtype", "created_at", "enqueued_at", "at"))
_JOB_INT = frozenset(("retry", "reserve_for", "backtrace"))
_INT64 = 1 << 63


def fast_job(value: Any, known: dict[int, tuple[Any, Any]] | None = None) -> dict[str, Any] | None:
    """``decode_struct(value, JOB)`` for the common payload (exact field names, strings
    where strings go, plain integers, an ``args`` list, a ``custom`` object), or ``None``
    when ``value`` is anything else: then :func:`decode_job` gives the result.

    ``known``: ``{id(v): (v, normalize_any(v) or the exception it raised)}`` for field
    values ``v`` the caller already normalised (a slice at a time, for a huge job:
    ``bigline.normalize_known``)."""
    if type(value) is not dict:
        return None
    for key, item in value.items():
        t = type(item)
        if key in _JOB_STR:
            if t is not str:
                return None
        elif key in _JOB_INT:
            if t is not int or not -_INT64 <= item < _INT64:
                return None
        elif key == "args":
            if t is not list:
                return None
        elif key != "custom" or t is not dict:
            return None
    try:
        args = value.get("args")
        if args is not None:
            args = _normalized(args, known)
        custom = value.get("custom")
        if custom is not None:
            custom = _normalized(custom, known)
    except _Overflow:
        return None  # the general path reports it
    if args is not None:
        value["args"] = args
    if custom is not None:
        value["custom"] = custom
    return value


def _normalized(item: Any, known: dict[int, tuple[Any, Any]] | None) -> Any:
    # normalize_any(item), or what the caller worked out for that very object before
    if known:
        pair = known.get(id(item))
        if pair is not None and pair[0] is item:
            if isinstance(pair[1], _Overflow):
                raise pair[1]
            return pair[1]
    return normalize_any(item)


def decode_job(value: Any, errors: _Errors, known: dict[int, tuple[Any, Any]] | None = None) -> dict[str, Any] | None:
    """``decode_struct(value, JOB, errors)`` with :func:`fast_job`'s fast path for the
    common payload.  Anything else takes the general path (same result).

    ``known``: field values already normalised, as for :func:`fast_job`."""
    job = fast_job(value, known)
    if job is not None:
        return job
    return decode_struct(value, JOB, errors, known=known)


def errors() -> _Errors:
    """A fresh first-error collector for :func:`decode_struct`."""
    return _Errors()


def marshal_failure(f: dict[str, Any]) -> dict[str, Any]:
    """The ``failure`` object in the field order of the server's struct (omitempty applied)."""
    out: dict[str, Any] = {"failed_at": f.get("failed_at", "")}
    for key in ("next_at", "message", "errtype"):
        if f.get(key):
            out[key] = f[key]
    if f.get("backtrace"):
        out["backtrace"] = f["backtrace"]
    out["retry_count"] = f.get("retry_count", 0)
    out["remaining"] = f.get("remaining", 0)
    return out


def job_object(job: dict[str, Any]) -> dict[str, Any]:
    """A decoded job (``decode_struct(..., JOB)`` plus defaults) in the order Go writes it.

    Order and omitempty rules of the 1.10 ``client.Job`` struct as observed on the wire:
    retry, failure, custom, jid, queue, jobtype, created_at, enqueued_at, at, args,
    reserve_for, backtrace.
    """
    out: dict[str, Any] = {"retry": job.get("retry")}
    if "failure" in job and job["failure"] is not None:
        out["failure"] = marshal_failure(job["failure"])
    if "custom" in job and job["custom"]:
        out["custom"] = job["custom"]
    out["jid"] = job.get("jid", "")
    out["queue"] = job.get("queue", "")
    out["jobtype"] = job.get("jobtype", "")
    for key in _OMITEMPTY_MIDDLE:
        if key in job and job[key]:
            out[key] = job[key]
    out["args"] = job.get("args")
    for key in _OMITEMPTY_END:
        if key in job and job[key]:
            out[key] = job[key]
    return out


_OMITEMPTY_MIDDLE = ("created_at", "enqueued_at", "at")
_OMITEMPTY_END = ("reserve_for", "backtrace")


def marshal_job(job: dict[str, Any]) -> bytes:
    """Encode a decoded job exactly as the real server stores and sends it."""
    return encode(job_object(job))


def reparse_job(payload: bytes) -> dict[str, Any]:
    """Decode a payload this server produced (trusted: no Go error emulation needed), as a
    command's JSON is decoded: an ``-0`` in ``args`` stays ``-0`` when it is written back."""
    job: dict[str, Any] = decode_valid(payload)
    return job

