"""The audit FIFO consumer with fake store and dead-letter queue: parsing, order, all-or-nothing."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from compliance.audit.append_consumer import AuditAppendConsumer, DeadLetter, Reason, parse_record
from compliance.audit.events import AuditEventIn
from compliance.errors import AuditUnavailableError, DataAccessError

ORG_A = UUID("6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f0001")
ORG_B = UUID("9d4a4b8e-0000-4000-8000-000000000001")


def body(org: UUID = ORG_A, n: int = 0, **changes: Any) -> str:
    values: dict[str, Any] = {
        "event_id": str(uuid4()),
        "occurred_at": datetime(2026, 11, 23, 12, 0, n, tzinfo=UTC).isoformat(),
        "event_type": "api.request",
        "actor": "api_key:abc",
        "org_id": str(org),
        "resource": f"route:GET:/v1/{n}",
        "action": "read",
        "result": "success",
        "details": {"n": n},
    }
    values.update(changes)
    return json.dumps(values)


def record(text: str, group: str | None = str(ORG_A), message_id: str | None = None) -> dict[str, Any]:
    attributes: dict[str, str] = {"ApproximateReceiveCount": "1"}
    if group is not None:
        attributes["MessageGroupId"] = group
    return {"messageId": message_id or str(uuid4()), "body": text, "attributes": attributes}


class FakeStore:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[dict[UUID, list[AuditEventIn]]] = []
        self.error = error
        self.stored: set[UUID] = set()

    def append_by_org(self, groups: Mapping[UUID, Sequence[AuditEventIn]]) -> tuple[int, int]:
        self.calls.append({org: list(events) for org, events in groups.items()})
        if self.error is not None:
            raise self.error
        ids = [e.event_id for events in groups.values() for e in events]
        fresh = [i for i in ids if i not in self.stored]
        self.stored.update(ids)
        return len(fresh), len(ids) - len(fresh)


class FakeDeadLetters:
    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list[DeadLetter] = []
        self.error = error

    def send(self, letters: Sequence[DeadLetter]) -> None:
        if self.error is not None:
            raise self.error
        self.sent.extend(letters)


def consumer(store: FakeStore | None = None, dlq: FakeDeadLetters | None = None) -> AuditAppendConsumer:
    return AuditAppendConsumer(store=store or FakeStore(), dead_letters=dlq or FakeDeadLetters())


def test_valid_events_are_appended_per_org_in_message_order_in_one_call() -> None:
    # Given a batch interleaving two organisations
    bodies = [body(ORG_A, 0), body(ORG_B, 1), body(ORG_A, 2), body(ORG_B, 3)]
    records = [record(b, group=json.loads(b)["org_id"]) for b in bodies]
    store = FakeStore()
    # When processed
    result = consumer(store).process({"Records": records})
    # Then one store call holds each org's events in message order
    assert result == {"batchItemFailures": []}
    assert len(store.calls) == 1
    (groups,) = store.calls
    assert list(groups) == [ORG_A, ORG_B]
    assert [str(e.event_id) for e in groups[ORG_A]] == [json.loads(bodies[i])["event_id"] for i in (0, 2)]
    assert [str(e.event_id) for e in groups[ORG_B]] == [json.loads(bodies[i])["event_id"] for i in (1, 3)]


@pytest.mark.parametrize(
    ("rec", "reason"),
    [
        (record("not json {"), Reason.NOT_JSON),
        (record(body(details={"password": "hunter2"})), Reason.INVALID_EVENT),
        (record(body(extra_field=1)), Reason.INVALID_EVENT),
        (record(body(ORG_A), group=str(ORG_B)), Reason.GROUP_MISMATCH),
        (record(body(ORG_A), group=None), Reason.NO_GROUP),
    ],
    ids=["not-json", "forbidden-detail", "unknown-field", "group-mismatch", "no-group"],
)
def test_malformed_records_are_dead_lettered_with_reason(rec: dict[str, Any], reason: str) -> None:
    # Given a malformed record next to a valid one
    good = record(body(ORG_A, 5))
    store, dlq = FakeStore(), FakeDeadLetters()
    # When processed
    result = consumer(store, dlq).process({"Records": [rec, good]})
    # Then it is dead-lettered with its reason and original body, and counts as handled
    assert result == {"batchItemFailures": []}
    assert dlq.sent == [
        DeadLetter(rec["messageId"], rec["attributes"].get("MessageGroupId", "no-group"), rec["body"], reason)
    ]
    # and the valid one is appended
    assert [len(events) for events in store.calls[0].values()] == [1]


def test_the_reason_never_echoes_the_body() -> None:
    parsed = parse_record(record(body(details={"password": "hunter2"})))
    assert isinstance(parsed, DeadLetter)
    assert "hunter2" not in parsed.reason and "password" not in parsed.reason


@pytest.mark.parametrize(
    "error",
    [DataAccessError("database operation failed (08006)"), None],
    ids=["database-down", "dead-letter-queue-down"],
)
def test_a_transient_failure_reports_every_record_failed(error: Exception | None) -> None:
    # Given a batch with a malformed and two valid records, and the database or the DLQ down
    records = [record("nope"), record(body(ORG_A, 1)), record(body(ORG_A, 2))]
    store = FakeStore(error)
    dlq = FakeDeadLetters(
        None if error else AuditUnavailableError("the audit dead-letter queue is unavailable")
    )
    # When processed
    result = consumer(store, dlq).process({"Records": records})
    # Then every record is reported failed, so SQS redelivers the whole batch
    assert result == {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}
    if error is None:  # the DLQ failed first: nothing was appended
        assert store.calls == []


def test_a_redelivered_batch_counts_duplicates() -> None:
    records = [record(body(ORG_A, 1)), record(body(ORG_A, 2))]
    c = consumer()
    first = c.handle(records)
    second = c.handle(records)
    assert (first.appended, first.duplicates) == (2, 0)
    assert (second.appended, second.duplicates) == (0, 2)


def test_an_empty_batch_touches_nothing() -> None:
    store, dlq = FakeStore(), FakeDeadLetters()
    assert consumer(store, dlq).process({"Records": []}) == {"batchItemFailures": []}
    assert store.calls == [] and dlq.sent == []


def test_a_batch_of_only_malformed_records_does_not_open_a_transaction() -> None:
    store, dlq = FakeStore(), FakeDeadLetters()
    consumer(store, dlq).process({"Records": [record("x"), record("y")]})
    assert store.calls == [] and len(dlq.sent) == 2


def test_metrics_count_appended_duplicates_and_dead_letters(monkeypatch: pytest.MonkeyPatch) -> None:
    from compliance import observability

    seen: dict[str, float] = {}
    monkeypatch.setattr(
        observability.metrics, "add_metric", lambda name, unit, value: seen.__setitem__(name, value)
    )
    c = consumer()
    good = record(body(ORG_A, 1))
    c.process({"Records": [good, record("bad")]})
    assert seen == {"AuditEventsAppended": 1, "AuditDuplicatesSkipped": 0, "AuditEventsDeadLettered": 1}
    c.process({"Records": [good]})
    assert seen["AuditDuplicatesSkipped"] == 1
