"""Command line: ``faktory server | worker | bench``.

This is the only place that picks uvloop by default: ``--loop asyncio`` (or
``FAKTORY_LOOP=asyncio``) opts out.  Each subcommand lives in its own module with a
``main(argv) -> int``; this module only dispatches and runs event loops.
"""
from __future__ import annotations

import asyncio
import importlib
import os
import sys
from typing import Any, Callable, Coroutine, Sequence

__all__ = ["main", "run_loop", "loop_choice"]

SUBCOMMANDS = {
    "server": ("faktory.server.cli", "run the embedded Faktory-protocol server"),
    "worker": ("faktory.worker_cli", "process jobs"),
    "bench": ("faktory.bench", "embedded server + producer + worker, prints throughput"),
}

LOOPS = ("uvloop", "asyncio")


def loop_choice(value: str | None = None) -> str:
    """The loop to run: the given value, else ``FAKTORY_LOOP``, else uvloop when it imports."""
    choice = (value or os.environ.get("FAKTORY_LOOP") or "uvloop").lower()
    if choice not in LOOPS:
        raise SystemExit(f"faktory: unknown event loop {choice!r} (choose from {', '.join(LOOPS)})")
    if choice == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            return "asyncio"
    return choice


def run_loop(main: Callable[[], Coroutine[Any, Any, Any]], loop: str | None = None) -> Any:
    """Run ``main()`` to completion on uvloop (default) or the standard asyncio loop."""
    if loop_choice(loop) == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


def _usage() -> str:
    lines = ["usage: faktory [--version] {server,worker,bench} [options]", ""]
    lines += [f"  {name:8s} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run 'faktory COMMAND --help' for a command's options. Every command takes",
              "--log-level debug|info|warning|error and --log-format text|json."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-V", "--version"):
        from faktory import __version__
        from faktory.protocol import IMPLEMENTATION

        sys.stdout.write(f"faktory-turbo {__version__} (codec {IMPLEMENTATION}, Python "
                         f"{sys.version.split()[0]})\n")
        return 0
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(_usage() + "\n")
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        sys.stderr.write(f"faktory: unknown command {name!r}\n{_usage()}\n")
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
