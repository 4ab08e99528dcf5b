"""``python manage.py faktory_worker [faktory worker options]``: run the Faktory worker for
this project's tasks (``faktory worker --django`` with the project's settings)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):  # type: ignore[misc]  # Django is untyped here
    help = "Run a Faktory worker for this project's django.tasks tasks (options of 'faktory worker')."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("worker_args", nargs=argparse.REMAINDER,
                            help="options of 'faktory worker' (see 'faktory worker --help')")

    def run_from_argv(self, argv: list[str]) -> None:
        # Every option goes to `faktory worker` as it is; its exit code is the command's.
        from faktory.worker_cli import main

        sys.exit(main(["--django", *argv[2:]]))

    def handle(self, *args: Any, **options: Any) -> None:  # call_command("faktory_worker", ...)
        from faktory.worker_cli import main

        code = main(["--django", *options.get("worker_args", [])])
        if code:
            sys.exit(code)
