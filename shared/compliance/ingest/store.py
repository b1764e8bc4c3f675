"""The processor side of ingest: write one queued slice exactly once."""

from __future__ import annotations

from compliance.db import usage as usage_repo
from compliance.db.connection import Database
from compliance.models.usage import UsageMessage
from compliance.observability import metrics


def store_usage_message(message: UsageMessage, *, db: Database) -> int:
    """Write one queued slice in one transaction; a record already stored is skipped, never duplicated."""
    with db.tenant(message.org_id) as conn:
        inserted = usage_repo.insert_usage_records(
            conn,
            org_id=message.org_id,
            batch_id=message.batch_id,
            received_at=message.received_at,
            records=message.records,
        )
    metrics.add_metric(name="UsageRecordsStored", unit="Count", value=inserted)
    duplicates = len(message.records) - inserted
    if duplicates:
        metrics.add_metric(name="UsageRecordsDuplicate", unit="Count", value=duplicates)
    return inserted
