"""The audit FIFO consumer: a batch of queued events appended in one transaction, or not at all.

For each SQS batch:

1. Every record is parsed. A malformed one (body not JSON, not a valid ``AuditEventIn``, or
   its message group is not the event's ``org_id``) can never succeed: it goes to the
   dead-letter queue with a short ``reason`` and its ``source_message_id``, then counts as
   handled. Nothing of its content is logged or echoed.
2. The valid events are appended in ONE database transaction: per organisation, in message
   order (SQS delivers each group in order), ``append_events`` under that organisation's
   row-level-security scope.
3. Any transient failure (database down, dead-letter queue unreachable) reports *every*
   record of the batch failed, so SQS redelivers them all and, after the queue's
   ``maxReceiveCount``, redrives them to the dead-letter queue: a batch is never half
   appended, and a later batch of the same group is not appended before it (a FIFO group
   stays blocked while its messages are in flight).

Idempotency is the database's, not Powertools': ``append_events`` drops ``event_id`` values
already stored, under the organisation's head lock and in the same transaction as the append,
so a redelivered batch appends nothing twice without a second store (DynamoDB) to keep
consistent with PostgreSQL. Dead letters are deduplicated by SQS on the record's
``messageId`` within five minutes.

Powertools' ``SqsFifoPartialProcessor`` handles records one at a time (and stops at the first
failure); here the unit is the batch, so the response is built directly in Lambda's
``{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}`` shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from pydantic import ValidationError

from compliance.audit.events import AuditEventIn
from compliance.audit.sqs_sink import FifoBatchSender, FifoMessage
from compliance.errors import AuditUnavailableError, DataAccessError, QueueError
from compliance.observability import logger, metrics

__all__ = [
    "AppendCounts",
    "AuditAppendConsumer",
    "AuditAppendStore",
    "DatabaseAppendStore",
    "DeadLetter",
    "DeadLetterSender",
    "SqsDeadLetterSender",
    "parse_record",
]


class Reason:
    """Why a record was dead-lettered (the ``reason`` attribute): short, never a value."""

    NOT_JSON = "body is not JSON"
    INVALID_EVENT = "body is not a valid audit event"
    GROUP_MISMATCH = "message group differs from the event's org_id"
    NO_GROUP = "record has no message group"


@dataclass(frozen=True)
class DeadLetter:
    """A record that can never be appended, with why."""

    message_id: str
    group_id: str
    body: str
    reason: str


@dataclass(frozen=True)
class AppendCounts:
    """What one batch did."""

    appended: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    failed: list[str] = field(default_factory=list)  # message ids reported failed


class AuditAppendStore(Protocol):
    def append_by_org(self, groups: Mapping[UUID, Sequence[AuditEventIn]]) -> tuple[int, int]:
        """Append each organisation's events in order, all in one transaction.

        Returns ``(appended, duplicates skipped)``. Raises ``DataAccessError``; then nothing
        was appended.
        """
        ...


class DeadLetterSender(Protocol):
    def send(self, letters: Sequence[DeadLetter]) -> None:
        """Take every letter or raise (``AuditUnavailableError``/``QueueError``)."""
        ...


class _TransactionalDatabase(Protocol):
    def transaction(self) -> AbstractContextManager[Any]: ...


class DatabaseAppendStore:
    """:class:`AuditAppendStore` on PostgreSQL (``Database.transaction`` + ``scope``)."""

    def __init__(self, db: _TransactionalDatabase) -> None:
        self._db = db

    def append_by_org(self, groups: Mapping[UUID, Sequence[AuditEventIn]]) -> tuple[int, int]:
        # Imported on first use: the driver is not needed to parse a batch.
        from compliance.db.audit import append_events
        from compliance.db.connection import scope

        appended = duplicates = 0
        # Driver errors inside leave the transaction as DataAccessError, rolled back.
        with self._db.transaction() as conn:
            for org_id, events in groups.items():
                scope(conn, org_id)
                result = append_events(conn, org_id, events)
                appended += len(result.appended)
                duplicates += len(result.duplicates)
        return appended, duplicates


class SqsDeadLetterSender:
    """Dead letters to the FIFO dead-letter queue: same group, deduplicated on ``messageId``,
    the original body, and ``reason`` and ``source_message_id`` as message attributes."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._sender = FifoBatchSender(client, queue_url, what="audit dead-letter queue")

    def send(self, letters: Sequence[DeadLetter]) -> None:
        self._sender.send(
            [
                FifoMessage(
                    body=letter.body,
                    group_id=letter.group_id,
                    dedup_id=letter.message_id,
                    attributes={"reason": letter.reason, "source_message_id": letter.message_id},
                )
                for letter in letters
            ]
        )


def parse_record(record: Mapping[str, Any]) -> AuditEventIn | DeadLetter:
    """The event a FIFO SQS record carries, or the dead letter it is."""
    message_id = str(record["messageId"])
    body = str(record.get("body", ""))
    group_id = (record.get("attributes") or {}).get("MessageGroupId")

    def dead(reason: str) -> DeadLetter:
        # A record without a group cannot come from a FIFO queue; its letter still needs one.
        return DeadLetter(message_id, str(group_id or "no-group"), body, reason)

    if not group_id:
        return dead(Reason.NO_GROUP)
    try:
        json.loads(body)
    except ValueError:
        return dead(Reason.NOT_JSON)
    try:
        event = AuditEventIn.model_validate_json(body)
    except ValidationError:
        return dead(Reason.INVALID_EVENT)
    if str(event.org_id) != group_id:
        return dead(Reason.GROUP_MISMATCH)
    return event


class AuditAppendConsumer:
    """Processes one SQS FIFO event of audit events (see the module doc)."""

    def __init__(self, *, store: AuditAppendStore, dead_letters: DeadLetterSender) -> None:
        self._store = store
        self._dead_letters = dead_letters

    def process(self, event: Mapping[str, Any]) -> dict[str, list[dict[str, str]]]:
        counts = self.handle(event.get("Records") or [])
        metrics.add_metric(name="AuditEventsAppended", unit="Count", value=counts.appended)
        metrics.add_metric(name="AuditDuplicatesSkipped", unit="Count", value=counts.duplicates)
        metrics.add_metric(name="AuditEventsDeadLettered", unit="Count", value=counts.dead_lettered)
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in counts.failed]}

    def handle(self, records: Sequence[Mapping[str, Any]]) -> AppendCounts:
        groups: dict[UUID, list[AuditEventIn]] = {}
        letters: list[DeadLetter] = []
        for record in records:
            parsed = parse_record(record)
            if isinstance(parsed, DeadLetter):
                letters.append(parsed)
                # Which message and why, never its content.
                logger.warning(
                    "audit record dead-lettered",
                    extra={"message_id": parsed.message_id, "reason": parsed.reason},
                )
            else:
                groups.setdefault(parsed.org_id, []).append(parsed)
        try:
            # Dead letters first: a record is in the dead-letter queue before SQS deletes it.
            if letters:
                self._dead_letters.send(letters)
            appended, duplicates = self._store.append_by_org(groups) if groups else (0, 0)
        except (DataAccessError, AuditUnavailableError, QueueError) as exc:
            # Transient: every record goes back to the queue, none is half appended.
            logger.warning(
                "audit batch failed, every record will be retried",
                extra={"records": len(records), "error": type(exc).__name__},
            )
            return AppendCounts(failed=[str(record["messageId"]) for record in records])
        logger.info(
            "audit batch appended",
            extra={
                "records": len(records),
                "appended": appended,
                "duplicates": duplicates,
                "dead_lettered": len(letters),
                "orgs": len(groups),
            },
        )
        return AppendCounts(appended, duplicates, len(letters))
