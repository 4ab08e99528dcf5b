"""Mutation: MUTATE on the retries, scheduled and dead sets, through a real server."""
from __future__ import annotations

import pytest

from faktory import Client, Job, Mutation

FUTURE = "2099-01-01T00:00:00Z"


async def sets(client: Client) -> dict[str, int]:
    return (await client.info())["faktory"]["sets"]


async def schedule(client: Client, jobtype: str, jid: str, queue: str = "mq") -> str:
    return await client.push(Job(jobtype, 1, jid=jid, queue=queue, at=FUTURE))


# -- building (no I/O) -------------------------------------------------------------------

def test_builders_return_new_filtered_mutations():
    client = Client("tcp://127.0.0.1:1")
    base = client.scheduled
    typed = base.of_type("SchedA")
    both = typed.matching("*sched-0002*").with_jids("a" * 8).with_jids("b" * 8)
    assert base.filter is None and typed.filter == {"jobtype": "SchedA"}
    assert both.filter == {"jids": ["a" * 8, "b" * 8], "regexp": "*sched-0002*", "jobtype": "SchedA"}
    assert both.payload("kill") == {"cmd": "kill", "target": "scheduled", "filter": both.filter}
    assert client.retries.target == "retries" and client.dead.target == "dead"


def test_payload_is_compact_json_without_spaces():
    client = Client("tcp://127.0.0.1:1")
    data = client.codec.pack_json("MUTATE", client.dead.of_type("A").matching('*"args":[1]*').payload("kill"))
    assert b" " not in data[len(b"MUTATE "):]


@pytest.mark.parametrize("build", [
    lambda m: m.matching("* spaced *"),
    lambda m: m.of_type("Two Words"),
    lambda m: m.with_jids("has space!"),
    lambda m: m.matching(""),
    lambda m: m.with_jids(),
])
def test_values_the_server_would_split_are_refused(build):
    with pytest.raises(ValueError):
        build(Client("tcp://127.0.0.1:1").dead)


def test_bad_target():
    with pytest.raises(ValueError, match="target"):
        Mutation(Client("tcp://127.0.0.1:1"), "queues")


async def test_clear_refuses_a_filter():
    client = Client("tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="discard"):
        await client.dead.of_type("X").clear()
    assert client._size == 0


# -- against the server ---------------------------------------------------------------------

async def test_kill_discard_requeue_on_scheduled(faktory_url):
    async with Client(faktory_url) as client:
        await schedule(client, "SchedA", "sched-0001")
        await schedule(client, "SchedB", "sched-0002")
        await schedule(client, "SchedB", "sched-0003")
        assert (await sets(client))["scheduled"] == 3

        await client.scheduled.of_type("SchedA").kill()
        assert (await sets(client))["scheduled"] == 2 and (await sets(client))["dead"] == 1

        await client.scheduled.matching("*sched-0002*").discard()
        assert (await sets(client))["scheduled"] == 1

        await client.scheduled.requeue()
        assert (await sets(client))["scheduled"] == 0
        fetched = await client.fetch("mq")
        assert fetched["jid"] == "sched-0003"

        await client.dead.of_type("SchedA").requeue()
        assert (await sets(client))["dead"] == 0
        assert (await client.fetch("mq"))["jid"] == "sched-0001"


async def test_with_jids_and_clear(faktory_url):
    async with Client(faktory_url) as client:
        for i in range(3):
            await schedule(client, "J", f"jids-000{i}")
        await client.scheduled.with_jids("jids-0000", "jids-0002").kill()
        current = await sets(client)
        assert current["scheduled"] == 1 and current["dead"] == 2
        await client.dead.clear()
        await client.scheduled.discard()  # no filter: the whole set
        current = await sets(client)
        assert current["dead"] == 0 and current["scheduled"] == 0


async def test_type_and_glob_together(faktory_url):
    async with Client(faktory_url) as client:
        await schedule(client, "Mixed", "mixed-aaa-1")
        await schedule(client, "Other", "mixed-aaa-2")
        await schedule(client, "Mixed", "mixed-bbb-3")
        await client.scheduled.of_type("Mixed").matching("*aaa*").discard()
        await client.scheduled.requeue()
        remaining = sorted([(await client.fetch("mq"))["jid"], (await client.fetch("mq"))["jid"]])
        assert remaining == ["mixed-aaa-2", "mixed-bbb-3"]


async def test_retries_set(faktory_url):
    async with Client(faktory_url) as client:
        jid = await client.push(Job("R", queue="rq"))
        await client.fetch("rq")
        await client.fail(jid, RuntimeError("boom"))
        assert (await sets(client))["retries"] == 1
        await client.retries.of_type("R").kill()
        current = await sets(client)
        assert current["retries"] == 0 and current["dead"] == 1
        await client.dead.with_jids(jid).discard()
        assert (await sets(client))["dead"] == 0
