"""SqsAuditSink / FifoBatchSender against a fake SQS client: batching, ids, order, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from compliance.audit.events import AuditEventIn
from compliance.audit.sqs_sink import SQS_MAX_BATCH_BYTES, FifoBatchSender, FifoMessage, SqsAuditSink
from compliance.errors import AuditUnavailableError

ORG_A = UUID("6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f0001")
ORG_B = UUID("9d4a4b8e-0000-4000-8000-000000000001")
QUEUE = "https://sqs.us-east-1.amazonaws.com/000000000000/audit.fifo"


def event(org: UUID = ORG_A, n: int = 0, **changes: Any) -> AuditEventIn:
    values: dict[str, Any] = {
        "event_id": uuid4(),
        "occurred_at": datetime(2026, 11, 23, 12, 0, n, tzinfo=UTC),
        "event_type": "api.request",
        "actor": "api_key:abc",
        "org_id": org,
        "resource": f"route:GET:/v1/{n}",
        "action": "read",
        "result": "success",
        "details": {"n": n},
    }
    values.update(changes)
    return AuditEventIn.model_validate(values)


class FakeSqs:
    """Records each send_message_batch call; ``refuse(entry, attempt)`` decides a refusal."""

    def __init__(self, refuse: Callable[[dict[str, Any], int], dict[str, Any] | None] | None = None) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.queued: list[dict[str, Any]] = []  # accepted entries, in acceptance order
        self._refuse = refuse
        self._attempts: dict[str, int] = {}
        self.raise_exc: Exception | None = None

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        assert QueueUrl == QUEUE
        if self.raise_exc is not None:
            raise self.raise_exc
        assert 1 <= len(Entries) <= 10
        assert sum(len(e["MessageBody"].encode()) for e in Entries) <= SQS_MAX_BATCH_BYTES
        self.calls.append(Entries)
        ok, failed = [], []
        for entry in Entries:
            dedup = entry["MessageDeduplicationId"]
            attempt = self._attempts.get(dedup, 0)
            self._attempts[dedup] = attempt + 1
            refusal = self._refuse(entry, attempt) if self._refuse else None
            if refusal is None:
                ok.append({"Id": entry["Id"], "MessageId": f"m-{dedup}"})
                self.queued.append(entry)
            else:
                failed.append({"Id": entry["Id"], **refusal})
        return {"Successful": ok, "Failed": failed}


def sink(client: FakeSqs) -> SqsAuditSink:
    sink = SqsAuditSink(client, QUEUE)
    sink._sender._sleep = lambda _s: None  # no real pauses between retries
    return sink


THROTTLED = {"Code": "ThrottlingException", "SenderFault": False, "Message": "slow down"}


def test_each_event_is_one_message_grouped_by_org_and_deduplicated_by_event_id() -> None:
    # Given two events of two organisations
    client = FakeSqs()
    events = [event(ORG_A, 1), event(ORG_B, 2)]
    # When published
    sink(client).publish(events)
    # Then each is one message with the contract's ids and body
    assert [(e["MessageGroupId"], e["MessageDeduplicationId"]) for e in client.queued] == [
        (str(ORG_A), str(events[0].event_id)),
        (str(ORG_B), str(events[1].event_id)),
    ]
    assert [AuditEventIn.model_validate_json(e["MessageBody"]) for e in client.queued] == events
    assert len(client.calls) == 1


def test_many_orgs_are_batched_by_ten() -> None:
    # Given 25 events of 25 organisations
    client = FakeSqs()
    events = [event(uuid4(), i % 60) for i in range(25)]
    sink(client).publish(events)
    # Then three calls of 10, 10 and 5 entries, all accepted in order
    assert [len(c) for c in client.calls] == [10, 10, 5]
    assert [e["MessageDeduplicationId"] for e in client.queued] == [str(e.event_id) for e in events]


def test_batches_stay_under_256_kib() -> None:
    # Given messages of ~100 KiB each (the sender is generic: dead letters can be large)
    client = FakeSqs()
    sender = FifoBatchSender(client, QUEUE, what="queue")
    messages = [FifoMessage("x" * 100_000, f"g{i}", f"d{i}") for i in range(5)]
    sender.send(messages)
    # Then no call exceeds the limit (the fake asserts it) and all went out
    assert [len(c) for c in client.calls] == [2, 2, 1]
    assert len(client.queued) == 5


def test_a_message_over_256_kib_fails_before_sending_anything() -> None:
    client = FakeSqs()
    sender = FifoBatchSender(client, QUEUE, what="queue")
    with pytest.raises(AuditUnavailableError):
        sender.send([FifoMessage("ok", "g", "d1"), FifoMessage("x" * (SQS_MAX_BATCH_BYTES + 1), "g", "d2")])
    assert client.calls == []


def test_one_call_carries_at_most_one_message_per_group() -> None:
    # Given three events of org A and one of org B
    client = FakeSqs()
    events = [event(ORG_A, 0), event(ORG_A, 1), event(ORG_B, 2), event(ORG_A, 3)]
    sink(client).publish(events)
    # Then every call has distinct groups, and each group's messages went out in order
    for call in client.calls:
        groups = [e["MessageGroupId"] for e in call]
        assert len(groups) == len(set(groups))
    a_order = [e["MessageDeduplicationId"] for e in client.queued if e["MessageGroupId"] == str(ORG_A)]
    assert a_order == [str(events[i].event_id) for i in (0, 1, 3)]


def test_a_refused_entry_is_retried_before_later_entries_of_its_group() -> None:
    # Given org A's first event is throttled once, and org B's events are fine
    events = [event(ORG_A, 0), event(ORG_A, 1), event(ORG_B, 2), event(ORG_B, 3)]
    first_a = str(events[0].event_id)

    def refuse(entry: dict[str, Any], attempt: int) -> dict[str, Any] | None:
        return THROTTLED if entry["MessageDeduplicationId"] == first_a and attempt == 0 else None

    client = FakeSqs(refuse)
    # When published
    sink(client).publish(events)
    # Then A's second event is accepted only after its first: per-org order holds
    a_order = [e["MessageDeduplicationId"] for e in client.queued if e["MessageGroupId"] == str(ORG_A)]
    assert a_order == [str(events[0].event_id), str(events[1].event_id)]
    b_order = [e["MessageDeduplicationId"] for e in client.queued if e["MessageGroupId"] == str(ORG_B)]
    assert b_order == [str(events[2].event_id), str(events[3].event_id)]


def test_an_entry_refused_every_time_fails_and_nothing_later_of_its_group_is_sent() -> None:
    # Given org A's first event is always throttled
    events = [event(ORG_A, 0), event(ORG_A, 1), event(ORG_B, 2)]
    first_a = str(events[0].event_id)
    client = FakeSqs(lambda entry, _n: THROTTLED if entry["MessageDeduplicationId"] == first_a else None)
    # When published, Then it fails closed after three attempts
    with pytest.raises(AuditUnavailableError) as info:
        sink(client).publish(events)
    attempts = [e for c in client.calls for e in c if e["MessageDeduplicationId"] == first_a]
    assert len(attempts) == 3
    # and A's later event never went out ahead of it
    assert str(events[1].event_id) not in {e["MessageDeduplicationId"] for c in client.calls for e in c}
    assert "api_key" not in str(info.value) and first_a not in str(info.value)


def test_a_sender_fault_is_not_retried() -> None:
    fault = {"Code": "InvalidParameterValue", "SenderFault": True, "Message": "bad"}
    client = FakeSqs(lambda _e, _n: fault)
    with pytest.raises(AuditUnavailableError):
        sink(client).publish([event()])
    assert len(client.calls) == 1


def test_an_entry_neither_accepted_nor_refused_is_retried() -> None:
    class Silent(FakeSqs):
        def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
            response = super().send_message_batch(**kwargs)
            if len(self.calls) == 1:
                self.queued.clear()
                return {"Successful": [], "Failed": []}
            return response

    client = Silent()
    sink(client).publish([event()])
    assert len(client.calls) == 2 and len(client.queued) == 1


def test_a_client_error_becomes_audit_unavailable_without_values() -> None:
    # Given SQS is unreachable (the driver's message could quote the request)
    client = FakeSqs()
    client.raise_exc = RuntimeError(f"could not connect; body={json.dumps({'actor': 'api_key:secret'})}")
    with pytest.raises(AuditUnavailableError) as info:
        sink(client).publish([event()])
    assert "secret" not in str(info.value)
    assert info.value.status == 503


def test_nothing_to_publish_sends_nothing() -> None:
    client = FakeSqs()
    sink(client).publish([])
    assert client.calls == []


def test_dead_letter_attributes_are_sent_as_string_message_attributes() -> None:
    client = FakeSqs()
    FifoBatchSender(client, QUEUE, what="dlq").send([FifoMessage("b", "g", "m1", {"reason": "bad"})])
    assert client.queued[0]["MessageAttributes"] == {"reason": {"DataType": "String", "StringValue": "bad"}}
