"""Packing accepted batches into queue messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from compliance.errors import PayloadTooLargeError
from compliance.ingest.messages import MAX_MESSAGE_BYTES, MAX_RECORDS_PER_MESSAGE, pack_messages
from compliance.models.usage import UsageMessage, UsageRecordIn

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def record(i: int, text: str | None = None) -> UsageRecordIn:
    return UsageRecordIn(
        request_id=f"req-{i}",
        subject_id="user-1",
        provider="openai",
        model="gpt-4o",
        prompt_tokens=10,
        completion_tokens=20,
        cost=Decimal("0.0012"),
        occurred_at=NOW,
        prompt_text=text,
    )


def test_small_batch_fits_one_message_and_round_trips() -> None:
    # Given three small records
    records = [record(i) for i in range(3)]
    org, batch = uuid4(), uuid4()
    # When they are packed
    messages = pack_messages(org, batch, NOW, records)
    # Then one message carries them all, and it parses back to the same records
    assert len(messages) == 1
    parsed = UsageMessage.model_validate_json(messages[0])
    assert parsed.org_id == org and parsed.batch_id == batch and list(parsed.records) == records


def test_count_limit_splits_messages_in_order() -> None:
    records = [record(i) for i in range(MAX_RECORDS_PER_MESSAGE * 2 + 1)]
    messages = pack_messages(uuid4(), uuid4(), NOW, records)
    assert [len(json.loads(m)["records"]) for m in messages] == [
        MAX_RECORDS_PER_MESSAGE,
        MAX_RECORDS_PER_MESSAGE,
        1,
    ]
    ids = [r["request_id"] for m in messages for r in json.loads(m)["records"]]
    assert ids == [r.request_id for r in records]


def test_byte_limit_splits_messages_under_the_sqs_limit() -> None:
    # Given records whose text makes a handful of them exceed one message
    records = [record(i, "é" * 30_000) for i in range(20)]
    # When packed
    messages = pack_messages(uuid4(), uuid4(), NOW, records)
    # Then every message stays under the limit and nothing is lost
    assert len(messages) > 1
    assert all(len(m.encode()) <= MAX_MESSAGE_BYTES for m in messages)
    assert sum(len(json.loads(m)["records"]) for m in messages) == 20


def test_a_record_larger_than_a_message_is_refused() -> None:
    huge = record(1, "\U0001f600" * 70_000)
    with pytest.raises(PayloadTooLargeError):
        pack_messages(uuid4(), uuid4(), NOW, [huge])
