"""Sending to SQS: the one interface logic uses to enqueue messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from compliance.errors import QueueError

SQS_MAX_BATCH_ENTRIES = 10
SQS_MAX_BATCH_BYTES = 262_144


class MessageSender(Protocol):
    def send(self, bodies: Sequence[str]) -> list[str]:
        """Send every body; return the message ids in order; raise QueueError if any is refused."""
        ...


class SqsSender:
    """SendMessageBatch in groups that respect SQS's 10-entry and 256 KiB limits; retries refused entries."""

    def __init__(self, client: Any, queue_url: str, *, attempts: int = 3) -> None:
        self._client = client
        self._queue_url = queue_url
        self._attempts = attempts

    def send(self, bodies: Sequence[str]) -> list[str]:
        ids: list[str] = [""] * len(bodies)
        for group in _groups(bodies):
            pending = {str(i): bodies[i] for i in group}
            for _ in range(self._attempts):
                try:
                    response = self._client.send_message_batch(
                        QueueUrl=self._queue_url,
                        Entries=[{"Id": key, "MessageBody": body} for key, body in pending.items()],
                    )
                except Exception as exc:  # botocore raises many types; all mean "not sent"
                    raise QueueError("the ingest queue is unavailable") from exc
                for ok in response.get("Successful", []):
                    ids[int(ok["Id"])] = ok["MessageId"]
                    pending.pop(ok["Id"], None)
                # Sender faults (malformed entry) will not succeed on retry.
                if any(f.get("SenderFault") for f in response.get("Failed", [])) or not pending:
                    break
            if pending:
                raise QueueError(f"{len(pending)} message(s) were refused by the queue")
        return ids


def _groups(bodies: Sequence[str]) -> list[list[int]]:
    groups: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index, body in enumerate(bodies):
        length = len(body.encode())
        if current and (len(current) == SQS_MAX_BATCH_ENTRIES or size + length > SQS_MAX_BATCH_BYTES):
            groups.append(current)
            current, size = [], 0
        current.append(index)
        size += length
    if current:
        groups.append(current)
    return groups
