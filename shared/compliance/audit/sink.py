"""Where producers hand audit events: the one interface every action uses to record itself.

In AWS the sink is the audit FIFO queue (:mod:`compliance.audit.sqs_sink`); tests and
benchmarks use :class:`MemoryAuditSink`. A sink either takes every event it is given or
raises :class:`~compliance.errors.AuditUnavailableError`: the caller then refuses the action
(fail closed), so an action never happens unrecorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from compliance.audit.events import AuditEventIn
from compliance.errors import AuditUnavailableError


class AuditSink(Protocol):
    def publish(self, events: Sequence[AuditEventIn]) -> None:
        """Take every event (in order, per organisation) or raise AuditUnavailableError."""
        ...


class MemoryAuditSink:
    """Keeps published events in a list; ``fail=True`` makes it refuse like an unreachable queue."""

    def __init__(self, *, fail: bool = False) -> None:
        self.events: list[AuditEventIn] = []
        self.fail = fail

    def publish(self, events: Sequence[AuditEventIn]) -> None:
        if self.fail:
            raise AuditUnavailableError("the audit trail is unavailable")
        self.events.extend(events)
