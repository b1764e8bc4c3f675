"""The ingest processor: exactly once per record, partial batch failures for poison messages."""

from __future__ import annotations

import json
from typing import Any

from compliance.db.usage import count_usage_records


def stored(migrated_db: Any, org: str) -> int:
    with migrated_db.app.tenant(org) as conn:
        return count_usage_records(conn)


def test_a_message_is_stored_once_even_when_redelivered(
    processor: Any, migrated_db: Any, org: str, event: Any, lambda_context: Any
) -> None:
    # Given a queued message of two records
    sqs_event = event("ingest/sqs-usage-batch.json")
    # When it is processed, then delivered again
    first = processor.handler(sqs_event, lambda_context)
    second = processor.handler(sqs_event, lambda_context)
    # Then both deliveries succeed and the records exist once
    assert first == {"batchItemFailures": []} and second == {"batchItemFailures": []}
    assert stored(migrated_db, org) == 2


def test_the_same_records_in_another_message_are_not_duplicated(
    processor: Any, migrated_db: Any, org: str, event: Any, lambda_context: Any
) -> None:
    sqs_event = event("ingest/sqs-usage-batch.json")
    processor.handler(sqs_event, lambda_context)
    # Given the platform retried its HTTP call: same records, new message id
    sqs_event["Records"][0]["messageId"] = "another-message-id"
    assert processor.handler(sqs_event, lambda_context) == {"batchItemFailures": []}
    assert stored(migrated_db, org) == 2


def test_a_poison_message_fails_alone(
    processor: Any, migrated_db: Any, org: str, event: Any, lambda_context: Any
) -> None:
    # Given a batch with one malformed message and one valid one
    sqs_event = event("ingest/sqs-poison-and-valid.json")
    poison_id = sqs_event["Records"][0]["messageId"]
    # When processed
    result = processor.handler(sqs_event, lambda_context)
    # Then only the poison message is reported failed (SQS retries it, then dead-letters it)
    assert result == {"batchItemFailures": [{"itemIdentifier": poison_id}]}
    assert stored(migrated_db, org) == 1


def test_a_message_for_an_unknown_org_fails_without_writing(
    processor: Any, migrated_db: Any, org: str, event: Any, lambda_context: Any
) -> None:
    sqs_event = event("ingest/sqs-usage-batch.json")
    body = json.loads(sqs_event["Records"][0]["body"])
    body["org_id"] = "00000000-0000-4000-8000-00000000dead"
    sqs_event["Records"][0]["body"] = json.dumps(body)
    result = processor.handler(sqs_event, lambda_context)
    assert result["batchItemFailures"] == [{"itemIdentifier": sqs_event["Records"][0]["messageId"]}]
    assert stored(migrated_db, org) == 0
