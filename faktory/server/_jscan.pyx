# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""A resumable JSON scanner in C that accepts and refuses exactly what Go's ``encoding/json`` scanner does.

:class:`Scanner` reads a payload a slice at a time (``scan(data, stop)`` goes on from
where the previous call stopped), so that a 10 MB line is checked without holding the
event loop for more than one slice.  It finds what :func:`faktory.server.gojson.syntax_error`
finds (the first byte Go's scanner refuses, and in which state), and on the way records
what :mod:`faktory.server.bigline` needs to decide the reply the way ``gojson.loads``
would, and to parse a valid payload in slices:

* ``guard_pos``: where the nesting first went deeper than ``guard`` (Python's decoder may
  run out of recursion from there on); at ``hard`` levels (beyond what Python's decoder
  can nest) the scan stops (``hard_stop``), unless an integer too long for ``int()``
  (``big_int_pos``, more than ``max_digits`` digits) came first;
* ``big``: containers of at least ``chunk`` bytes (nested at most ``hard`` deep, and
  65,536), as
  ``(start, end, key_start, parent_start)``: offsets of the opening and the closing
  bracket, of the key before it (-1 in an array, or at the top), of the container it is in
  (-1 at the top);
* ``marks``: ``(container_start, comma)``: commas between the members of such a container,
  at least ``chunk`` bytes apart;
* ``strings``: string values (not keys) of at least ``chunk`` bytes (nested at most
  ``hard`` deep), as ``(start, end, key_start, parent_start)`` like ``big``: offsets of
  the opening and the closing quote, of the key before it (-1 in an array or at the top),
  of the container it is in (-1 at the top).
"""
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc, realloc

cdef enum:
    S_VALUE = 0
    S_VALUE_OR_CLOSE
    S_KEY_OR_CLOSE
    S_KEY
    S_COLON
    S_END
    S_STR
    S_ESC
    S_U1
    S_U2
    S_U3
    S_U4
    S_NEG
    S_ZERO
    S_INT
    S_DOT
    S_FRAC
    S_E
    S_ESIGN
    S_EXP
    S_LIT
    S_STOPPED

# error codes (gojson builds the text)
E_NONE = 0
E_EOF = 1
E_BEGIN_VALUE = 2
E_BEGIN_KEY = 3
E_AFTER_KEY = 4
E_AFTER_PAIR = 5
E_AFTER_ELEMENT = 6
E_AFTER_TOP = 7
E_IN_STRING = 8
E_ESCAPE = 9
E_HEX = 10
E_IN_NUMBER = 11
E_AFTER_DOT = 12
E_IN_EXPONENT = 13
E_IN_LITERAL = 14

cdef enum:
    C_OBJ = 0
    C_ARR = 1

cdef const char* WORDS[3]
WORDS[0] = b"true"
WORDS[1] = b"false"
WORDS[2] = b"null"
cdef int WORD_LEN[3]
WORD_LEN[0] = 4
WORD_LEN[1] = 5
WORD_LEN[2] = 4


cdef inline bint is_ws(unsigned char c) nogil:
    return c == 0x20 or c == 0x09 or c == 0x0A or c == 0x0D


cdef inline bint is_digit(unsigned char c) nogil:
    return 0x30 <= c <= 0x39


cdef inline bint is_hex(unsigned char c) nogil:
    return (0x30 <= c <= 0x39) or (0x61 <= c <= 0x66) or (0x41 <= c <= 0x46)


cdef class Scanner:
    cdef unsigned char* stack
    cdef Py_ssize_t cap
    cdef public Py_ssize_t depth
    cdef int state
    cdef bint in_key
    cdef public Py_ssize_t pos
    cdef Py_ssize_t num_start
    cdef Py_ssize_t str_start
    cdef Py_ssize_t ndigits
    cdef int lit
    cdef int lit_i
    cdef Py_ssize_t guard
    cdef Py_ssize_t hard
    cdef Py_ssize_t track
    cdef Py_ssize_t max_digits
    cdef Py_ssize_t chunk
    cdef int64_t* starts
    cdef int64_t* lastmark
    cdef int64_t* keystart
    cdef int64_t* ckey
    cdef public int error
    cdef public Py_ssize_t error_pos
    cdef public int error_byte
    cdef public int error_word
    cdef public int error_expect
    cdef public Py_ssize_t guard_pos
    cdef public Py_ssize_t big_int_pos
    cdef public bint hard_stop
    cdef public bint done
    cdef public list big
    cdef public list marks
    cdef public list strings

    def __cinit__(self, Py_ssize_t start, Py_ssize_t guard, Py_ssize_t hard, Py_ssize_t max_digits,
                  Py_ssize_t chunk):
        self.cap = 256
        self.stack = <unsigned char*>malloc(self.cap)
        # levels whose containers, commas and strings are recorded: all up to the hard stop
        # (a sliced decode has no recursion of its own), at most 65,536
        self.track = min(max(guard, hard), 65536)
        self.starts = <int64_t*>malloc((self.track + 2) * 4 * sizeof(int64_t))
        if self.stack is NULL or self.starts is NULL:
            raise MemoryError()
        self.lastmark = self.starts + (self.track + 2)
        self.keystart = self.lastmark + (self.track + 2)
        self.ckey = self.keystart + (self.track + 2)
        self.starts[0] = -1
        self.depth = 0
        self.state = S_VALUE
        self.pos = start
        self.guard = guard
        self.hard = hard
        self.max_digits = max_digits
        self.chunk = chunk
        self.error = E_NONE
        self.error_pos = -1
        self.error_byte = -1
        self.guard_pos = -1
        self.big_int_pos = -1
        self.hard_stop = False
        self.done = False
        self.big = []
        self.marks = []
        self.strings = []
        self.str_start = -1

    def __dealloc__(self):
        free(self.stack)
        free(self.starts)

    cdef int _push(self, unsigned char kind, Py_ssize_t at) except -1:
        cdef unsigned char* grown
        cdef Py_ssize_t d
        if self.depth == self.cap:
            grown = <unsigned char*>realloc(self.stack, self.cap * 2)
            if grown is NULL:
                raise MemoryError()
            self.stack = grown
            self.cap *= 2
        self.stack[self.depth] = kind
        self.depth += 1
        d = self.depth
        if d > self.guard:
            if self.guard_pos < 0:
                self.guard_pos = at
            if d >= self.hard and self.big_int_pos < 0:
                self.hard_stop = True
                return 1
            if d > self.track:
                return 0
        self.starts[d] = at
        self.lastmark[d] = at
        if d > 1 and self.stack[d - 2] == C_OBJ:
            self.ckey[d] = self.keystart[d - 1]
        else:
            self.ckey[d] = -1
        return 0

    cdef int _pop(self, Py_ssize_t at) except -1:
        cdef Py_ssize_t d = self.depth
        if d <= self.track and at - self.starts[d] >= self.chunk:
            self.big.append((self.starts[d], at, self.ckey[d], self.starts[d - 1] if d > 1 else -1))
        self.depth -= 1
        return 0

    cdef int _big_string(self, Py_ssize_t at) except -1:
        cdef Py_ssize_t d = self.depth
        cdef Py_ssize_t key = -1
        if d > 0 and self.stack[d - 1] == C_OBJ:
            key = self.keystart[d]
        self.strings.append((self.str_start, at, key, self.starts[d] if d > 0 else -1))
        return 0

    cdef inline void _end_int(self):
        if self.max_digits > 0 and self.ndigits > self.max_digits and self.big_int_pos < 0:
            self.big_int_pos = self.num_start

    cdef inline void _fail(self, int code, Py_ssize_t at, int byte):
        self.error = code
        self.error_pos = at
        self.error_byte = byte
        self.state = S_STOPPED
        self.done = True

    def scan(self, bytes data, Py_ssize_t stop):
        """Scan ``data[pos:stop]``; True once the outcome is known (an error, ``hard_stop``)."""
        cdef const unsigned char* p = <const unsigned char*><const char*>data
        cdef Py_ssize_t n = len(data)
        cdef Py_ssize_t i = self.pos
        cdef int st = self.state
        cdef unsigned char c
        cdef int top
        if self.done:
            return True
        if stop > n:
            stop = n
        while i < stop:
            c = p[i]
            if st == S_STR:
                while i < stop:
                    c = p[i]
                    if c == 0x22 or c == 0x5C or c < 0x20:
                        break
                    i += 1
                if i >= stop:
                    break
                if c == 0x22:
                    if self.in_key:
                        st = S_COLON
                    else:
                        st = S_END
                        if self.str_start >= 0 and i - self.str_start >= self.chunk:
                            self._big_string(i)
                elif c == 0x5C:
                    st = S_ESC
                else:
                    self._fail(E_IN_STRING, i, c)
                    break
                i += 1
            elif st == S_END:
                if is_ws(c):
                    i += 1
                    continue
                if self.depth == 0:
                    self._fail(E_AFTER_TOP, i, c)
                    break
                top = self.stack[self.depth - 1]
                if c == 0x2C:
                    if self.depth <= self.track and i - self.lastmark[self.depth] >= self.chunk:
                        self.marks.append((self.starts[self.depth], i))
                        self.lastmark[self.depth] = i
                    st = S_KEY if top == C_OBJ else S_VALUE
                elif c == 0x7D and top == C_OBJ:
                    self._pop(i)
                elif c == 0x5D and top == C_ARR:
                    self._pop(i)
                else:
                    self._fail(E_AFTER_PAIR if top == C_OBJ else E_AFTER_ELEMENT, i, c)
                    break
                i += 1
            elif st == S_VALUE or st == S_VALUE_OR_CLOSE:
                if is_ws(c):
                    i += 1
                    continue
                if st == S_VALUE_OR_CLOSE and c == 0x5D:
                    self._pop(i)
                    st = S_END
                elif c == 0x7B:
                    st = S_KEY_OR_CLOSE
                    if self._push(C_OBJ, i):
                        i += 1
                        break
                elif c == 0x5B:
                    st = S_VALUE_OR_CLOSE
                    if self._push(C_ARR, i):
                        i += 1
                        break
                elif c == 0x22:
                    self.in_key = False
                    self.str_start = i if self.depth <= self.track else -1
                    st = S_STR
                elif c == 0x2D:
                    self.num_start = i
                    self.ndigits = 0
                    st = S_NEG
                elif c == 0x30:
                    self.num_start = i
                    self.ndigits = 1
                    st = S_ZERO
                elif 0x31 <= c <= 0x39:
                    self.num_start = i
                    self.ndigits = 1
                    st = S_INT
                elif c == 0x74 or c == 0x66 or c == 0x6E:
                    self.lit = 0 if c == 0x74 else (1 if c == 0x66 else 2)
                    self.lit_i = 1
                    st = S_LIT
                else:
                    self._fail(E_BEGIN_VALUE, i, c)
                    break
                i += 1
            elif st == S_INT:
                while i < stop and is_digit(p[i]):
                    i += 1
                    self.ndigits += 1
                if i >= stop:
                    break
                c = p[i]
                if c == 0x2E:
                    st = S_DOT
                    i += 1
                elif c == 0x65 or c == 0x45:
                    st = S_E
                    i += 1
                else:
                    self._end_int()
                    st = S_END
            elif st == S_FRAC or st == S_EXP:
                while i < stop and is_digit(p[i]):
                    i += 1
                if i >= stop:
                    break
                c = p[i]
                if st == S_FRAC and (c == 0x65 or c == 0x45):
                    st = S_E
                    i += 1
                else:
                    st = S_END
            elif st == S_KEY_OR_CLOSE or st == S_KEY:
                if is_ws(c):
                    i += 1
                    continue
                if st == S_KEY_OR_CLOSE and c == 0x7D:
                    self._pop(i)
                    st = S_END
                elif c == 0x22:
                    if self.depth <= self.track:
                        self.keystart[self.depth] = i
                    self.in_key = True
                    st = S_STR
                else:
                    self._fail(E_BEGIN_KEY, i, c)
                    break
                i += 1
            elif st == S_COLON:
                if is_ws(c):
                    i += 1
                    continue
                if c == 0x3A:
                    st = S_VALUE
                else:
                    self._fail(E_AFTER_KEY, i, c)
                    break
                i += 1
            elif st == S_ESC:
                if c == 0x75:
                    st = S_U1
                elif c == 0x22 or c == 0x5C or c == 0x2F or c == 0x62 or c == 0x66 or c == 0x6E \
                        or c == 0x72 or c == 0x74:
                    st = S_STR
                else:
                    self._fail(E_ESCAPE, i, c)
                    break
                i += 1
            elif S_U1 <= st <= S_U4:
                if not is_hex(c):
                    self._fail(E_HEX, i, c)
                    break
                st = S_STR if st == S_U4 else st + 1
                i += 1
            elif st == S_NEG:
                if c == 0x30:
                    self.ndigits = 1
                    st = S_ZERO
                elif 0x31 <= c <= 0x39:
                    self.ndigits = 1
                    st = S_INT
                else:
                    self._fail(E_IN_NUMBER, i, c)
                    break
                i += 1
            elif st == S_ZERO:
                if c == 0x2E:
                    st = S_DOT
                    i += 1
                elif c == 0x65 or c == 0x45:
                    st = S_E
                    i += 1
                else:
                    self._end_int()
                    st = S_END
            elif st == S_DOT:
                if not is_digit(c):
                    self._fail(E_AFTER_DOT, i, c)
                    break
                st = S_FRAC
                i += 1
            elif st == S_E:
                if c == 0x2B or c == 0x2D:
                    st = S_ESIGN
                elif is_digit(c):
                    st = S_EXP
                else:
                    self._fail(E_IN_EXPONENT, i, c)
                    break
                i += 1
            elif st == S_ESIGN:
                if not is_digit(c):
                    self._fail(E_IN_EXPONENT, i, c)
                    break
                st = S_EXP
                i += 1
            elif st == S_LIT:
                if c != <unsigned char>WORDS[self.lit][self.lit_i]:
                    self.error_word = self.lit
                    self.error_expect = <unsigned char>WORDS[self.lit][self.lit_i]
                    self._fail(E_IN_LITERAL, i, c)
                    break
                self.lit_i += 1
                if self.lit_i == WORD_LEN[self.lit]:
                    st = S_END
                i += 1
            else:  # S_STOPPED
                break
        if self.done or self.hard_stop:
            self.done = True
            self.pos = i
            return True
        self.state = st
        self.pos = i
        return False

    def finish(self):
        """The input ended at ``pos``: valid (``error`` stays 0) or ``E_EOF``."""
        if self.done:
            return
        if self.depth == 0 and (self.state == S_END or self.state == S_FRAC or self.state == S_EXP):
            pass
        elif self.depth == 0 and (self.state == S_INT or self.state == S_ZERO):
            self._end_int()
        else:
            self._fail(E_EOF, self.pos, -1)
        self.done = True
