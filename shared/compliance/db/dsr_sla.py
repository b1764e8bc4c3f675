"""What the DSR SLA monitor reads besides due requests (compliance.db.dsr_requests): verifications
whose code expired while the execution still waits on the task token."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple
from uuid import UUID

from compliance.db.connection import driver_errors

if TYPE_CHECKING:
    import psycopg

_EXPIRED: Final = """
    SELECT id, task_token FROM dsr_requests
    WHERE org_id = %s AND status = 'awaiting_verification' AND task_token IS NOT NULL
      AND verified_at IS NULL AND code_expires_at <= %s
    ORDER BY code_expires_at, id
"""


class WaitingTask(NamedTuple):
    request_id: UUID
    task_token: str

    def __repr__(self) -> str:  # the token answers the execution: never in a log line
        return f"WaitingTask(request_id={self.request_id!r})"


def expired_verifications(conn: psycopg.Connection[Any], org_id: UUID, now: datetime) -> list[WaitingTask]:
    from psycopg.rows import tuple_row

    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(_EXPIRED, (org_id, now)).fetchall()
    return [WaitingTask(UUID(str(request_id)), str(token)) for request_id, token in rows]
