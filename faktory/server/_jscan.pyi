# The compiled scanner of faktory.server.bigline (Go's JSON scanner, resumable).
from typing import final

E_NONE: int
E_EOF: int
E_BEGIN_VALUE: int
E_BEGIN_KEY: int
E_AFTER_KEY: int
E_AFTER_PAIR: int
E_AFTER_ELEMENT: int
E_AFTER_TOP: int
E_IN_STRING: int
E_ESCAPE: int
E_HEX: int
E_IN_NUMBER: int
E_AFTER_DOT: int
E_IN_EXPONENT: int
E_IN_LITERAL: int

@final
class Scanner:
    """Go's scanner over ``data[start:]``, a slice per :meth:`scan` (see the module)."""

    depth: int
    pos: int
    error: int
    error_pos: int
    error_byte: int
    error_word: int
    error_expect: int
    guard_pos: int
    big_int_pos: int
    hard_stop: bool
    done: bool
    big: list[tuple[int, int, int, int]]
    marks: list[tuple[int, int]]
    strings: list[tuple[int, int, int, int]]

    def __init__(self, start: int, guard: int, hard: int, max_digits: int, chunk: int) -> None: ...
    def scan(self, data: bytes, stop: int) -> bool: ...
    def finish(self) -> None: ...
