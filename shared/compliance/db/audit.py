"""Audit events in PostgreSQL: the append step of the per-organisation hash chain, and reads.

Call everything inside ``Database.tenant(org_id)``: row-level security scopes the tables to
that organisation, and :func:`append_events` relies on the caller's single transaction (a
failure anywhere appends nothing).

Appending locks the organisation's row in ``audit_heads`` (created at ``seq`` 0 on first
use), so concurrent appends for one organisation queue behind each other and the chain
cannot fork; different organisations never wait for each other. Under that lock, events
whose ``event_id`` is already stored are dropped (a redelivery is a no-op), the rest are
linked after the head (:func:`compliance.audit.chain.link`), inserted in order with one
statement, and the head moves to the last of them.

Storage choices: hashes are the lowercase hex text of :mod:`compliance.audit.canonical`;
``ip_address`` is the text :func:`~compliance.audit.canonical.format_ip` hashes; the Merkle
leaf hash is not stored but derived from ``event_hash`` on read
(``leaf_hash(chain.merkle_leaf_data(event))``, i.e. ``SHA-256(0x00 || bytes(event_hash))``).
``details`` is ``jsonb``, which keeps numbers as exact decimals but rewrites ``1e+20`` as
``100000000000000000000``: reading parses integers beyond the exact JSON range (which
validation never lets in as integers) back as floats, so every event reloads as written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row, tuple_row

from compliance.audit.canonical import GENESIS_HASH
from compliance.audit.chain import ChainHead, link
from compliance.audit.events import SAFE_INT, AuditEventIn, StoredAuditEvent
from compliance.audit.merkle import leaf_hash

__all__ = [
    "AppendResult",
    "append_events",
    "event_leaf_hashes",
    "head",
    "load_details",
    "read_event_range",
    "read_events",
]

# Both run before anything else of the append, pipelined: the first creates the head of an
# organisation's empty chain (a concurrent creator makes it wait, then do nothing), the
# second locks it until the caller's transaction ends.
_ENSURE_HEAD = """
    INSERT INTO audit_heads (org_id, seq, event_hash) VALUES (%s, 0, %s)
    ON CONFLICT (org_id) DO NOTHING
"""
_LOCK_HEAD = "SELECT seq, event_hash FROM audit_heads WHERE org_id = %s FOR UPDATE"

# One unique-index probe per id, whatever the statistics say: with `event_id = ANY(...)` a
# planner that underestimates an organisation's rows (a young or not yet analysed log) scans the
# whole organisation instead, so every append got slower as the log grew. The ids travel as one
# array literal: adapting a list of UUID objects cost more than the query.
_STORED_IDS = """
    SELECT i.event_id FROM unnest(%s::uuid[]) AS i(event_id)
    CROSS JOIN LATERAL (
        SELECT 1 FROM audit_events e WHERE e.org_id = %s AND e.event_id = i.event_id LIMIT 1
    ) AS hit
"""

_INSERT = """
    INSERT INTO audit_events (
        org_id, seq, event_id, occurred_at, event_type, actor, resource, action, result,
        ip_address, user_agent, request_id, details, prev_hash, event_hash
    )
    SELECT %(org_id)s, e.seq, e.event_id, e.occurred_at, e.event_type, e.actor, e.resource,
           e.action, e.result, e.ip_address, e.user_agent, e.request_id, e.details, e.prev_hash,
           e.event_hash
    FROM json_to_recordset(%(events)s::json) AS e(
        seq bigint, event_id uuid, occurred_at timestamptz, event_type text, actor text,
        resource text, action text, result text, ip_address text, user_agent text,
        request_id text, details jsonb, prev_hash text, event_hash text
    )
    ORDER BY e.seq
"""

_MOVE_HEAD = "UPDATE audit_heads SET seq = %s, event_hash = %s WHERE org_id = %s"

_SELECT = """
    SELECT org_id, seq, event_id, occurred_at, event_type, actor, resource, action, result,
           ip_address, user_agent, request_id, details::text AS details, prev_hash, event_hash
    FROM audit_events
    WHERE org_id = NULLIF(current_setting('app.org_id', true), '')::uuid AND seq > %s
    ORDER BY seq
    LIMIT %s
"""

_SELECT_RANGE = """
    SELECT org_id, seq, event_id, occurred_at, event_type, actor, resource, action, result,
           ip_address, user_agent, request_id, details::text AS details, prev_hash, event_hash
    FROM audit_events
    WHERE org_id = NULLIF(current_setting('app.org_id', true), '')::uuid AND seq > %s AND seq <= %s
    ORDER BY seq
    LIMIT %s
"""

_HEAD = """
    SELECT seq, event_hash FROM audit_heads
    WHERE org_id = NULLIF(current_setting('app.org_id', true), '')::uuid
"""

_EVENT_HASHES = """
    SELECT event_hash FROM audit_events
    WHERE org_id = NULLIF(current_setting('app.org_id', true), '')::uuid AND seq > %s AND seq <= %s
    ORDER BY seq
"""


@dataclass(frozen=True)
class AppendResult:
    """What :func:`append_events` did: the events it linked (in ``seq`` order), the
    ``event_id`` values it skipped because they were already stored (or repeated in the
    batch), and the chain head afterwards (``None`` while the chain is empty)."""

    appended: list[StoredAuditEvent] = field(default_factory=list)
    duplicates: list[UUID] = field(default_factory=list)
    head: ChainHead | None = None


def append_events(
    conn: psycopg.Connection[Any], org_id: UUID, events: Sequence[AuditEventIn]
) -> AppendResult:
    """Link ``events`` (in the given order) at the end of ``org_id``'s chain and store them.

    Idempotent per ``event_id``. Raises ``ValueError`` if an event belongs to another
    organisation. Holds the organisation's head lock until the caller's transaction ends.
    """
    if any(event.org_id != org_id for event in events):
        raise ValueError("every event must belong to the organisation appended to")
    unique: dict[UUID, AuditEventIn] = {}
    repeated: list[UUID] = []
    for event in events:
        if event.event_id in unique:
            repeated.append(event.event_id)
        else:
            unique[event.event_id] = event

    with conn.cursor(row_factory=tuple_row) as cur, conn.cursor(row_factory=tuple_row) as ids:
        # One round trip: the server runs them in order, so the id check runs once the lock is
        # held, and sees every concurrent append of the same ids that committed before it.
        with conn.pipeline():
            conn.execute(_ENSURE_HEAD, (org_id, GENESIS_HASH))
            cur.execute(_LOCK_HEAD, (org_id,))
            ids.execute(_STORED_IDS, ("{" + ",".join(map(str, unique)) + "}", org_id))
        row = cur.fetchone()
        if row is None:  # pragma: no cover - the row was just ensured under RLS
            raise RuntimeError("audit head row missing after upsert")
        current = ChainHead(int(row[0]), str(row[1]))
        stored = {r[0] for r in ids.fetchall()}
        fresh = [event for event_id, event in unique.items() if event_id not in stored]
        duplicates = [event_id for event_id in unique if event_id in stored] + repeated
        if not fresh:
            return AppendResult([], duplicates, current if current.seq else None)

        canonical: list[bytes] = []
        linked = link(fresh, current if current.seq else None, canonical_out=canonical)
        last = ChainHead(linked[-1].seq, linked[-1].event_hash)
        with conn.pipeline():
            conn.execute(_INSERT, {"org_id": org_id, "events": _rows_json(canonical, linked)})
            conn.execute(_MOVE_HEAD, (last.seq, last.event_hash, org_id))
    return AppendResult(linked, duplicates, last)


def _rows_json(canonical: Sequence[bytes], linked: Sequence[StoredAuditEvent]) -> str:
    """The rows to insert, as one JSON array: each event's canonical form (which has a member per
    column, formatted as hashed) with its ``event_hash`` added. Storing the hashed text itself
    means no second formatting that could disagree with it, and it costs a join, not a dump."""
    rows = b",".join(
        c[:-1] + b',"event_hash":"' + e.event_hash.encode() + b'"}'
        for c, e in zip(canonical, linked, strict=True)
    )
    return (b"[" + rows + b"]").decode("utf-8")


def read_events(conn: psycopg.Connection[Any], *, after_seq: int = 0, limit: int) -> list[StoredAuditEvent]:
    """Up to ``limit`` events of the organisation in scope with ``seq > after_seq``, by ``seq``.

    Rows load even when tampered with: whether they are right is for ``verify_chain``.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_SELECT, (after_seq, limit)).fetchall()
    return [_event(row) for row in rows]


def read_event_range(
    conn: psycopg.Connection[Any], *, after_seq: int, upto_seq: int, limit: int
) -> list[StoredAuditEvent]:
    """Up to ``limit`` events with ``after_seq < seq <= upto_seq``, by ``seq`` (one page of a range).

    Rows load even when tampered with, as in :func:`read_events`.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_SELECT_RANGE, (after_seq, upto_seq, limit)).fetchall()
    return [_event(row) for row in rows]


def head(conn: psycopg.Connection[Any]) -> ChainHead | None:
    """The last position of the chain of the organisation in scope; ``None`` if empty."""
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(_HEAD).fetchone()
    if row is None or int(row[0]) == 0:
        return None
    return ChainHead(int(row[0]), str(row[1]))


def event_leaf_hashes(conn: psycopg.Connection[Any], upto_seq: int, after_seq: int = 0) -> Iterator[bytes]:
    """RFC 6962 leaf hashes of the events with ``after_seq < seq <= upto_seq``, in ``seq`` order.

    Streamed row by row (psycopg single-row mode), so a Merkle root over the whole chain
    needs O(log n) memory (``merkle.root_from_leaf_hashes``). Consume it inside the
    transaction, before running anything else on the connection.
    """
    with conn.cursor(row_factory=tuple_row) as cur:
        for (event_hash,) in cur.stream(_EVENT_HASHES, (after_seq, upto_seq)):
            yield leaf_hash(bytes.fromhex(event_hash))


def _event(row: dict[str, Any]) -> StoredAuditEvent:
    return StoredAuditEvent.model_validate({**row, "details": load_details(row["details"])})


def _parse_int(text: str) -> int | float:
    # jsonb prints large floats without exponent; validation only admits integers in range.
    value = int(text)
    return value if -SAFE_INT <= value <= SAFE_INT else float(text)


def load_details(text: str) -> Any:
    return json.loads(text, parse_int=_parse_int)
