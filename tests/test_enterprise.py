"""Enterprise helpers: the exact bytes of each command (recorded from a fake peer, since
there is no Enterprise server here), the custom keys of unique and expiring jobs, and
the open-source server's (embedded server's) "only available in Faktory Enterprise"."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest

from faktory import BatchError, Client, Job, NotUniqueError, ServerError
from faktory.enterprise import (
    Batch,
    BatchStatus,
    JobTrack,
    batch_status,
    pack_batch,
    pack_batch_new,
    pack_track_get,
    pack_track_set,
    progress,
    progress_sync,
    set_expiry,
    set_unique,
    track_get,
    track_set,
)
from faktory.worker import Worker

from _fakes import FakePeer, answers

BATCH_ERR = "batch subsystem is only available in Faktory Enterprise"
TRACK_ERR = "tracking subsystem is only available in Faktory Enterprise"


# -- unique and expiring jobs ---------------------------------------------------------------

def test_set_unique_writes_custom_keys_and_keeps_the_others():
    job = Job("report", 1, jid="jid-00000001", custom={"tenant": 7})
    assert set_unique(job, 3600, "start") is job
    assert job.custom == {"tenant": 7, "unique_for": 3600, "unique_until": "start"}
    set_unique(job, timedelta(minutes=2))
    assert job.custom == {"tenant": 7, "unique_for": 120}
    payload = {"jobtype": "x", "args": []}
    set_unique(payload, 60, "success")
    assert payload["custom"] == {"unique_for": 60, "unique_until": "success"}


@pytest.mark.parametrize("args, error, words", [
    ((0,), ValueError, "unique_for must be a whole number of seconds >= 1, got 0"),
    ((1.5,), ValueError, "got 1.5"),
    (("60",), TypeError, "unique_for must be a number of seconds"),
    ((True,), TypeError, "got True"),
    ((60, "finish"), ValueError, "unique_until must be 'success' or 'start', got 'finish'"),
])
def test_set_unique_rejects_bad_values_naming_them(args, error, words):
    job = Job("report", jid="jid-00000001")
    with pytest.raises(error) as info:
        set_unique(job, *args)
    assert words in str(info.value)
    assert job.custom is None  # nothing half-applied


def test_set_expiry_in_and_at():
    job = set_expiry(Job("notify", jid="jid-00000001"), expires_in=300)
    assert job.custom == {"expires_in": 300}
    when = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    set_expiry(job, expires_at=when)
    assert job.custom == {"expires_at": "2031-05-06T05:08:09Z"}  # UTC; expires_in replaced
    with pytest.raises(ValueError, match="exactly one of expires_at and expires_in"):
        set_expiry(job, expires_at=when, expires_in=5)
    with pytest.raises(ValueError, match="expires_at must be a timezone-aware datetime"):
        set_expiry(job, expires_at=datetime(2031, 1, 1))
    with pytest.raises(ValueError, match="expires_in must be a whole number of seconds >= 1, got -5"):
        set_expiry(job, expires_in=-5)


def test_unique_and_expiring_jobs_go_on_the_wire_in_custom():
    job = set_expiry(set_unique(Job("r", 1, jid="jid-00000001", retry=3), 60), expires_in=30)
    from faktory import protocol
    assert protocol.codec.pack_push(job.to_dict()) == (
        b'PUSH {"jid":"jid-00000001","jobtype":"r","args":[1],"queue":"default","retry":3,'
        b'"custom":{"unique_for":60,"expires_in":30}}\r\n')


async def test_unique_job_is_accepted_by_the_open_source_server(faktory_url):
    # OSS Faktory stores the custom keys and ignores them: pushing twice works.
    async with Client(faktory_url) as client:
        for jid in ("uniq-0000001", "uniq-0000002"):
            await client.push(set_unique(Job("r", 1, jid=jid), 60))
        job = await client.fetch("default")
        assert job["custom"] == {"unique_for": 60}


async def test_notunique_reply_raises_not_unique_error():
    async with FakePeer(answers(b"-NOTUNIQUE Job not unique\r\n")) as peer:
        async with Client(peer.url) as client:
            with pytest.raises(NotUniqueError) as info:
                await client.push(set_unique(Job("r", jid="jid-00000001"), 60))
    assert info.value.code == "NOTUNIQUE" and info.value.message == "Job not unique"


# -- command bytes --------------------------------------------------------------------------

def test_batch_new_bytes():
    success = Job("done", 1, jid="succ-0000001", queue="critical", retry=3)
    complete = {"jid": "comp-0000001", "jobtype": "finished", "args": []}
    assert pack_batch_new(success=success, complete=complete, description="an import",
                          parent_bid="b-parent") == (
        b'BATCH NEW {"parent_bid":"b-parent","description":"an import",'
        b'"success":{"jid":"succ-0000001","jobtype":"done","args":[1],"queue":"critical","retry":3},'
        b'"complete":{"jid":"comp-0000001","jobtype":"finished","args":[],"queue":"default","retry":25}}\r\n')
    assert pack_batch_new(success=success) == (
        b'BATCH NEW {"success":{"jid":"succ-0000001","jobtype":"done","args":[1],'
        b'"queue":"critical","retry":3}}\r\n')


def test_batch_new_needs_a_callback_and_valid_ids():
    with pytest.raises(ValueError, match="needs a success or a complete callback"):
        pack_batch_new(description="x")
    with pytest.raises(ValueError, match="parent_bid must be a non-empty str without spaces"):
        pack_batch_new(success=Job("x"), parent_bid="b 1")
    with pytest.raises(ValueError, match="success callback: jobtype is required"):
        pack_batch_new(success={"args": []})


def test_batch_and_track_bytes():
    assert pack_batch("OPEN", "b-123") == b"BATCH OPEN b-123\r\n"
    assert pack_batch("COMMIT", "b-123") == b"BATCH COMMIT b-123\r\n"
    assert pack_batch("STATUS", "b-123") == b"BATCH STATUS b-123\r\n"
    assert pack_track_get("jid-00000001") == b"TRACK GET jid-00000001\r\n"
    until = datetime(2031, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert pack_track_set("jid-00000001", 40, "rows 4/10", until) == (
        b'TRACK SET {"jid":"jid-00000001","percent":40,"desc":"rows 4/10",'
        b'"reserve_until":"2031-01-02T03:04:05Z"}\r\n')
    assert pack_track_set("jid-00000001", 0) == b'TRACK SET {"jid":"jid-00000001","percent":0}\r\n'
    with pytest.raises(ValueError, match="percent must be an int from 0 to 100, got 101"):
        pack_track_set("jid-00000001", 101)
    with pytest.raises(ValueError, match="bid must be a non-empty str"):
        pack_batch("COMMIT", "")


async def test_batch_session_sends_exactly_these_lines():
    bid = b"b-Zx81"
    status = {"bid": "b-Zx81", "total": 2, "pending": 1, "failed": 0, "created_at": "2031-01-01T00:00:00Z",
              "description": "import", "complete_st": "", "success_st": ""}
    replies = (b"+" + bid + b"\r\n", b"+OK\r\n", b"+OK\r\n", b"+OK\r\n",
               b"$%d\r\n%s\r\n" % (len(json.dumps(status)), json.dumps(status).encode()))
    async with FakePeer(answers(*replies)) as peer:
        async with Client(peer.url, pool_size=1) as client:
            async with Batch(client, description="import", success=Job("done", jid="succ-0000001")) as batch:
                assert batch.bid == "b-Zx81"
                await batch.push(Job("row", 1, jid="row-00000001"))
                await batch.push({"jid": "row-00000002", "jobtype": "row", "args": [2], "custom": {"k": 1}})
            assert batch.committed
            with pytest.raises(BatchError, match="is committed: reopen it"):
                await batch.push(Job("row", 3))
            got = await batch_status(client, "b-Zx81")
    lines = peer.received[0][1:]  # after HELLO
    assert lines == [
        b'BATCH NEW {"description":"import","success":{"jid":"succ-0000001","jobtype":"done",'
        b'"args":[],"queue":"default","retry":25}}\r\n',
        b'PUSH {"jid":"row-00000001","jobtype":"row","args":[1],"queue":"default","retry":25,'
        b'"custom":{"bid":"b-Zx81"}}\r\n',
        b'PUSH {"jid":"row-00000002","jobtype":"row","args":[2],"custom":{"k":1,"bid":"b-Zx81"},'
        b'"queue":"default","retry":25}\r\n',
        b"BATCH COMMIT b-Zx81\r\n",
        b"BATCH STATUS b-Zx81\r\n",
    ]
    assert got == BatchStatus(bid="b-Zx81", total=2, pending=1, failed=0, created_at="2031-01-01T00:00:00Z",
                              description="import")


async def test_batch_not_committed_when_the_block_raises():
    async with FakePeer(answers(b"$6\r\nb-9q2w\r\n")) as peer:
        async with Client(peer.url, pool_size=1) as client:
            batch = Batch(client, complete=Job("done", jid="comp-0000001"))
            with pytest.raises(ZeroDivisionError):
                async with batch:
                    raise ZeroDivisionError
            assert batch.bid == "b-9q2w" and not batch.committed
    assert [line.split(b" ")[:2] for line in peer.received[0][1:]] == [[b"BATCH", b"NEW"]]


async def test_batch_push_bulk_and_reopen_send_the_bid():
    async with FakePeer(answers(b"+b-1\r\n", b"$2\r\n{}\r\n", b"+OK\r\n")) as peer:
        async with Client(peer.url, pool_size=1) as client:
            batch = await Batch.open(client, "b-1")
            assert await batch.push_bulk([Job("row", n, jid=f"row-0000000{n}") for n in (1, 2)]) == {}
            await batch.commit()
            with pytest.raises(BatchError):
                await batch.commit()
    assert peer.received[0][1:] == [
        b"BATCH OPEN b-1\r\n",
        b'PUSHB [{"jid":"row-00000001","jobtype":"row","args":[1],"queue":"default","retry":25,'
        b'"custom":{"bid":"b-1"}},{"jid":"row-00000002","jobtype":"row","args":[2],"queue":"default",'
        b'"retry":25,"custom":{"bid":"b-1"}}]\r\n',
        b"BATCH COMMIT b-1\r\n",
    ]


async def test_track_get_and_set_bytes_and_reply():
    track = b'{"jid":"jid-00000001","percent":40,"desc":"rows","state":"working","updated_at":"2031-01-01T00:00:00Z"}'
    async with FakePeer(answers(b"+OK\r\n", b"$%d\r\n%s\r\n" % (len(track), track))) as peer:
        async with Client(peer.url, pool_size=1) as client:
            await track_set(client, "jid-00000001", 40, "rows")
            got = await track_get(client, "jid-00000001")
    assert peer.received[0][1:] == [b'TRACK SET {"jid":"jid-00000001","percent":40,"desc":"rows"}\r\n',
                                    b"TRACK GET jid-00000001\r\n"]
    assert got == JobTrack(jid="jid-00000001", state="working", percent=40, desc="rows",
                           updated_at="2031-01-01T00:00:00Z")


# -- against the open-source (embedded) server ------------------------------------------------

async def test_open_source_server_refuses_batches_and_tracking(faktory_url):
    async with Client(faktory_url) as client:
        with pytest.raises(ServerError) as info:
            async with Batch(client, success=Job("done")):
                pass  # pragma: no cover
        assert (info.value.code, info.value.message) == ("ERR", BATCH_ERR)
        for call in (lambda: batch_status(client, "b-1"), lambda: Batch.open(client, "b-1")):
            with pytest.raises(ServerError, match=BATCH_ERR):
                await call()
        with pytest.raises(ServerError) as info:
            await track_get(client, "jid-00000001")
        assert info.value.message == TRACK_ERR
        with pytest.raises(ServerError, match=TRACK_ERR):
            await track_set(client, "jid-00000001", 10)
        assert await client.send("INFO")  # the connection is still usable


async def test_progress_from_inside_jobs_reaches_the_server(faktory_url):
    # Against the OSS server both helpers get the Enterprise error, raised in the job.
    worker = Worker(url=faktory_url, concurrency=2, queues=["track"])
    errors: dict[str, str] = {}

    def record(kind: str, exc: ServerError) -> None:
        errors[kind] = exc.message
        if len(errors) == 2:
            worker.stop()  # thread-safe

    async def tracked_async():
        async def provider(ctx):
            try:
                await progress(ctx, 50, "half")
            except ServerError as exc:
                record("async", exc)
        return provider

    def tracked_sync():
        def provider(ctx):
            try:
                progress_sync(ctx, 60, "more")
            except ServerError as exc:
                record("sync", exc)
        return provider

    worker.register("tracked_async", tracked_async)
    worker.register("tracked_sync", tracked_sync)
    async with Client(faktory_url) as client:
        await client.push(Job("tracked_async", queue="track"))
        await client.push(Job("tracked_sync", queue="track"))
    await asyncio.wait_for(worker.work(handle_signals=False), 20)
    assert errors == {"async": TRACK_ERR, "sync": TRACK_ERR}
    assert worker.processed == 2
