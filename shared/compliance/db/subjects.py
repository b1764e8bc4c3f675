"""Changes to a subject a data subject request makes (table ``subjects``): rectification of the
e-mail address and restriction of processing (migration 0011). On a tenant connection."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from compliance.db.connection import driver_errors

if TYPE_CHECKING:
    import psycopg

_RESTRICTED: Final = """
    SELECT s.external_id
    FROM json_array_elements_text(%(external_ids)s::json) AS e(external_id)
    JOIN subjects AS s ON s.org_id = %(org_id)s AND s.external_id = e.external_id
    WHERE s.restricted_at IS NOT NULL
"""
_RESTRICT: Final = """
    UPDATE subjects SET restricted_at = %s, restriction_request_id = %s
    WHERE org_id = %s AND id = %s AND restricted_at IS NULL
    RETURNING id
"""
_LIFT: Final = """
    UPDATE subjects SET restricted_at = NULL, restriction_request_id = NULL
    WHERE org_id = %s AND id = %s AND restriction_request_id = %s
    RETURNING id
"""
_RESTRICTION: Final = (
    "SELECT restricted_at, restriction_request_id FROM subjects WHERE org_id = %s AND id = %s"
)
_SET_EMAIL: Final = (
    "UPDATE subjects SET email = %s, email_key = %s WHERE org_id = %s AND id = %s RETURNING id"
)
_BY_EMAIL_KEY: Final = "SELECT id FROM subjects WHERE org_id = %s AND email_key = %s ORDER BY id LIMIT 2"
# An address stored without its look-up key (before 0012, or written without the DSR secret).
_UNKEYED: Final = """
    SELECT EXISTS (SELECT 1 FROM subjects WHERE org_id = %s AND email IS NOT NULL AND email_key IS NULL)
"""


def restricted_external_ids(
    conn: psycopg.Connection[Any], org_id: UUID, external_ids: Iterable[str]
) -> set[str]:
    """Which of the platform's subject ids are restricted now."""
    from psycopg.rows import tuple_row

    wanted = sorted(set(external_ids))
    if not wanted:
        return set()
    params = {"org_id": org_id, "external_ids": json.dumps(wanted)}
    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        return {row[0] for row in cur.execute(_RESTRICTED, params).fetchall()}


def restrict(
    conn: psycopg.Connection[Any], org_id: UUID, subject_id: UUID, request_id: UUID, at: datetime
) -> bool:
    """Restrict the subject on behalf of ``request_id``; False when it was restricted already."""
    from psycopg.rows import tuple_row

    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(_RESTRICT, (at, request_id, org_id, subject_id)).fetchone() is not None


def lift_restriction(conn: psycopg.Connection[Any], org_id: UUID, subject_id: UUID, request_id: UUID) -> bool:
    """Lift the restriction ``request_id`` set; False when no such restriction is in force."""
    from psycopg.rows import tuple_row

    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(_LIFT, (org_id, subject_id, request_id)).fetchone() is not None


def restriction(
    conn: psycopg.Connection[Any], org_id: UUID, subject_id: UUID
) -> tuple[datetime, UUID] | None:
    """When and by which request the subject is restricted, or None."""
    from psycopg.rows import tuple_row

    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(_RESTRICTION, (org_id, subject_id)).fetchone()
    if row is None or row[0] is None:
        return None
    return row[0], UUID(str(row[1]))


def set_email(
    conn: psycopg.Connection[Any], org_id: UUID, subject_id: UUID, stored: str | None, email_key: bytes | None
) -> bool:
    """Store the subject's address as given (field ciphertext when the catalog encrypts it) with the
    look-up key made from it (None clears it: a key must never outlive its address)."""
    from psycopg.rows import tuple_row

    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(_SET_EMAIL, (stored, email_key, org_id, subject_id)).fetchone() is not None


def by_email_key(conn: psycopg.Connection[Any], org_id: UUID, email_key: bytes) -> list[UUID]:
    """The subjects whose address has this look-up key (at most two: enough to see it is ambiguous)."""
    from psycopg.rows import tuple_row

    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        return [UUID(str(row[0])) for row in cur.execute(_BY_EMAIL_KEY, (org_id, email_key)).fetchall()]


def has_unkeyed_addresses(conn: psycopg.Connection[Any], org_id: UUID) -> bool:
    from psycopg.rows import tuple_row

    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(_UNKEYED, (org_id,)).fetchone()
    return bool(row and row[0])
