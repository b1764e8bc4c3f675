"""Packing an accepted batch into ingest-queue messages under SQS's size limit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from compliance.errors import PayloadTooLargeError
from compliance.models.usage import UsageRecordIn

# SQS takes 256 KiB per message; keep headroom for the envelope and attributes.
MAX_MESSAGE_BYTES = 240_000
# The processor writes one transaction per message, whose fixed cost (round trips, statement
# planning, commit) is paid per message: 250 records per message store ~1.5x faster than 100
# (measured, 2 cores), and 500 was no faster. The price: a poison record (or any failure)
# sends up to 250 records back to the queue with it, and they wait for the retry or the
# dead-letter queue; the transaction stays short (~15 ms). The byte limit still applies.
MAX_RECORDS_PER_MESSAGE = 250


def pack_messages(
    org_id: UUID, batch_id: UUID, received_at: datetime, records: Sequence[UsageRecordIn]
) -> list[str]:
    """Serialise each record once and greedily fill messages up to the byte and count limits."""
    head = json.dumps(
        {"org_id": str(org_id), "batch_id": str(batch_id), "received_at": received_at.isoformat()}
    )
    prefix = head[:-1] + ', "records": ['
    room = MAX_MESSAGE_BYTES - len(prefix.encode()) - 2
    messages: list[str] = []
    parts: list[str] = []
    used = 0
    for record in records:
        part = record.model_dump_json(exclude_none=True)
        size = len(part.encode()) + 1
        if size > room:
            raise PayloadTooLargeError(
                f"record {record.request_id!r} is {size} bytes serialised; the limit is {room}",
                request_id=record.request_id,
            )
        if parts and (used + size > room or len(parts) == MAX_RECORDS_PER_MESSAGE):
            messages.append(prefix + ",".join(parts) + "]}")
            parts, used = [], 0
        parts.append(part)
        used += size
    if parts:
        messages.append(prefix + ",".join(parts) + "]}")
    return messages
