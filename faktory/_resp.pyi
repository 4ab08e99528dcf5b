# The contract of both codecs: faktory._resp (compiled) and faktory._resp_py (pure Python).
# Both expose exactly these names, with the same behaviour and the same error texts.
from typing import Any, Callable, Iterable, Sequence, final

from faktory._const import NEED_DATA as NEED_DATA

__all__ = ["IMPLEMENTATION", "NEED_DATA", "Reader", "dumps", "pack_command", "pack_json",
           "pack_fetch", "pack_ack", "pack_push", "pack_pushb", "scan_push",
           "scan_pushb", "format_stamp", "PUSHB_ELEMENT_MAX"]

IMPLEMENTATION: str  # "cython" or "python"
PUSHB_ELEMENT_MAX: int  # the longest PUSHB element scan_pushb takes (bytes)

# A compiled extension type: it cannot be subclassed (stubtest checks that the stub says so).
@final
class Reader:
    """Push parser for RESP2 replies: ``feed(bytes)``, then ``gets()`` until ``NEED_DATA``.

    Replies: simple string -> ``str``; error -> a ``ServerError`` instance (returned, not
    raised); integer -> ``int``; bulk -> ``bytes``; null bulk/array -> ``None``;
    array -> ``list``.  Malformed input raises ``ProtocolError`` and the reader stays dead.
    """

    def __init__(self, max_bulk: int = ..., max_line: int = ...) -> None: ...
    def feed(self, data: bytes | bytearray | memoryview) -> None: ...
    def gets(self) -> Any: ...
    def buffered(self) -> int: ...
    def resolve(self, waiters: Any, deadlines: Any, orphans: Any) -> tuple[Any] | None:
        """Hand each complete reply to the next of ``waiters`` (a deque of pending futures
        or ``Callback``\\ s): pop it and the first of ``deadlines``, then ``set_result(reply)``.

        Returns ``(reply,)`` for the first reply it cannot hand over so (no waiter, the next
        one done already: its ``set_result`` raised ``InvalidStateError``, and it is put
        back in front with its deadline; or ``orphans`` not empty), consumed; ``None`` when
        no complete reply is left.  Bad bytes raise ``ProtocolError`` after the replies
        before them."""
    def dispatch(self, callback: Callable[[Any], object]) -> int:
        """Call ``callback(reply)`` for every complete reply, in order; return how many.

        Exactly ``while (r := gets()) is not NEED_DATA: callback(r)``, without a Python call
        per reply into the codec: a ``ProtocolError`` is raised after the replies before the
        bad bytes were delivered; an exception from ``callback`` propagates, the reply it was
        given stays consumed and the rest stay buffered for the next call.  ``callback`` may
        call ``feed()``.
        """

# Framing.  JSON is exactly ``json.dumps(obj, separators=(",", ":"), ensure_ascii=True,
# allow_nan=False)``: compact, single-line, ASCII; the same exceptions (TypeError for what
# JSON cannot hold, ValueError for NaN/infinity and circular references).  Command
# arguments must be non-empty str without spaces, CR or LF (ValueError, TypeError).
def dumps(obj: Any) -> str: ...
def pack_command(verb: str, *args: str) -> bytes: ...  # b"VERB a b\r\n"
def pack_json(verb: str, obj: Any) -> bytes: ...  # b"VERB <json>\r\n"
def pack_fetch(queues: Sequence[str]) -> bytes: ...  # b"FETCH q1 q2\r\n", at least one queue
def pack_ack(jid: str) -> bytes: ...  # b'ACK {"jid":"..."}\r\n'
def pack_push(job: dict[str, Any]) -> bytes: ...  # b"PUSH <json>\r\n"
def pack_pushb(jobs: Iterable[dict[str, Any]]) -> bytes: ...  # b"PUSHB [<json>,...]\r\n", linear time

# The embedded server's PUSH fast path: ``data[start:]`` is a PUSH command's JSON, ``ts`` the
# enqueue time.  ``(jid, queue, reserve_for, payload)`` for a valid job whose stored payload the
# real server would write exactly so (only JSON that Go's decode-and-marshal leaves unchanged,
# copied in Go's field order); ``None`` for anything else (the general path decides).
def scan_push(data: bytes, start: int, ts: bytes) -> tuple[str, str, int, bytes] | None: ...
def scan_pushb(data: bytes, start: int, ts: bytes,
               limit: int) -> tuple[list[tuple[str, str, int, bytes]], int]: ...
def format_stamp(t: float) -> bytes: ...
