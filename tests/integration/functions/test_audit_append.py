"""The audit-append function and its consumer against a migrated PostgreSQL and moto FIFO queues."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

import boto3
import pytest

from compliance.audit.append_consumer import AuditAppendConsumer, DatabaseAppendStore, SqsDeadLetterSender
from compliance.audit.chain import verify_chain
from compliance.db import audit
from compliance.db.connection import Database

DLQ_NAME = "audit-events-dlq.fifo"


@pytest.fixture
def dlq_url(aws: None) -> str:
    sqs = boto3.client("sqs")
    return str(
        sqs.create_queue(
            QueueName=DLQ_NAME, Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"}
        )["QueueUrl"]
    )


def dead_letters(url: str) -> list[dict[str, Any]]:
    response = boto3.client("sqs").receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
    )
    messages: list[dict[str, Any]] = [dict(m) for m in response.get("Messages", [])]
    return messages


def make_consumer(db: Database, url: str) -> AuditAppendConsumer:
    return AuditAppendConsumer(
        store=DatabaseAppendStore(db), dead_letters=SqsDeadLetterSender(boto3.client("sqs"), url)
    )


def body(org: UUID, n: int) -> str:
    return json.dumps(
        {
            "event_id": str(uuid4()),
            "occurred_at": f"2026-11-23T12:00:{n:02d}Z",
            "event_type": "api.request",
            "actor": "api_key:abc",
            "org_id": str(org),
            "resource": f"route:GET:/v1/{n}",
            "action": "read",
            "result": "success",
            "details": {"n": n},
        }
    )


def record(text: str, group: UUID | str) -> dict[str, Any]:
    return {"messageId": str(uuid4()), "body": text, "attributes": {"MessageGroupId": str(group)}}


def stored(db: Any, org: UUID | str) -> list[Any]:
    with db.app.tenant(UUID(str(org))) as conn:
        return audit.read_events(conn, limit=1000)


def test_a_batch_over_two_orgs_is_appended_in_order_and_redelivery_appends_nothing_twice(
    migrated_db: Any, dlq_url: str
) -> None:
    # Given two organisations and a batch interleaving their events
    a, b = migrated_db.create_org("A"), migrated_db.create_org("B")
    records = [record(body(org, n), org) for n, org in enumerate([a, b, a, a, b])]
    consumer = make_consumer(migrated_db.app, dlq_url)
    # When processed, then delivered again
    assert consumer.process({"Records": records}) == {"batchItemFailures": []}
    again = consumer.handle(records)
    # Then each org's chain holds its events once, in message order, and verifies
    for org, indexes in ((a, [0, 2, 3]), (b, [1, 4])):
        events = stored(migrated_db, org)
        assert [str(e.event_id) for e in events] == [
            json.loads(records[i]["body"])["event_id"] for i in indexes
        ]
        assert verify_chain(events, org_id=org).valid
    assert (again.appended, again.duplicates) == (0, 5)


def test_a_malformed_record_is_dead_lettered_and_the_others_appended(migrated_db: Any, dlq_url: str) -> None:
    org = migrated_db.create_org()
    bad = record('{"event_id": "x", "password": "hunter2"}', org)
    good = record(body(org, 1), org)
    result = make_consumer(migrated_db.app, dlq_url).process({"Records": [bad, good]})
    assert result == {"batchItemFailures": []}
    # Then the dead letter carries its reason and source id, in the same group
    (letter,) = dead_letters(dlq_url)
    assert letter["Body"] == bad["body"]
    assert letter["MessageAttributes"]["reason"]["StringValue"] == "body is not a valid audit event"
    assert letter["MessageAttributes"]["source_message_id"]["StringValue"] == bad["messageId"]
    assert letter["Attributes"]["MessageGroupId"] == str(org)
    assert len(stored(migrated_db, org)) == 1


def test_a_database_failure_reports_every_record_and_appends_nothing(migrated_db: Any, dlq_url: str) -> None:
    # Given a batch whose second org does not exist: its head row violates the foreign key
    # after the first org's events were already appended in the same transaction
    org = migrated_db.create_org()
    unknown = uuid4()
    records = [record(body(org, 1), org), record(body(unknown, 2), unknown)]
    result = make_consumer(migrated_db.app, dlq_url).process({"Records": records})
    # Then every record is reported failed and the first org's events were rolled back
    assert result == {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}
    assert stored(migrated_db, org) == []


def test_the_function_handles_the_sample_events(
    aws: None,
    org: str,
    db_env: dict[str, str],
    dlq_url: str,
    fresh_import: Any,
    event: Any,
    lambda_context: Any,
    migrated_db: Any,
) -> None:
    # Given the function configured as the stack configures it
    handler = fresh_import("functions.audit.append", {**db_env, "AUDIT_DEAD_LETTER_QUEUE_URL": dlq_url})
    # When it receives the sample batch and the malformed sample
    assert handler.handler(event("audit/append-batch.json"), lambda_context) == {"batchItemFailures": []}
    assert handler.handler(event("audit/append-malformed.json"), lambda_context) == {"batchItemFailures": []}
    # Then the four valid events are chained in order and the three malformed ones dead-lettered
    events = stored(migrated_db, org)
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert verify_chain(events).valid
    reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in dead_letters(dlq_url))
    assert reasons == [
        "body is not JSON",
        "body is not a valid audit event",
        "message group differs from the event's org_id",
    ]


def test_events_published_by_the_sink_are_appended_by_the_consumer(migrated_db: Any, dlq_url: str) -> None:
    from compliance.audit.events import AuditEventIn
    from compliance.audit.sqs_sink import SqsAuditSink

    # Given events of two organisations published through the sink to a FIFO queue
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="audit-events.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    a, b = migrated_db.create_org("A"), migrated_db.create_org("B")
    events = [AuditEventIn.model_validate_json(body(org, n)) for n, org in enumerate([a, b, a])]
    SqsAuditSink(sqs, queue).publish(events)
    # When the queued messages reach the consumer as Lambda delivers them
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    records: list[dict[str, Any]] = [
        {"messageId": m["MessageId"], "body": m["Body"], "attributes": {**m["Attributes"]}} for m in received
    ]
    result = make_consumer(migrated_db.app, dlq_url).process({"Records": records})
    # Then both chains hold their events in publish order
    assert result == {"batchItemFailures": []}
    assert [e.event_id for e in stored(migrated_db, a)] == [events[0].event_id, events[2].event_id]
    assert [e.event_id for e in stored(migrated_db, b)] == [events[1].event_id]
