"""Tasks of the test app: they write to the database, so the test sees that they ran."""
from __future__ import annotations

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task

from django.db import connection


def record(kind: str, value: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS runs (kind TEXT, value TEXT)")
        cursor.execute("INSERT INTO runs VALUES (%s, %s)", [kind, value])


@task(queue_name="emails")
def send_email(address: str, *, subject: str = "hello") -> str:
    record("email", f"{address}:{subject}")
    return address


@task(priority=60)
def urgent(n: int) -> None:
    record("urgent", str(n))


@task(takes_context=True)
def flaky(context, n: int) -> None:
    record("flaky", f"{n}:attempt{context.attempt}")
    if context.attempt == 1:
        raise RuntimeError("first attempt fails")


@task()
async def async_task(n: int) -> int:
    from asgiref.sync import sync_to_async
    await sync_to_async(record)("async", str(n))
    return n
