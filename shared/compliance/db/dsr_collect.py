"""SQL of access and portability requests: find a subject, stream its rows table by table, and
its audit events. Read-only.

Call everything inside ``Database.tenant(org_id)`` (or ``FieldCrypto.tenant``): row-level security
scopes every table to that organisation, and each statement also names ``org_id`` so the planner
uses the ``(org_id, ...)`` indexes. Table and column names are checked against the data catalog
entries the caller passes (:class:`~compliance.catalog.model.CatalogError` otherwise) and quoted
as identifiers; values always travel as parameters. Driver errors leave as ``DataAccessError``.

Rows are read through a server-side cursor (``DECLARE ... CURSOR``), ``batch_size`` rows per
``FETCH``: one statement and one plan per table, so 100,000 usage records cost one scan, not a
page query each, and never sit in memory at once. The cursor lives in the caller's transaction,
which therefore stays open while the rows are consumed (and sees one snapshot per table).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID, uuid4

from compliance.catalog.model import CatalogEntry, CatalogError
from compliance.db.connection import driver_errors
from compliance.errors import DataAccessError

# psycopg is imported inside the functions: handlers import this module at cold start.
if TYPE_CHECKING:
    import psycopg

__all__ = [
    "AUDIT_COLUMNS",
    "AUDIT_TABLE",
    "DEFAULT_BATCH_SIZE",
    "TENANT_COLUMN",
    "find_subject",
    "iter_linked_rows",
    "iter_subject_events",
    "record_key",
    "subject_resource",
]

DEFAULT_BATCH_SIZE: Final = 1000
#: Every tenant table's organisation column: constant inside a tenant transaction.
TENANT_COLUMN: Final = "org_id"
AUDIT_TABLE: Final = "audit_events"
#: The columns of the subject's audit events an export shows. Hashes are left out: they are the
#: chain's integrity data, not information about the subject or the processing.
AUDIT_COLUMNS: Final = (
    "seq",
    "event_id",
    "occurred_at",
    "event_type",
    "actor",
    "resource",
    "action",
    "result",
    "ip_address",
    "user_agent",
    "request_id",
    "details",
)

_BY_ID = "SELECT id FROM subjects WHERE org_id = %s AND id = %s"
_BY_EXTERNAL_ID = "SELECT id FROM subjects WHERE org_id = %s AND external_id = %s"
_PRIMARY_KEY = """
    SELECT a.attname
    FROM pg_index i
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
    WHERE i.indrelid = to_regclass(%s) AND i.indisprimary
    ORDER BY array_position(i.indkey::int2[], a.attnum)
"""
# Fixed text; details as text so integers beyond the exact JSON range reload as written
# (compliance.db.audit.load_details). The OR uses the (org_id, resource, seq) and
# (org_id, actor, seq) indexes (migration 0003) as a bitmap OR.
_EVENTS = """
    SELECT seq, event_id, occurred_at, event_type, actor, resource, action, result, ip_address,
        user_agent, request_id, details::text AS details
    FROM audit_events
    WHERE org_id = %(org_id)s AND (resource = %(ref)s OR actor = %(ref)s)
    ORDER BY seq
"""


def subject_resource(subject_id: UUID) -> str:
    """How audit events name a subject (``compliance.audit.emit.key_scope_resource``)."""
    return f"subject:{subject_id}"


def find_subject(
    conn: psycopg.Connection[Any],
    org_id: UUID,
    *,
    subject_id: UUID | None = None,
    external_id: str | None = None,
) -> UUID | None:
    """The id of the org's subject with that pseudonymous id or platform external id (exactly one
    given), ``None`` when the org has no such subject."""
    from psycopg.rows import tuple_row

    if (subject_id is None) == (external_id is None):
        raise ValueError("give exactly one of subject_id and external_id")
    query, value = (_BY_ID, subject_id) if subject_id is not None else (_BY_EXTERNAL_ID, external_id)
    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(query, (org_id, value)).fetchone()
    return None if row is None else UUID(str(row[0]))


def record_key(conn: psycopg.Connection[Any], table: str, entries: Sequence[CatalogEntry]) -> tuple[str, ...]:
    """The columns of ``table``'s primary key but ``org_id``: what names one of its rows."""
    from psycopg import sql
    from psycopg.rows import tuple_row

    _catalogued(entries, table, ())
    name = sql.Identifier("public", table).as_string(conn)
    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        columns = [str(row[0]) for row in cur.execute(_PRIMARY_KEY, (name,)).fetchall()]
    if not columns:
        raise DataAccessError(f"table {table} has no primary key")
    key = tuple(column for column in columns if column != TENANT_COLUMN)
    _catalogued(entries, table, key)
    return key


def iter_linked_rows(
    conn: psycopg.Connection[Any],
    org_id: UUID,
    subject_id: UUID,
    *,
    table: str,
    columns: Sequence[str],
    order_by: Sequence[str],
    entries: Sequence[CatalogEntry],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[list[dict[str, Any]]]:
    """The subject's rows of ``table`` (``subject_link`` = ``subject_id``, the link the catalog
    records for the table), as dicts of ``columns``, ordered by ``order_by`` (its record key),
    in lists of at most ``batch_size``. Close the iterator (or exhaust it) before the transaction
    ends."""
    from psycopg import sql

    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    link = _catalogued(entries, table, (*columns, *order_by, TENANT_COLUMN))
    if link is None:
        raise CatalogError([f"{table}: has no subject_link"])
    query = sql.SQL(
        "SELECT {columns} FROM {table} WHERE {tenant} = %s AND {link} = %s ORDER BY {order}"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier(column) for column in columns),
        table=sql.Identifier("public", table),
        tenant=sql.Identifier(TENANT_COLUMN),
        link=sql.Identifier(link),
        order=sql.SQL(", ").join(sql.Identifier(column) for column in order_by),
    )
    yield from _stream(conn, query, (org_id, subject_id), batch_size)


def iter_subject_events(
    conn: psycopg.Connection[Any], org_id: UUID, subject_id: UUID, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> Iterator[list[dict[str, Any]]]:
    """The org's audit events naming the subject as resource or actor, in ``seq`` order, as dicts
    of :data:`AUDIT_COLUMNS` (``details`` parsed), in lists of at most ``batch_size``."""
    from compliance.db.audit import load_details

    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    params = {"org_id": org_id, "ref": subject_resource(subject_id)}
    for batch in _stream(conn, _EVENTS, params, batch_size):
        yield [row | {"details": load_details(row["details"])} for row in batch]


def _stream(
    conn: psycopg.Connection[Any], query: Any, params: Any, batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    from psycopg.rows import dict_row

    # A unique name: two streams may be open at once in one transaction.
    name = f"dsr_collect_{uuid4().hex}"
    with driver_errors(), conn.cursor(name=name, row_factory=dict_row) as cur:
        cur.execute(query, params)
        while batch := cur.fetchmany(batch_size):
            yield batch


def _catalogued(entries: Sequence[CatalogEntry], table: str, columns: Sequence[str]) -> str | None:
    """``table``'s subject link, once ``table`` and every one of ``columns`` are in the catalog."""
    known = {entry.column_name: entry for entry in entries if entry.table_name == table}
    if not known:
        raise CatalogError([f"{table}: not in the data catalog"])
    missing = [f"{table}.{column}: not in the data catalog" for column in columns if column not in known]
    if missing:
        raise CatalogError(missing)
    return next(iter(known.values())).subject_link
