"""Constants shared by both codecs (defined once, in Python)."""


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"

    def __reduce__(self) -> str:
        return "NEED_DATA"


#: Returned by ``Reader.gets()`` when the buffered bytes do not hold a complete reply
#: (``None`` is a valid reply: the null bulk string ``$-1``).
NEED_DATA = _NeedData()

DEFAULT_MAX_BULK = 64 * 1024 * 1024
DEFAULT_MAX_LINE = 64 * 1024
MAX_DEPTH = 32
MAX_ARRAY = 1024 * 1024
