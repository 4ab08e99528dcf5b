"""Client.before_push: producer hooks run on every payload push and push_bulk send."""
from __future__ import annotations

import pytest

from faktory import Client, Job
from faktory import client as client_module


def tag(payload):
    payload["custom"] = dict(payload.get("custom") or {}, tagged=payload["jid"])


async def test_hooks_change_what_push_and_push_bulk_send(faktory_url):
    async with Client(faktory_url, before_push=[tag]) as client:
        caller_custom = {"keep": 1}
        await client.push({"jid": "hook-0000001", "jobtype": "x", "args": [], "custom": caller_custom})
        assert await client.push_bulk(Job("x", jid=f"hook-bulk-{n}") for n in range(3)) == {}
        fetched = [await client.fetch("default") for _ in range(4)]
    assert caller_custom == {"keep": 1}  # the caller's dict is not changed
    assert {job["jid"]: job["custom"] for job in fetched} == {
        "hook-0000001": {"keep": 1, "tagged": "hook-0000001"},
        **{f"hook-bulk-{n}": {"tagged": f"hook-bulk-{n}"} for n in range(3)}}


async def test_a_hook_that_raises_stops_the_push(faktory_url):
    def refuse(payload):
        raise PermissionError(f"no {payload['jobtype']}")

    async with Client(faktory_url, before_push=[refuse]) as client:
        with pytest.raises(PermissionError, match="no x"):
            await client.push(Job("x"))
        with pytest.raises(PermissionError):
            await client.push_bulk([Job("x")])
        assert (await client.info())["faktory"]["queues"].get("default", 0) == 0


def test_new_clients_start_with_the_default_hooks(monkeypatch):
    monkeypatch.setattr(client_module, "DEFAULT_BEFORE_PUSH", [tag])
    assert Client("tcp://127.0.0.1:1").before_push == [tag]
    assert Client("tcp://127.0.0.1:1", before_push=[]).before_push == []
