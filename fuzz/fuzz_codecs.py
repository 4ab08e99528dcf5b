"""Coverage-guided differential fuzzing of the two codecs with atheris.

The compiled ``faktory._resp`` and the pure ``faktory._resp_py`` are fed the same bytes,
cut at the same points (the first input byte chooses the cuts), and must give the same
replies, the same ``ProtocolError`` text at the same place and the same ``buffered()``;
the framing functions must give the same bytes or the same exception for the same
arguments.  A difference, or any other exception, is a crash.

    pip install atheris
    python fuzz/fuzz_codecs.py -max_total_time=600 -print_final_stats=1 fuzz/corpus

(A corpus folder keeps what it found, so a later run starts from there.)  Run it with the
compiled codec built (``pip install -e .``); it refuses to run on the pure one alone.
"""
from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from faktory import _resp_py as pure
    from faktory._const import NEED_DATA
    from faktory.errors import ProtocolError

try:
    from faktory import _resp as compiled
except ImportError:  # pragma: no cover
    sys.exit("fuzz_codecs: the compiled codec is not built (pip install -e .)")


def _replies(codec, chunks: list[bytes]) -> list[object]:
    reader = codec.Reader(max_bulk=1 << 16, max_line=1 << 12)
    out: list[object] = []
    for chunk in chunks:
        reader.feed(chunk)
        while True:
            try:
                reply = reader.gets()
            except ProtocolError as exc:
                out.append(("error", str(exc), reader.buffered()))
                return out
            if reply is NEED_DATA:
                break
            out.append(reply if not isinstance(reply, Exception) else ("server", type(reply).__name__, str(reply)))
        out.append(("buffered", reader.buffered()))
    return out


def _framing(codec, verb: str, args: list[str], obj: object) -> list[object]:
    out: list[object] = []
    for call in (lambda: codec.pack_command(verb, *args), lambda: codec.pack_json(verb, obj),
                 lambda: codec.pack_fetch(args), lambda: codec.pack_ack(verb),
                 lambda: codec.dumps(obj)):
        try:
            out.append(call())
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            out.append((type(exc).__name__, str(exc)))
    return out


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    cuts = sorted({fdp.ConsumeIntInRange(0, 64) for _ in range(fdp.ConsumeIntInRange(0, 4))})
    stream = fdp.ConsumeBytes(fdp.remaining_bytes() // 2 + 1)
    chunks, last = [], 0
    for cut in cuts:
        chunks.append(stream[last:cut])
        last = max(last, cut)
    chunks.append(stream[last:])
    a, b = _replies(compiled, chunks), _replies(pure, chunks)
    if a != b:
        raise AssertionError(f"codecs differ on {chunks!r}:\n compiled {a!r}\n pure     {b!r}")
    verb = fdp.ConsumeUnicodeNoSurrogates(8)
    args = [fdp.ConsumeUnicodeNoSurrogates(6) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    obj = {"s": fdp.ConsumeUnicodeNoSurrogates(12), "n": fdp.ConsumeInt(8), "f": fdp.ConsumeFloat(),
           "l": [fdp.ConsumeIntInRange(-5, 5) for _ in range(fdp.ConsumeIntInRange(0, 3))]}
    x, y = _framing(compiled, verb, args, obj), _framing(pure, verb, args, obj)
    if x != y:
        raise AssertionError(f"framing differs for {verb!r} {args!r} {obj!r}:\n compiled {x!r}\n pure     {y!r}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
