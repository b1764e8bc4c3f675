"""Data subject requests in PostgreSQL (table ``dsr_requests``, migration 0010), on a tenant connection.

Rows come back as dicts of the table's columns. A second open request of the same type for the
same subject (the partial unique index ``dsr_requests_open_idx``) is found with ``ON CONFLICT DO
NOTHING`` rather than by catching the violation: the transaction stays usable to read the open
request's id for the 409. psycopg is imported inside the functions: the DSR handler imports this
module at cold start.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from compliance.db.connection import driver_errors
from compliance.errors import ConflictError

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "INSERT_COLUMNS",
    "UPDATABLE_COLUMNS",
    "OpenRequestExistsError",
    "append_step",
    "due_requests",
    "get_request",
    "insert_request",
    "list_requests",
    "request_org",
    "update_request",
]

#: The statuses the partial unique index and the SLA monitor treat as open (compliance.dsr.status).
OPEN_STATUSES: Final = ("received", "awaiting_verification", "verified", "running")
INSERT_COLUMNS: Final = (
    "id",
    "type",
    "regulation",
    "status",
    "subject_id",
    "subject_key",
    "export_formats",
    "corrections",
    "received_at",
    "deadline",
)
#: What update_request may set: the application role's UPDATE grant (migration 0010), nothing else.
UPDATABLE_COLUMNS: Final = frozenset(
    {
        "status",
        "subject_id",
        "corrections",
        "deadline",
        "extended_at",
        "extension_days",
        "extension_reason",
        "code_hash",
        "code_issued_at",
        "code_expires_at",
        "failed_attempts",
        "max_attempts",
        "verified_at",
        "task_token",
        "execution_arn",
        "steps",
        "export_objects",
        "export_expires_at",
        "receipt",
        "outcome",
        "failure",
        "completed_at",
        "updated_at",
    }
)
_JSON_COLUMNS: Final = frozenset({"steps", "export_objects", "receipt", "failure"})
_OPEN_SQL: Final = "status IN ('received', 'awaiting_verification', 'verified', 'running')"

_INSERT: Final = f"""
    INSERT INTO dsr_requests (org_id, {", ".join(INSERT_COLUMNS)})
    VALUES (%(org_id)s, {", ".join(f"%({c})s" for c in INSERT_COLUMNS)})
    ON CONFLICT (org_id, subject_key, type) WHERE {_OPEN_SQL} DO NOTHING
    RETURNING *
"""  # noqa: S608 - column names are the constants above
_OPEN_ONE: Final = f"""
    SELECT id FROM dsr_requests
    WHERE org_id = %s AND subject_key = %s AND type = %s AND {_OPEN_SQL}
"""  # noqa: S608
_GET: Final = "SELECT * FROM dsr_requests WHERE org_id = %s AND id = %s"
_APPEND_STEP: Final = """
    UPDATE dsr_requests
    SET steps = steps || jsonb_build_array(jsonb_build_object(
            'name', %(name)s::text, 'status', %(status)s::text, 'at', %(at)s::timestamptz,
            'detail', %(detail)s::jsonb)),
        updated_at = now()
    WHERE org_id = %(org_id)s AND id = %(id)s
    RETURNING id
"""
_DUE: Final = f"""
    SELECT * FROM dsr_requests
    WHERE org_id = %s AND {_OPEN_SQL} AND deadline <= %s
    ORDER BY deadline, id
"""  # noqa: S608


class OpenRequestExistsError(ConflictError):
    """The subject already has an open request of this type; ``open_request_id`` names it."""

    title = "Open request exists"

    def __init__(self, open_request_id: UUID) -> None:
        super().__init__(
            "an open request of this type exists for this subject", open_request_id=str(open_request_id)
        )
        self.open_request_id = open_request_id


def _adapt(column: str, value: Any) -> Any:
    from psycopg.types.json import Jsonb

    if column in _JSON_COLUMNS and value is not None:
        return Jsonb(value)
    return value


def insert_request(conn: psycopg.Connection[Any], org_id: UUID, row: Mapping[str, Any]) -> dict[str, Any]:
    """Store a new request (``row`` has :data:`INSERT_COLUMNS`); the stored row.

    Raises :class:`OpenRequestExistsError` (409) when the subject has an open request of the type."""
    from psycopg.rows import dict_row, tuple_row

    params = {"org_id": org_id, **{column: row.get(column) for column in INSERT_COLUMNS}}
    with driver_errors():
        with conn.cursor(row_factory=dict_row) as cur:
            stored = cur.execute(_INSERT, params).fetchone()
        if stored is not None:
            return dict(stored)
        with conn.cursor(row_factory=tuple_row) as cur:
            found = cur.execute(_OPEN_ONE, (org_id, row["subject_key"], row["type"])).fetchone()
    if found is None:  # pragma: no cover - the open one closed between the two statements
        raise ConflictError("a concurrent request for this subject changed; try again")
    raise OpenRequestExistsError(UUID(str(found[0])))


def get_request(
    conn: psycopg.Connection[Any], org_id: UUID, request_id: UUID, *, for_update: bool = False
) -> dict[str, Any] | None:
    """The request, or None (unknown, or another org's: RLS hides it). ``for_update`` locks the row
    until the transaction ends (verification attempts and status changes serialise on it)."""
    from psycopg.rows import dict_row

    query = _GET + (" FOR UPDATE" if for_update else "")
    with driver_errors(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, (org_id, request_id)).fetchone()
    return None if row is None else dict(row)


def list_requests(
    conn: psycopg.Connection[Any],
    org_id: UUID,
    *,
    status: str | None = None,
    type: str | None = None,
    limit: int,
    after: tuple[datetime, UUID] | None = None,
) -> list[dict[str, Any]]:
    """Up to ``limit`` requests, newest first (received_at DESC, id DESC), strictly after the
    keyset position ``after`` (the last row of the previous page)."""
    from psycopg import sql
    from psycopg.rows import dict_row

    clauses = [sql.SQL("org_id = %s")]
    params: list[Any] = [org_id]
    if status is not None:
        clauses.append(sql.SQL("status = %s"))
        params.append(status)
    if type is not None:
        clauses.append(sql.SQL("type = %s"))
        params.append(type)
    if after is not None:
        clauses.append(sql.SQL("(received_at, id) < (%s, %s)"))
        params.extend(after)
    query = sql.SQL("SELECT * FROM dsr_requests WHERE {} ORDER BY received_at DESC, id DESC LIMIT %s").format(
        sql.SQL(" AND ").join(clauses)
    )
    params.append(limit)
    with driver_errors(), conn.cursor(row_factory=dict_row) as cur:
        return [dict(row) for row in cur.execute(query, params).fetchall()]


def update_request(
    conn: psycopg.Connection[Any], org_id: UUID, request_id: UUID, **fields: Any
) -> dict[str, Any] | None:
    """Set ``fields`` (only :data:`UPDATABLE_COLUMNS`; ``updated_at`` defaults to the statement's
    time); the updated row, or None when there is no such request."""
    from psycopg import sql
    from psycopg.rows import dict_row

    unknown = sorted(set(fields) - UPDATABLE_COLUMNS)
    if unknown:
        raise ValueError(f"dsr_requests columns that cannot be updated: {unknown}")
    if not fields:
        raise ValueError("nothing to update")
    assignments: list[sql.Composable] = [
        sql.SQL("{} = %s").format(sql.Identifier(column)) for column in fields
    ]
    params = [_adapt(column, value) for column, value in fields.items()]
    if "updated_at" not in fields:
        assignments.append(sql.SQL("updated_at = now()"))
    query = sql.SQL("UPDATE dsr_requests SET {} WHERE org_id = %s AND id = %s RETURNING *").format(
        sql.SQL(", ").join(assignments)
    )
    with driver_errors(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, [*params, org_id, request_id]).fetchone()
    return None if row is None else dict(row)


def append_step(
    conn: psycopg.Connection[Any],
    org_id: UUID,
    request_id: UUID,
    name: str,
    status: str,
    at: datetime,
    detail: Mapping[str, Any] | None = None,
) -> bool:
    """Add ``{"name", "status", "at", "detail"}`` to the request's steps (``detail``: a JSON object
    of fixed codes, flags and counts, or null); False when there is no such request."""
    from psycopg.rows import tuple_row
    from psycopg.types.json import Jsonb

    params = {
        "org_id": org_id,
        "id": request_id,
        "name": str(name),
        "status": str(status),
        "at": at,
        "detail": None if detail is None else Jsonb(dict(detail)),
    }
    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(_APPEND_STEP, params).fetchone() is not None


def request_org(conn: psycopg.Connection[Any], request_id: UUID) -> UUID | None:
    """The org of a request, from any connection (SECURITY DEFINER ``dsr_request_org``): how the
    unauthenticated verify route opens its tenant transaction. None for an unknown id."""
    from psycopg.rows import tuple_row

    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT dsr_request_org(%s)", (request_id,)).fetchone()
    return None if row is None or row[0] is None else UUID(str(row[0]))


def due_requests(conn: psycopg.Connection[Any], org_id: UUID, *, until: datetime) -> list[dict[str, Any]]:
    """Open requests whose deadline is at or before ``until`` (the SLA monitor), soonest first."""
    from psycopg.rows import dict_row

    with driver_errors(), conn.cursor(row_factory=dict_row) as cur:
        return [dict(row) for row in cur.execute(_DUE, (org_id, until)).fetchall()]
