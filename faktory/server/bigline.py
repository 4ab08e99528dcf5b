"""A big payload (a PUSH or PUSHB line over :data:`BIG_LINE` bytes) parsed a slice at a time.

Python's JSON decoder reads a payload in one call that holds the event loop: for 10 MB,
a third of a second to seconds (numbers, nested containers), and for a malformed one the
error text is worked out on top.  :func:`parse` is a generator instead: each step does a
bounded piece of work (about a megabyte of scanning, or some 64 KB of decoding) and the
server runs the steps a few milliseconds per pass of its loop, so the other connections are
answered in between.

1. The compiled scanner (:mod:`faktory.server._jscan`, Go's scanner as a state machine)
   reads the whole payload.  A syntax error ends it: the reply is Go's text, as
   :func:`gojson.loads` gives it, and no object was built.
2. A valid payload is decoded by Python's decoder a run of members at a time: the scanner
   noted where the big containers start and end and commas between their members; each
   run of small members is decoded by itself and the pieces put together (the same values,
   key order and last-duplicate-wins as one call would give).

What ``gojson.loads`` would do differently from Go (run out of recursion nested a
thousand deep, refuse an integer of more than 4,300 digits) is decided from what the
scanner saw, with the same result.  A malformed payload nested deeper than :data:`GUARD`
gets Go's text for its error, which is also what ``gojson.loads`` gives unless Python's
recursion runs out first; a valid one is decoded in steps like any other, the decoder's
own recursion error read as Go's "exceeded max depth".  No path decodes a big payload in
one call, however it is nested.

Without the compiled scanner (a pure-Python installation) :func:`available` is false and the
server parses big lines in one go, as before.
"""
from __future__ import annotations

import re
import secrets
import sys
from typing import Any, Callable, Generator

from faktory.server import gojson

_jscan: Any
try:
    from faktory.server import _jscan
except ImportError:  # pragma: no cover - the pure-Python installation
    _jscan = None

__all__ = ["BIG_LINE", "GUARD", "available", "parse", "normalize_list", "normalize_known", "dispose",
           "top_fields", "restamped", "rewritten", "preview_fields", "Preview"]

#: payloads over this many bytes are parsed by :func:`parse` (smaller ones take a few ms at most)
BIG_LINE = 64 * 1024
#: bytes scanned per step
SCAN_STEP = 512 * 1024
#: the most bytes of members decoded in one call (besides one member, itself smaller):
#: 16 KB of small numbers are some 4,000 floats that remember their literal, 4-10 ms a
#: step to decode (64 KB steps took 20-30 ms, a quarter of what another client may wait)
CHUNK = 16 * 1024
#: nesting up to this deep is known not to run Python's decoder out of recursion (its limit
#: is ``sys.getrecursionlimit()``, 1,000, less the frames of the caller)
GUARD = 400
#: list items normalised per step (:func:`normalize_list`)
NORMALIZE_STEP = 2048
#: values up to this cost (``gojson._cost``) are normalised in one call
NORMALIZE_COST = 4096
#: list items or dict members let go of per step (:func:`dispose`)
DISPOSE_STEP = 8192
#: containers up to this long are let go of with the run that holds them, in runs of
#: _SMALL_RUN (a small job of a PUSHB: some ten objects)
_SMALL = 64
_SMALL_RUN = 256
_LEAVES = frozenset((str, int, float, bool, type(None), gojson.GoFloat, gojson.GoNegZero))

_WS = b" \t\r\n"
_E = {2: "looking for beginning of value", 3: "looking for beginning of object key string",
      4: "after object key", 5: "after object key:value pair", 6: "after array element",
      7: "after top-level value", 8: "in string literal", 9: "in string escape code",
      10: "in \\u hexadecimal character escape", 11: "in numeric literal",
      12: "after decimal point in numeric literal", 13: "in exponent of numeric literal"}
_WORDS = ("true", "false", "null")

Outcome = tuple[str, Any]
"""``("value", obj)``: what ``gojson.loads`` returns; ``("error", text)``: the text of its
``JSONError``."""


def available() -> bool:
    """Whether the compiled scanner is there (else big lines are parsed in one go)."""
    return _jscan is not None


def _error_text(scanner: Any) -> str:
    code = scanner.error
    if code == 1:
        return "unexpected end of JSON input"
    char = gojson._quote_char(scanner.error_byte)
    if code == 14:
        expect = gojson._quote_char(scanner.error_expect)
        return f"invalid character {char} in literal {_WORDS[scanner.error_word]} (expecting {expect})"
    return f"invalid character {char} {_E[code]}"


def scan(line: bytes, start: int) -> Generator[None, None, Any]:
    """Scan ``line[start:]`` a step at a time; returns the finished scanner."""
    max_digits = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    limit = sys.getrecursionlimit()
    scanner = _jscan.Scanner(start, min(GUARD, limit // 2), limit, max_digits, CHUNK)
    n = len(line)
    while not scanner.scan(line, scanner.pos + SCAN_STEP):
        if scanner.pos >= n:
            scanner.finish()
            break
        yield
    return scanner


def parse(line: bytes, start: int) -> Generator[None, None, Outcome]:
    """``gojson.loads(line[start:])`` a step at a time (see the module's docstring)."""
    scanner = yield from scan(line, start)
    if scanner.hard_stop:
        return ("error", "exceeded max depth")  # deeper than Python's decoder can go
    deep = scanner.guard_pos
    big_int = scanner.big_int_pos
    if scanner.error:
        # Go's text (Go's scanner goes 10,000 deep before "exceeded max depth"; this one
        # stopped at the recursion limit, above)
        return ("error", _error_text(scanner))
    if big_int >= 0 and (deep < 0 or big_int < deep):
        return ("error", "invalid JSON")  # int() refuses it; Go's scanner finds no error
    try:
        value = yield from gojson.flat_steps(
            _build(line, start, scanner.big, scanner.marks, scanner.strings))
    except RecursionError:  # a member nested near the limit, decoded from deeper in the stack
        return ("error", "exceeded max depth")
    except ValueError:  # an integer int() refuses, after nesting deeper than GUARD
        return ("error", "invalid JSON")
    return ("value", value)


def _top_cuts(payload: bytes) -> list[tuple[int, int]] | None:
    # (start, end) of each big container or string member of a stored job's top-level
    # object, from one call of the compiled scan; None when it is not such a payload
    work = scan(payload, 0)
    while True:
        try:
            next(work)
        except StopIteration as done:
            scanner = done.value
            break
    top = 0
    while top < len(payload) and payload[top] in _WS:
        top += 1
    if scanner.error or scanner.hard_stop or payload[top:top + 1] != b"{":
        return None
    return sorted((rec[0], rec[1]) for rec in (*scanner.big, *scanner.strings) if rec[3] == top)


def _skeleton(payload: bytes, cuts: list[tuple[int, int]], marks: list[bytes]) -> bytes:
    pieces = []
    pos = 0
    for (begin, end), mark in zip(cuts, marks, strict=True):
        pieces.append(payload[pos:begin])
        pieces.append(mark)
        pos = end + 1
    pieces.append(payload[pos:])
    return b"".join(pieces)


#: where a stored job's big members are put back (with a nonce of each call's: no member
#: of the job holds it by chance)
_MARK = "\x00faktory-big-member-%s-%d\x00"


def _marked(payload: bytes, cuts: list[tuple[int, int]]) -> tuple[dict[str, Any], list[str], list[bytes]]:
    # the stored job decoded with each cut-out member a placeholder string: (the job, the
    # placeholders, their JSON encodings)
    nonce = secrets.token_hex(8)
    marks = [_MARK % (nonce, i) for i in range(len(cuts))]
    encoded = [gojson.encode(m) for m in marks]
    job: dict[str, Any] = gojson.decode_valid(_skeleton(payload, cuts, encoded))
    return job, marks, encoded


def rewritten(payload: bytes, change: Callable[[dict[str, Any]], Any]) -> tuple[bytes, Any] | None:
    """A huge stored job's bytes after ``change(job)`` changed its small top-level fields
    (its ``enqueued_at`` when it comes due, its ``failure`` and ``retry`` when it fails):
    ``(what gojson.marshal_job gives for the reparsed, normalised, changed job, what change
    returned)``.  One compiled scan and the encoding of the small members only: the big
    ``args`` and ``custom`` are put back as they are stored (this server's own encoding of
    them, which normalising again does not change), and ``change`` sees them as
    placeholders.  ``None`` (and ``change`` not called) when another member is big, or for
    a payload this server did not write."""
    if _jscan is None:
        return None
    cuts = _top_cuts(payload)
    if not cuts:
        return None
    job, marks, encoded = _marked(payload, cuts)
    placed = {value: key for key, value in job.items() if type(value) is str and value in marks}
    if len(placed) != len(marks) or not set(placed.values()) <= {"args", "custom"}:
        return None
    for key in ("args", "custom"):
        value = job.get(key)
        if value is not None and not (type(value) is str and value in placed):
            job[key] = gojson.normalize_any(value)
    result = change(job)
    out = gojson.marshal_job(job)
    for (begin, end), mark in zip(cuts, encoded, strict=True):
        if out.count(mark) != 1:  # pragma: no cover - a 64-bit nonce found again
            return None
        out = out.replace(mark, payload[begin:end + 1])
    return out, result


def restamped(payload: bytes, fields: dict[str, Any]) -> bytes | None:
    """:func:`rewritten` with ``fields`` set (a job coming due gets its ``enqueued_at``)."""
    done = rewritten(payload, lambda job: job.update(fields))
    return None if done is None else done[0]


class Preview(str):
    """The start of a big member's JSON as it is stored (:func:`preview_fields`), with "…"
    after it: what a page shows of a member it would only show the start of anyway."""


def preview_fields(payload: bytes, size: int = 1024) -> dict[str, Any]:
    """A stored job decoded for display: ``gojson.reparse_job(payload)``, except that in a
    huge one each big top-level member is a :class:`Preview` of its first ``size`` bytes
    (one compiled scan; not seconds of decoding for a page that shows 400 characters)."""
    if len(payload) <= BIG_LINE or _jscan is None:
        return gojson.reparse_job(payload)
    cuts = _top_cuts(payload)
    if cuts is None:
        return gojson.reparse_job(payload)
    job, marks, _ = _marked(payload, cuts)
    where = dict(zip(marks, cuts, strict=True))
    for key, value in job.items():
        if type(value) is str and value in where:
            begin, end = where[value]
            if key == "failure":  # (read field by field: decoded whole)
                job[key] = gojson.decode_valid(payload[begin:end + 1])
            else:
                job[key] = Preview(payload[begin:begin + size].decode("utf-8", "replace") + "\u2026")
    return job


def top_fields(payload: bytes) -> dict[str, Any]:
    """The top-level scalar fields of a job this server stored (its queue, reserve_for,
    enqueued_at...), without building its big values: ``gojson.reparse_job(payload)``
    with each big container or string member of the top-level object read as ``None``.
    For a huge job, one call of the compiled scan (some 30 ms for 10 MB) instead of
    decoding it all (seconds, for 10 MB of numbers)."""
    if len(payload) <= BIG_LINE or _jscan is None:
        return gojson.reparse_job(payload)
    cuts = _top_cuts(payload)
    if cuts is None:
        return gojson.reparse_job(payload)  # (not this server's payload)
    fields: dict[str, Any] = gojson.decode_valid(_skeleton(payload, cuts, [b"null"] * len(cuts)))
    return fields


def _build(line: bytes, start: int, big: list[tuple[int, int, int, int]],
           marks: list[tuple[int, int]],
           strings: list[tuple[int, int, int, int]]) -> Generator[Any, Any, Any]:
    # run under gojson.flat_steps: a yielded generator is a call, its value sent back
    top = start
    while top < len(line) and line[top] in _WS:
        top += 1
    info = {rec[0]: rec for rec in big}
    if top not in info:
        if strings and strings[0][0] == top:  # one huge string
            return (yield _string(line, top, strings[0][1]))
        return gojson.decode_valid(line[start:])  # a number: one call
    children: dict[int, list[tuple[int, int, int, int]]] = {}
    for rec in big:
        children.setdefault(rec[3], []).append(rec)
    for rec in strings:  # huge strings: children too, decoded by _string
        info[rec[0]] = rec
        children.setdefault(rec[3], []).append(rec)
    cuts: dict[int, list[int]] = {}
    for container, comma in marks:
        cuts.setdefault(container, []).append(comma)
    value = yield _container(line, top, info, children, cuts)
    return value


def _container(line: bytes, at: int, info: dict[int, tuple[int, int, int, int]],
               children: dict[int, list[tuple[int, int, int, int]]],
               cuts: dict[int, list[int]]) -> Generator[Any, Any, Any]:
    end = info[at][1]
    is_obj = line[at] == 0x7B
    result: Any = {} if is_obj else []
    events: list[tuple[int, int, tuple[int, int, int, int] | None]] = [
        (comma, 0, None) for comma in cuts.get(at, ())]
    events.extend(((rec[2] if is_obj else rec[0]), 1, rec) for rec in children.get(at, ()))
    events.sort()
    pos = at + 1
    for where, _, child in events:
        _members(result, line[pos:where], is_obj)
        yield
        if child is None:
            pos = where + 1
            continue
        if line[child[0]] == 0x22:
            value = yield _string(line, child[0], child[1])
        else:
            value = yield _container(line, child[0], info, children, cuts)
        if is_obj:
            result[gojson.decode_valid(line[child[2]:child[0]].rstrip(_WS + b":"))] = value
        else:
            result.append(value)
        pos = child[1] + 1
    _members(result, line[pos:end], is_obj)
    return result


#: a string's bytes decoded per step (:func:`_string`); 0: four times CHUNK
STRING_STEP = 0
# where a string's text may be cut: before a byte that starts a character (not a UTF-8
# continuation byte) and is no part of an escape (five bytes before it hold no backslash),
# or before an escape that is not \u (it cannot be the second half of a surrogate pair),
# or before a \u escape that is no surrogate (its first digit is not d)
_CUT = re.compile(rb"[^\\]{5}([^\\\x80-\xbf])|[^\\](\\[^u])|[^\\](\\u[0-9a-cA-Ce-fE-F])")


def _string(line: bytes, at: int, end: int) -> Generator[None, None, str]:
    """``gojson.decode_valid(line[at:end + 1])`` (a valid string literal, quotes at ``at``
    and ``end``) a piece at a time: the text is cut where decoding the pieces by themselves
    gives what one call gives (see _CUT; escapes and invalid UTF-8 are decoded per
    character, Python's decoder ends an invalid sequence where the next character starts)."""
    step = STRING_STEP or 4 * CHUNK
    pieces = []
    pos = at + 1
    while pos < end:
        cut = end
        if end - pos > step:
            m = _CUT.search(line, pos + step, end)
            if m is not None:
                cut = m.start(m.lastindex or 1)
        pieces.append(gojson.decode_valid(b'"' + line[pos:cut] + b'"'))
        pos = cut
        yield
    return "".join(pieces)


def _members(result: Any, part: bytes, is_obj: bool) -> None:
    # a run of whole members, maybe with the commas around it
    part = part.strip(_WS)
    if part[:1] == b",":
        part = part[1:].lstrip(_WS)
    if part[-1:] == b",":
        part = part[:-1].rstrip(_WS)
    if not part:
        return
    if is_obj:
        result.update(gojson.decode_valid(b"{" + part + b"}"))
    else:
        result.extend(gojson.decode_valid(b"[" + part + b"]"))


def normalize_known(obj: Any) -> Generator[None, None, dict[int, tuple[Any, Any]]]:
    """The big lists and dicts among the fields of the decoded job ``obj`` (``args``,
    ``custom``) normalised a step at a time: ``{id(value): (value, normalize_any(value), or
    the exception it raised for a number float64 cannot hold)}``, what
    ``gojson.decode_job(obj, errors, known)`` takes instead of normalising them in one call.
    The pairs hold on to the values too: a field the decoded job replaces is not freed in
    that call (freeing a million parsed floats takes a tenth of a second), but by the
    caller's ``dispose`` of them."""
    known: dict[int, tuple[Any, Any]] = {}
    if type(obj) is dict:
        for item in list(obj.values()):
            t = type(item)
            if (t is list or t is dict) and gojson._cost(item, NORMALIZE_COST) > NORMALIZE_COST:
                inner: list[tuple[Any, Any]] = []
                try:
                    known[id(item)] = (item, (yield from gojson.flat_steps(_normalize(item, inner))))
                except gojson._Overflow as exc:
                    known[id(item)] = (item, exc)
                # the big containers inside it too (and what they became): handed to dispose
                # by themselves, they are emptied in steps, not freed with the small list
                # around them in one call
                for pair in inner:
                    known.setdefault(id(pair[0]), pair)
    return known


def normalize_list(items: list[Any]) -> Generator[None, None, list[Any]]:
    """``gojson.normalize_any(items)`` (a list) a step at a time; raises what it raises."""
    return (yield from gojson.flat_steps(_normalize(items)))  # type: ignore[no-any-return]


def _normalize(value: Any, big: list[tuple[Any, Any]] | None = None) -> Generator[Any, Any, Any]:
    # gojson.normalize_any(value), under gojson.flat_steps: a run of members worth about
    # NORMALIZE_COST per step, a big member (however deeply nested) by itself; ``big`` gets
    # (container, its normalised value) of each big container on the way
    t = type(value)
    if (t is not list and t is not dict) or gojson._cost(value, NORMALIZE_COST) <= NORMALIZE_COST:
        return gojson.normalize_any(value)
    result = yield _normalize_big(value, big)
    if big is not None:
        big.append((value, result))
    return result


def _normalize_big(value: Any, big: list[tuple[Any, Any]] | None) -> Generator[Any, Any, Any]:
    t = type(value)
    yield
    if t is list:
        pieces = []
        changed = False
        for i in range(0, len(value), NORMALIZE_STEP):
            piece = value[i:i + NORMALIZE_STEP]
            if gojson._piece_cost(piece, NORMALIZE_COST) <= NORMALIZE_COST:
                new = gojson.normalize_any(piece)
            else:
                new = None
                for j, item in enumerate(piece):
                    ti = type(item)
                    if (ti is list or ti is dict) and gojson._cost(item, NORMALIZE_COST) > NORMALIZE_COST:
                        norm = yield _normalize(item, big)
                    else:
                        norm = gojson.normalize_any(item)
                    if norm is not item or type(norm) is not type(item):
                        if new is None:
                            new = list(piece)
                        new[j] = norm
                if new is None:
                    new = piece
            changed = changed or new is not piece
            pieces.append(new)
            yield
        if not changed:
            return value
        # joined a piece per step: growing a list of millions of items in one step (2.6
        # million floats of a 10 MB argument) took 118 ms, most of it the kernel handing
        # over the pages of its growing array; a piece per step spreads those
        out: list[Any] = []
        for piece in pieces:
            out.extend(piece)
            yield
        return out
    keys = list(value)
    order = sorted(keys)
    changed = keys != order
    items = {}
    spent = 0
    for k in order:
        item = value[k]
        ti = type(item)
        if ti is list or ti is dict:
            cost = gojson._cost(item, NORMALIZE_COST)
            norm = (yield _normalize(item, big)) if cost > NORMALIZE_COST else gojson.normalize_any(item)
            spent += cost
        else:
            norm = gojson.normalize_any(item)
            spent += 1
        if norm is not item or type(norm) is not type(item):
            changed = True
        items[k] = norm
        if spent >= NORMALIZE_COST:
            spent = 0
            yield
    return items if changed else value


def dispose(*values: Any) -> Generator[None, None, None]:
    """Let go of big lists and dicts (a huge job's parsed and normalised values, the jobs
    of a big PUSHB; nothing else holding them) a run of members per step: freeing a million
    objects in the one call that drops the last reference takes tens of milliseconds (60 ms
    for the 460,000 floats of an 8 MB job, parsed and normalised).  Emptied in place, so
    they must be this caller's own."""
    stack: list[Any] = [v for v in values if type(v) is list or type(v) is dict]
    while stack:
        value = stack.pop()
        while value:
            run: list[Any]
            if isinstance(value, list):
                run = value[-DISPOSE_STEP:]
                del value[-DISPOSE_STEP:]
            else:
                run = [value.popitem()[1] for _ in range(min(DISPOSE_STEP, len(value)))]
            if set(map(type, run)) <= _LEAVES:
                del run
                yield
                continue
            # small containers freed with their run, fewer at a time; big ones by themselves
            stack.extend(v for v in run if (type(v) is list or type(v) is dict) and len(v) > _SMALL)
            while run:
                del run[-_SMALL_RUN:]
                yield
