"""The audit FIFO queue as an :class:`~compliance.audit.sink.AuditSink`, and its batch sender.

Each event is one message: ``MessageGroupId`` = its organisation (SQS keeps each group in
order and the consumer appends it in that order), ``MessageDeduplicationId`` = its
``event_id`` (a producer's retry within SQS's five-minute window is dropped by SQS; later
ones by the database, which skips stored ``event_id`` values).

Order within a group across a partial failure
---------------------------------------------
``SendMessageBatch`` reports each entry separately, and SQS does not document that a refused
entry also stops later entries of the same group in that call. If two entries of one group
shared a call and the first were refused, the second would be queued first and the retry
would land behind it. So a call carries at most one entry per group: the oldest unsent one.
An entry goes out only after every earlier entry of its group was accepted, and a group
whose entry cannot be sent stops there (the publish fails, nothing later of that group is
sent). Calls still carry up to 10 groups at once; a single organisation's events (one or two
per action) cost one call each.

Any failure raises :class:`~compliance.errors.AuditUnavailableError` without echoing values:
the caller refuses the action it was recording (fail closed).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from compliance.audit.events import AuditEventIn
from compliance.errors import AuditUnavailableError

SQS_MAX_BATCH_ENTRIES = 10
SQS_MAX_BATCH_BYTES = 262_144
DEFAULT_ATTEMPTS = 3

__all__ = [
    "FifoBatchSender",
    "FifoMessage",
    "SqsAuditSink",
    "audit_sink",
    "audit_sink_from_settings",
]


@dataclass(frozen=True)
class FifoMessage:
    """One message for a FIFO queue. ``attributes`` are String message attributes."""

    body: str
    group_id: str
    dedup_id: str
    attributes: dict[str, str] = field(default_factory=dict)

    def size(self) -> int:
        # What SQS counts against the 256 KiB batch limit: body plus attribute names, types, values.
        extra = sum(len(k.encode()) + len(v.encode()) + len("String") for k, v in self.attributes.items())
        return len(self.body.encode()) + extra

    def entry(self, entry_id: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "Id": entry_id,
            "MessageBody": self.body,
            "MessageGroupId": self.group_id,
            "MessageDeduplicationId": self.dedup_id,
        }
        if self.attributes:
            entry["MessageAttributes"] = {
                name: {"DataType": "String", "StringValue": value} for name, value in self.attributes.items()
            }
        return entry


class FifoBatchSender:
    """Sends FIFO messages with ``send_message_batch``, keeping each group's order (see module doc).

    Entries refused for a reason other than a sender fault (throttling, internal errors) are
    retried up to ``attempts`` times in all, after a short growing pause; a sender fault, a
    client error or a message over 256 KiB fails at once. ``what`` names the queue in errors.
    """

    def __init__(
        self,
        client: Any,
        queue_url: str,
        *,
        what: str,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff_s: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._what = what
        self._attempts = max(attempts, 1)
        self._backoff_s = backoff_s
        self._sleep = sleep

    def send(self, messages: Sequence[FifoMessage]) -> None:
        if any(message.size() > SQS_MAX_BATCH_BYTES for message in messages):
            raise AuditUnavailableError(f"a message is larger than the {self._what} accepts")
        lanes: dict[str, deque[int]] = {}  # group -> indexes of its unsent messages, in order
        for index, message in enumerate(messages):
            lanes.setdefault(message.group_id, deque()).append(index)
        failures: dict[int, int] = {}  # index -> refusals so far
        while lanes:
            batch = self._next_batch(messages, lanes)
            refused = self._send_batch(messages, batch)
            for index in batch:
                if index in refused:
                    failures[index] = failures.get(index, 0) + 1
                    if failures[index] >= self._attempts:
                        raise AuditUnavailableError(
                            f"the {self._what} refused a message {self._attempts} times"
                        )
                    continue
                lane = lanes[messages[index].group_id]
                lane.popleft()
                if not lane:
                    del lanes[messages[index].group_id]
            if refused:
                self._sleep(self._backoff_s * max(failures[i] for i in refused))

    @staticmethod
    def _next_batch(messages: Sequence[FifoMessage], lanes: dict[str, deque[int]]) -> list[int]:
        """The oldest unsent message of each group, up to 10 entries and 256 KiB."""
        batch: list[int] = []
        size = 0
        for lane in lanes.values():
            index = lane[0]
            length = messages[index].size()
            if batch and (len(batch) == SQS_MAX_BATCH_ENTRIES or size + length > SQS_MAX_BATCH_BYTES):
                break
            batch.append(index)
            size += length
        return batch

    def _send_batch(self, messages: Sequence[FifoMessage], batch: list[int]) -> set[int]:
        """Send one call; return the indexes refused for a retryable reason."""
        try:
            response = self._client.send_message_batch(
                QueueUrl=self._queue_url, Entries=[messages[i].entry(str(i)) for i in batch]
            )
        except Exception as exc:  # botocore raises many types; all mean "not sent"
            raise AuditUnavailableError(f"the {self._what} is unavailable") from exc
        accepted = {str(ok["Id"]) for ok in response.get("Successful", [])}
        refused: set[int] = set()
        for failed in response.get("Failed", []):
            if failed.get("SenderFault"):  # a malformed entry will not succeed on retry
                raise AuditUnavailableError(f"the {self._what} refused a message as malformed")
            refused.add(int(failed["Id"]))
        missing = {i for i in batch if str(i) not in accepted} - refused
        return refused | missing  # neither accepted nor refused: treat as refused, retry


class SqsAuditSink:
    """:class:`~compliance.audit.sink.AuditSink` on the audit FIFO queue."""

    def __init__(self, client: Any, queue_url: str, *, attempts: int = DEFAULT_ATTEMPTS) -> None:
        self._sender = FifoBatchSender(client, queue_url, what="audit queue", attempts=attempts)

    def publish(self, events: Sequence[AuditEventIn]) -> None:
        self._sender.send(
            [
                FifoMessage(
                    body=event.model_dump_json(), group_id=str(event.org_id), dedup_id=str(event.event_id)
                )
                for event in events
            ]
        )


def audit_sink(queue_url: str) -> SqsAuditSink:
    """The sink on ``queue_url`` with the process's shared SQS client (created on first use)."""
    from compliance.aws.clients import client

    return SqsAuditSink(client("sqs"), queue_url)


audit_sink_from_settings = audit_sink
"""The contract's name for :func:`audit_sink`: pass the settings' ``audit_queue_url``."""
