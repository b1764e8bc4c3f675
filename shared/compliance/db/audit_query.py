"""Reads of the audit trail for the audit API: filtered keyset pages, one event, ranges.

Call everything inside ``Database.tenant(org_id)``: row-level security limits every statement to
that organisation, and each statement also names it (``org_id = app.org_id``) so the planner can
use the ``(org_id, ...)`` indexes. Pages are keyset-paginated on ``seq`` (``seq > after``), never
``OFFSET``: a page costs the same at the end of a long log as at its start, and events appended
meanwhile neither shift nor repeat rows.

Filters and the indexes they need (asked of migration 0003/0004, see the H3 report):
``actor``, ``event_type``, ``resource`` -> ``(org_id, <column>, seq)``; ``from``/``to`` ->
``(org_id, occurred_at)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from compliance.audit.chain import ChainHead
from compliance.audit.events import StoredAuditEvent

# psycopg (and compliance.db.audit, which imports it) are imported inside the functions:
# handlers import this module at cold start, the driver is needed by the first query only.
if TYPE_CHECKING:
    import psycopg

__all__ = [
    "EventFilter",
    "event_hash_at",
    "event_leaf_hashes",
    "get_event",
    "head",
    "leaf_hashes",
    "query_events",
    "read_range",
]

_COLUMNS = (
    "org_id, seq, event_id, occurred_at, event_type, actor, resource, action, result, "
    "ip_address, user_agent, request_id, details::text AS details, prev_hash, event_hash"
)
_IN_SCOPE = "org_id = NULLIF(current_setting('app.org_id', true), '')::uuid"
# Fixed SQL fragments per filter; values always travel as parameters.
_CONDITIONS = {
    "actor": "actor = %(actor)s",
    "event_type": "event_type = %(event_type)s",
    "resource": "resource = %(resource)s",
    "occurred_from": "occurred_at >= %(occurred_from)s",
    "occurred_to": "occurred_at < %(occurred_to)s",
}
_GET = f"SELECT {_COLUMNS} FROM audit_events WHERE {_IN_SCOPE} AND event_id = %s"  # noqa: S608
_HASH_AT = f"SELECT event_hash FROM audit_events WHERE {_IN_SCOPE} AND seq = %s"  # noqa: S608


@dataclass(frozen=True)
class EventFilter:
    """AND-combined filters; ``None`` means "any". ``occurred_from`` inclusive, ``occurred_to`` exclusive."""

    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    actor: str | None = None
    event_type: str | None = None
    resource: str | None = None


def query_events(
    conn: psycopg.Connection[Any], flt: EventFilter, *, after_seq: int, limit: int
) -> list[StoredAuditEvent]:
    """Up to ``limit`` matching events with ``seq > after_seq``, in ``seq`` order."""
    from psycopg.rows import dict_row

    params: dict[str, Any] = {"after": after_seq, "limit": limit}
    conditions = [_IN_SCOPE, "seq > %(after)s"]
    for name, fragment in _CONDITIONS.items():
        value = getattr(flt, name)
        if value is not None:
            conditions.append(fragment)
            params[name] = value
    statement = (
        f"SELECT {_COLUMNS} FROM audit_events WHERE {' AND '.join(conditions)} ORDER BY seq LIMIT %(limit)s"  # noqa: S608
    )
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(statement, params).fetchall()
    return [_event(row) for row in rows]


def get_event(conn: psycopg.Connection[Any], event_id: UUID) -> StoredAuditEvent | None:
    """The event with ``event_id`` in the organisation in scope (another org's: ``None``)."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_GET, (event_id,)).fetchone()
    return None if row is None else _event(row)


def read_range(
    conn: psycopg.Connection[Any], *, from_seq: int, to_seq: int, page_size: int
) -> Iterator[StoredAuditEvent]:
    """Events ``from_seq..to_seq`` (inclusive) in ``seq`` order, read ``page_size`` at a time.

    Yields lazily: at most one page is in memory. Rows load even when tampered with (a missing
    ``seq`` simply is not there): judging them is ``verify_chain``'s job.
    """
    from compliance.db.audit import read_events

    after = from_seq - 1
    while after < to_seq:
        page = read_events(conn, after_seq=after, limit=min(page_size, to_seq - after))
        page = [event for event in page if event.seq <= to_seq]
        if not page:
            return
        yield from page
        after = page[-1].seq


def event_hash_at(conn: psycopg.Connection[Any], seq: int) -> str | None:
    """The stored ``event_hash`` at ``seq`` (``None`` if there is no such event)."""
    from psycopg.rows import tuple_row

    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(_HASH_AT, (seq,)).fetchone()
    return None if row is None else str(row[0])


def leaf_hashes(conn: psycopg.Connection[Any], tree_size: int) -> list[bytes]:
    """The RFC 6962 leaf hashes of the first ``tree_size`` events (fewer if events are missing).

    In memory (32 bytes per event plus object overhead): proof construction needs random access.
    """
    return list(event_leaf_hashes(conn, tree_size))


def event_leaf_hashes(conn: psycopg.Connection[Any], upto_seq: int) -> Iterator[bytes]:
    """Streamed leaf hashes of ``seq <= upto_seq`` (:func:`compliance.db.audit.event_leaf_hashes`)."""
    from compliance.db import audit

    return audit.event_leaf_hashes(conn, upto_seq)


def head(conn: psycopg.Connection[Any]) -> ChainHead | None:
    """The chain head of the organisation in scope (:func:`compliance.db.audit.head`)."""
    from compliance.db import audit

    return audit.head(conn)


def _event(row: dict[str, Any]) -> StoredAuditEvent:
    from compliance.db.audit import load_details

    return StoredAuditEvent.model_validate({**row, "details": load_details(row["details"])})
