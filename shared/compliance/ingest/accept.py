"""The API side of ingest: queue a validated batch (no database: keeps the ingest function lean)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from compliance.aws.queues import MessageSender
from compliance.ingest.messages import pack_messages
from compliance.models.usage import IngestAccepted, UsageBatchIn
from compliance.observability import logger, metrics


def accept_batch(
    batch: UsageBatchIn, *, org_id: UUID, sender: MessageSender, received_at: datetime, batch_id: UUID
) -> IngestAccepted:
    """Queue a validated batch. Nothing is stored here: the processor writes each record exactly once."""
    messages = pack_messages(org_id, batch_id, received_at, batch.records)
    sender.send(messages)
    metrics.add_metric(name="UsageRecordsAccepted", unit="Count", value=len(batch.records))
    logger.info(
        "usage batch queued",
        extra={"batch_id": str(batch_id), "records": len(batch.records), "messages": len(messages)},
    )
    return IngestAccepted(
        batch_id=batch_id, accepted=len(batch.records), request_ids=[r.request_id for r in batch.records]
    )
