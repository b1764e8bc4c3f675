"""Speed-ups for moto's SQS backend, which runs in this process (same results, less work).

moto 5.2's SQS is quadratic with a backlog: every received message recomputes all queue attributes
(counting every message, twice per message through a datetime-based clock) just to read the
retention period, and every sent message does the same to read ContentBasedDeduplication. With a
few thousand messages queued that is ~10 messages/s. The patches below keep the semantics:

- the retention check reads the queue's retention period directly;
- message visibility/delay checks use ``time.time()`` (what moto's ``unix_time_millis`` computes,
  through naive datetimes) and the per-queue counts read the clock once per pass.

More make FIFO queues behave as in AWS when several pollers receive at once:

- receives on one queue are serialised (the long-poll wait happens outside the lock): moto reads the
  in-flight message groups at the start of a receive, so two concurrent receives could both hand out
  messages of the same group, which SQS never does;
- FIFO messages get increasing ``SequenceNumber``s (moto draws random ones; SQS's grow within a group);
- messages of a group whose visibility timeout passed are released together before a receive (moto
  released them one at a time and handed the first one out after its group-mates);
- deleting a message holds the lock sending one takes (moto could lose a message sent meanwhile).

Applied once per process, when the runtime's moto server starts.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from moto.sqs.models import Message, Queue, SQSBackend

_applied = False
_lock = threading.Lock()


def _now_ms() -> float:
    return time.time() * 1000.0


def _visible(self: Message) -> bool:
    return _now_ms() > self.visible_at


def _delayed(self: Message) -> bool:
    return _now_ms() < self.delayed_until


def _messages(self: Queue) -> list[Message]:
    now = _now_ms()
    return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]


def _approximate_number_of_messages(self: Queue) -> int:
    now = _now_ms()
    return sum(1 for m in self._messages if now > m.visible_at and not now < m.delayed_until)


def _approximate_number_of_messages_not_visible(self: Queue) -> int:
    now = _now_ms()
    return sum(1 for m in self._messages if not now > m.visible_at)


def _approximate_number_of_messages_delayed(self: Queue) -> int:
    now = _now_ms()
    return sum(1 for m in self._messages if now < m.delayed_until)


def _retention_ok(self: SQSBackend, queue_name: str, message: Message) -> bool:
    queue = self.get_queue(queue_name)
    retention_period = int(queue.message_retention_period)  # type: ignore[attr-defined]
    sent_timestamp: Any = message.sent_timestamp
    return bool(retention_period + sent_timestamp / 1000 > time.time())


_FIFO_RETRY_S = 0.05
_receive_locks: dict[int, threading.Lock] = {}
_receive_locks_guard = threading.Lock()
# Starts from the clock so numbers also grow across restarts of the runtime (20 digits, as in SQS).
_sequence = itertools.count(time.time_ns())
_sequence_lock = threading.Lock()


def _queue_lock(queue: Queue) -> threading.Lock:
    with _receive_locks_guard:
        return _receive_locks.setdefault(id(queue), threading.Lock())


def _serialised_receive(original: Callable[..., list[Message]]) -> Callable[..., list[Message]]:
    def receive_message(
        self: SQSBackend,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Message]:
        queue = self.get_queue(queue_name)
        lock = _queue_lock(queue)
        deadline = time.time() + (wait_seconds_timeout or 0)
        while True:
            with lock:
                if queue.fifo_queue:
                    _release_timed_out(queue)
                result = original(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            remaining = deadline - time.time()
            if result or remaining <= 0:
                return result
            if queue.fifo_queue:
                # Visible messages may all belong to groups in flight: moto's wait returns at once
                # while any message is visible, and this loop would spin (holding the GIL the whole
                # runtime shares) until the group is released.
                time.sleep(min(_FIFO_RETRY_S, remaining))
            else:
                queue.wait_for_messages(min(1, remaining))  # type: ignore[arg-type]

    return receive_message


def _release_timed_out(queue: Queue) -> None:
    """Forget, all at once, the in-flight state of messages whose visibility timeout passed.

    moto releases them one by one while it walks the queue, and skips a message whose group still
    has an in-flight message further on: when several messages of a group time out together, the
    first of them was handed out after the later ones, reordering the group.
    """
    for message in [m for m in queue.pending_messages if m.visible]:
        queue.pending_messages.discard(message)


def _locked_delete(original: Callable[[Queue, str], None]) -> Callable[[Queue, str], None]:
    def delete_message(self: Queue, receipt_handle: str) -> None:
        # moto rebuilds the message list without the lock add_message appends under: a message sent
        # meanwhile was lost.
        with self._messages_lock:
            original(self, receipt_handle)

    return delete_message


def _increasing_sequence(original: Callable[[Queue, Message], None]) -> Callable[[Queue, Message], None]:
    def add_message(self: Queue, message: Message) -> None:
        # Numbered before the message becomes visible to a receive.
        if self.fifo_queue and message.sequence_number is not None:
            with _sequence_lock:
                message.sequence_number = f"{next(_sequence):020d}"
        original(self, message)

    return add_message


def apply() -> None:
    global _applied
    with _lock:
        if _applied:
            return
        SQSBackend.receive_message = _serialised_receive(SQSBackend.receive_message)  # type: ignore[method-assign]
        Queue.add_message = _increasing_sequence(Queue.add_message)  # type: ignore[method-assign,assignment]
        Queue.delete_message = _locked_delete(Queue.delete_message)  # type: ignore[method-assign,assignment]
        Message.visible = property(_visible)  # type: ignore[method-assign,assignment]
        Message.delayed = property(_delayed)  # type: ignore[method-assign,assignment]
        Queue.messages = property(_messages)  # type: ignore[method-assign,assignment]
        Queue.approximate_number_of_messages = property(_approximate_number_of_messages)  # type: ignore[method-assign,assignment]
        Queue.approximate_number_of_messages_not_visible = property(  # type: ignore[method-assign,assignment]
            _approximate_number_of_messages_not_visible
        )
        Queue.approximate_number_of_messages_delayed = property(  # type: ignore[method-assign,assignment]
            _approximate_number_of_messages_delayed
        )
        SQSBackend.is_message_valid_based_on_retention_period = _retention_ok  # type: ignore[method-assign]
        _applied = True
