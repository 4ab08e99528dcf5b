"""Job: building, validation (before anything is sent), payload shape."""
from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone

import pytest

from faktory import Job
from faktory.job import format_at, generate_jid, validate_queue


def assert_rejected(exc: type[Exception], field: str, value: object) -> None:
    """``Job("X", field=value)`` raises ``exc`` with a message naming the field and the value."""
    with pytest.raises(exc) as info:
        Job("X", **{field: value})
    assert field in str(info.value) and repr(value) in str(info.value)


def test_defaults_make_a_complete_payload():
    job = Job("SendEmail", 1, "two", {"three": 3})
    payload = job.to_dict()
    assert payload == {"jid": job.jid, "jobtype": "SendEmail", "args": [1, "two", {"three": 3}],
                       "queue": "default", "retry": 25}


def test_retry_is_always_sent():
    assert Job("X").to_dict()["retry"] == 25
    assert Job("X", retry=0).to_dict()["retry"] == 0
    assert Job("X", retry=-1).to_dict()["retry"] == -1


def test_generated_jids_are_long_and_distinct():
    jids = {generate_jid() for _ in range(1000)}
    assert len(jids) == 1000
    assert all(len(jid) >= 8 for jid in jids)
    assert Job("X").jid != Job("X").jid


def test_optional_fields_only_when_set():
    job = Job("X", reserve_for=600, custom={"k": "v"}, backtrace=5, queue="mail.high-1_a")
    payload = job.to_dict()
    assert payload["reserve_for"] == 600 and payload["custom"] == {"k": "v"}
    assert payload["backtrace"] == 5 and payload["queue"] == "mail.high-1_a"
    assert "at" not in Job("X").to_dict() and "reserve_for" not in Job("X").to_dict()


@pytest.mark.parametrize("queue", ["bad/queue", "with space", "", "é", "a\nb", "*"])
def test_bad_queue_names_name_the_field_and_value(queue):
    assert_rejected(ValueError, "queue", queue)


def test_queue_must_be_str():
    with pytest.raises(TypeError, match="queue"):
        Job("X", queue=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="queue"):
        validate_queue(None)


def test_short_jid_rejected():
    with pytest.raises(ValueError, match=r"jid.*'short'"):
        Job("X", jid="short")
    with pytest.raises(TypeError, match="jid"):
        Job("X", jid=12345678)  # type: ignore[arg-type]
    assert Job("X", jid="12345678").jid == "12345678"


def test_jobtype_required():
    with pytest.raises(ValueError, match="jobtype"):
        Job("")
    with pytest.raises(TypeError, match="jobtype"):
        Job(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [59, 0, 86401, -1])
def test_reserve_for_range(value):
    with pytest.raises(ValueError, match=rf"reserve_for.*{value}"):
        Job("X", reserve_for=value)


def test_reserve_for_bounds_accepted():
    assert Job("X", reserve_for=60).reserve_for == 60
    assert Job("X", reserve_for=86400).reserve_for == 86400


@pytest.mark.parametrize("field,value,exc", [
    ("retry", "3", TypeError), ("retry", True, TypeError), ("retry", -2, ValueError),
    ("reserve_for", 60.5, TypeError), ("backtrace", -1, ValueError), ("backtrace", "5", TypeError),
    ("custom", [1], TypeError), ("custom", {1: "x"}, TypeError),
])
def test_bad_field_types(field, value, exc):
    assert_rejected(exc, field, value)


def test_at_aware_datetime_sent_as_rfc3339_utc():
    when = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    job = Job("X", at=when)
    assert job.at == "2030-01-02T01:04:05.123456Z"
    assert Job("X", at=datetime(2030, 1, 1, tzinfo=timezone.utc)).at == "2030-01-01T00:00:00Z"


def test_at_naive_datetime_rejected():
    naive = datetime(2030, 1, 1)
    with pytest.raises(ValueError, match="at.*naive"):
        Job("X", at=naive)


@pytest.mark.parametrize("text", [
    "2030-01-01T00:00:00Z", "2030-01-01T00:00:00.123456789Z", "2030-01-01T00:00:00+05:30",
    "2030-12-31T23:59:59-08:00",
])
def test_at_rfc3339_strings_accepted_as_is(text):
    assert Job("X", at=text).at == text


@pytest.mark.parametrize("text", [
    "tomorrow", "2030-01-01T00:00:00", "2030-01-01 00:00:00Z", "2030-13-01T00:00:00Z",
    "2030-02-30T00:00:00Z", "2030-01-01T00:00:00.1234567890Z", "2030-01-01T00:00:00+25:00",
])
def test_at_bad_strings_rejected(text):
    assert_rejected(ValueError, "at", text)


def test_at_other_types_rejected():
    with pytest.raises(TypeError, match="at"):
        format_at(1234567890)


def test_priority_is_rejected_not_dropped():
    with pytest.raises(TypeError):
        Job("X", priority=5)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="priority"):
        Job.from_payload({"jobtype": "X", "args": [], "priority": 5})


def test_properties_validate_on_assignment():
    job = Job("X")
    job.queue = "critical"
    job.retry = 3
    job.at = "2030-01-01T00:00:00Z"
    job.reserve_for = 120
    job.custom = {"a": 1}
    job.backtrace = 10
    job.args = (1, 2)
    assert job.to_dict() == {"jid": job.jid, "jobtype": "X", "args": [1, 2], "queue": "critical",
                             "retry": 3, "at": "2030-01-01T00:00:00Z", "reserve_for": 120,
                             "custom": {"a": 1}, "backtrace": 10}
    job.at = None
    job.reserve_for = None
    assert "at" not in job.to_dict() and "reserve_for" not in job.to_dict()
    with pytest.raises(ValueError, match="queue"):
        job.queue = "no good"
    with pytest.raises(TypeError, match="args"):
        job.args = 5  # type: ignore[assignment]
    assert job.queue == "critical"


def test_from_payload_round_trip_and_defaults():
    job = Job("X", 1, queue="q", at="2030-01-01T00:00:00Z", custom={"c": 1})
    again = Job.from_payload(job.to_dict())
    assert again == job and again.to_dict() is not job.to_dict()
    filled = Job.from_payload({"jobtype": "Y", "args": [2]})
    assert filled.retry == 25 and filled.queue == "default" and len(filled.jid) >= 8


def test_from_payload_keeps_server_fields():
    fetched = {"retry": 25, "jid": "probe-jid-0013", "queue": "lf", "jobtype": "Probe",
               "created_at": "2026-11-28T16:51:22.948348129Z",
               "enqueued_at": "2026-11-28T16:51:22.94837968Z", "args": [1],
               "failure": {"retry_count": 0}}
    job = Job.from_payload(fetched)
    assert job.created_at == fetched["created_at"] and job.enqueued_at == fetched["enqueued_at"]
    assert job.failure == {"retry_count": 0}
    assert job.to_dict() == fetched
    assert Job.from_payload(fetched, validate=False).to_dict() == fetched


@pytest.mark.parametrize("payload,field", [
    ({"args": []}, "jobtype"), ({"jobtype": "X"}, "args"), ({"jobtype": "X", "args": None}, "args"),
    ({"jobtype": "X", "args": {"a": 1}}, "args"), ({"jobtype": "X", "args": [], "jid": "short"}, "jid"),
    ({"jobtype": "X", "args": [], "queue": "a b"}, "queue"),
    ({"jobtype": "X", "args": [], "reserve_for": 86401}, "reserve_for"),
    ({"jobtype": "X", "args": [], "at": "tomorrow"}, "at"),
])
def test_from_payload_validates(payload, field):
    with pytest.raises((TypeError, ValueError), match=field):
        Job.from_payload(payload)


def test_from_payload_needs_a_dict():
    with pytest.raises(TypeError, match="dict"):
        Job.from_payload([1, 2])  # type: ignore[arg-type]


async def test_push_without_client_explains():
    with pytest.raises(RuntimeError, match="no client"):
        await Job("X").push()


def test_repr_and_equality():
    job = Job("X", 1, jid="abcdefgh", reserve_for=60)
    assert repr(job) == "Job('X', args=[1], jid='abcdefgh', queue='default', retry=25, reserve_for=60)"
    assert job == Job("X", 1, jid="abcdefgh", reserve_for=60)
    assert job != Job("X", 2, jid="abcdefgh", reserve_for=60)


def test_construction_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Job("X", 1, queue="q", at=datetime.now(timezone.utc))


@pytest.mark.parametrize("payload,exc,field", [
    ({"jobtype": "X", "args": [], "queue": ["q"]}, TypeError, "queue"),
    ({"jobtype": "X", "args": [], "queue": 5}, TypeError, "queue"),
    ({"jobtype": 5, "args": []}, TypeError, "jobtype"),
    ({"jobtype": "", "args": []}, ValueError, "jobtype"),
    ({"jobtype": "X", "args": [], "retry": "3"}, TypeError, "retry"),
    ({"jobtype": "X", "args": [], "jid": 12345678}, TypeError, "jid"),
    ({"jobtype": "X", "args": [], "custom": "c"}, TypeError, "custom"),
])
def test_from_payload_type_errors_name_the_field(payload, exc, field):
    with pytest.raises(exc, match=field):
        Job.from_payload(payload)


def test_from_payload_normalises():
    job = Job.from_payload({"jobtype": "X", "args": (1, 2), "queue": "", "retry": None, "at": None})
    assert job.to_dict() == {"jobtype": "X", "args": [1, 2], "queue": "default", "retry": 25,
                             "jid": job.jid}
    payload = {"jobtype": "X", "args": []}
    Job.from_payload(payload)
    assert payload == {"jobtype": "X", "args": []}  # the caller's dict is not changed
