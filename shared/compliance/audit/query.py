"""Reading the audit trail: filtered, keyset-paginated pages and single events, own organisation only.

The page cursor is opaque to clients: base64url (no padding) of a small JSON object holding the
last ``seq`` of the page and a digest of the filters it was issued for. A cursor that does not
decode, carries an impossible ``seq`` or belongs to other filters is a 400, never a silently
different page. The cursor is not secret and needs no signature: whatever ``seq`` it names, the
query still runs under the caller's row-level security.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from uuid import UUID

from compliance.audit.canonical import format_timestamp
from compliance.audit.checkpoint import SignedCheckpoint
from compliance.audit.events import MAX_SEQ
from compliance.db import audit_checkpoints, audit_query
from compliance.db.connection import Database
from compliance.errors import NotFoundError, ValidationFailedError
from compliance.models.audit import AuditEventOut, CheckpointPage, EventPage, EventQuery
from compliance.models.auth import Principal

CURSOR_VERSION = 1


def list_events(db: Database, principal: Principal, query: EventQuery) -> EventPage:
    """One page of the caller's organisation's events matching ``query``, in ``seq`` order."""
    if (
        query.occurred_from is not None
        and query.occurred_to is not None
        and query.occurred_from >= query.occurred_to
    ):
        raise ValidationFailedError("'from' must be before 'to'")
    flt = audit_query.EventFilter(
        occurred_from=query.occurred_from,
        occurred_to=query.occurred_to,
        actor=query.actor,
        event_type=query.event_type,
        resource=query.resource,
    )
    digest = filter_digest(flt)
    after = 0 if query.cursor is None else decode_cursor(query.cursor, digest)
    with db.tenant(principal.org_id) as conn:
        # One row more than asked tells whether another page exists, without an empty last page.
        rows = audit_query.query_events(conn, flt, after_seq=after, limit=query.limit + 1)
    items = rows[: query.limit]
    more = len(rows) > query.limit
    return EventPage(
        items=[AuditEventOut.from_stored(event) for event in items],
        next_cursor=encode_cursor(items[-1].seq, digest) if more else None,
    )


def get_event(db: Database, principal: Principal, event_id: UUID) -> AuditEventOut:
    with db.tenant(principal.org_id) as conn:
        event = audit_query.get_event(conn, event_id)
    if event is None:
        # Another organisation's event is indistinguishable from a missing one (RLS hides it).
        raise NotFoundError("no such audit event")
    return AuditEventOut.from_stored(event)


def list_checkpoints(db: Database, principal: Principal, *, after: int, limit: int) -> CheckpointPage:
    """Signed checkpoints with ``number > after``, oldest first (keyset pages on ``number``)."""
    with db.tenant(principal.org_id) as conn:
        rows = audit_checkpoints.list_checkpoints(conn, after_number=after, limit=limit + 1)
    items = rows[:limit]
    return CheckpointPage(items=items, next_after=items[-1].head.number if len(rows) > limit else None)


def get_checkpoint(db: Database, principal: Principal, number: int) -> SignedCheckpoint:
    with db.tenant(principal.org_id) as conn:
        checkpoint = audit_checkpoints.get(conn, number)
    if checkpoint is None:
        raise NotFoundError("no such audit checkpoint")
    return checkpoint


def filter_digest(flt: audit_query.EventFilter) -> str:
    """A short digest binding a cursor to the filters of the query that issued it."""
    parts = [
        None if flt.occurred_from is None else format_timestamp(flt.occurred_from),
        None if flt.occurred_to is None else format_timestamp(flt.occurred_to),
        flt.actor,
        flt.event_type,
        flt.resource,
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def encode_cursor(last_seq: int, digest: str) -> str:
    payload = json.dumps({"v": CURSOR_VERSION, "s": last_seq, "f": digest}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, digest: str) -> int:
    """The last ``seq`` a cursor names. Raises ValidationFailedError (400) for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        raise ValidationFailedError("invalid cursor") from None
    if not isinstance(data, dict) or set(data) != {"v", "s", "f"} or data["v"] != CURSOR_VERSION:
        raise ValidationFailedError("invalid cursor")
    seq = data["s"]
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        raise ValidationFailedError("invalid cursor")
    if data["f"] != digest:
        raise ValidationFailedError("the cursor belongs to a query with other filters")
    return seq
