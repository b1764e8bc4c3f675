"""Consent records in PostgreSQL (table ``consents``, migration 0009), inside a tenant transaction.

The deciding record of a (subject, purpose) is its latest grant (``granted_at``, then
``recorded_at``); it is active while not revoked, not expired and not granted in the future.
psycopg is imported inside the functions: the admin handler imports this module at cold start.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from compliance.db.connection import driver_errors

if TYPE_CHECKING:
    import psycopg

_COLUMNS = """
    c.consent_id, s.external_id AS subject_id, c.purpose, c.legal_basis, c.notice_version, c.source,
    c.granted_at, c.expires_at, c.recorded_at, c.revoked_at
"""
# "Active" as of the statement's time: the latest grant of its (subject, purpose), unrevoked, current.
_ACTIVE = """
    (c.revoked_at IS NULL AND c.granted_at <= now() AND (c.expires_at IS NULL OR c.expires_at > now())
     AND NOT EXISTS (
        SELECT 1 FROM consents AS later
        WHERE later.org_id = c.org_id AND later.subject_id = c.subject_id AND later.purpose = c.purpose
          AND (later.granted_at, later.recorded_at) > (c.granted_at, c.recorded_at)
     ))
"""
_INSERT = f"""
    WITH inserted AS (
        INSERT INTO consents (org_id, subject_id, purpose, legal_basis, notice_version, source,
                              granted_at, expires_at)
        VALUES (%(org_id)s, %(subject)s, %(purpose)s, %(legal_basis)s, %(notice_version)s, %(source)s,
                COALESCE(%(granted_at)s, now()), %(expires_at)s)
        RETURNING *
    )
    SELECT {_COLUMNS}, true AS active_hint
    FROM inserted AS c JOIN subjects AS s ON s.org_id = c.org_id AND s.id = c.subject_id
"""  # noqa: S608
_GET = f"""
    SELECT {_COLUMNS}, {_ACTIVE} AS active
    FROM consents AS c JOIN subjects AS s ON s.org_id = c.org_id AND s.id = c.subject_id
    WHERE c.org_id = %(org_id)s AND c.consent_id = %(consent_id)s
"""  # noqa: S608
_REVOKE = """
    UPDATE consents SET revoked_at = %(at)s
    WHERE org_id = %(org_id)s AND consent_id = %(consent_id)s AND revoked_at IS NULL
    RETURNING consent_id
"""
_HISTORY = f"""
    SELECT {_COLUMNS}, {_ACTIVE} AS active
    FROM consents AS c JOIN subjects AS s ON s.org_id = c.org_id AND s.id = c.subject_id
    WHERE c.org_id = %(org_id)s AND s.external_id = %(external_id)s
    ORDER BY c.granted_at DESC, c.recorded_at DESC, c.consent_id
"""  # noqa: S608
# Per subject, its latest grant for the purpose, read straight off the index (LIMIT 1 per subject);
# a correlated NOT EXISTS per consent row here cost ~10 ms per 250-record slice (measured).
_WITH_ACTIVE = """
    SELECT s.external_id
    FROM json_array_elements_text(%(external_ids)s::json) AS e(external_id)
    JOIN subjects AS s ON s.org_id = %(org_id)s AND s.external_id = e.external_id
    CROSS JOIN LATERAL (
        SELECT c.revoked_at, c.granted_at, c.expires_at FROM consents AS c
        WHERE c.org_id = s.org_id AND c.subject_id = s.id AND c.purpose = %(purpose)s
        ORDER BY c.granted_at DESC, c.recorded_at DESC
        LIMIT 1
    ) AS latest
    WHERE latest.revoked_at IS NULL AND latest.granted_at <= now()
      AND (latest.expires_at IS NULL OR latest.expires_at > now())
"""


def insert_consent(
    conn: psycopg.Connection[Any], org_id: UUID, subject: UUID, record: dict[str, Any]
) -> dict[str, Any]:
    """Store one grant for the subject (uuid); returns the stored record (``active`` computed by the
    caller's next read: a concurrent later grant may decide instead)."""
    from psycopg.rows import dict_row

    with driver_errors(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_INSERT, {"org_id": org_id, "subject": subject, **record}).fetchone()
    assert row is not None
    row.pop("active_hint")
    return dict(row)


def get_consent(conn: psycopg.Connection[Any], org_id: UUID, consent_id: UUID) -> dict[str, Any] | None:
    from psycopg.rows import dict_row

    with driver_errors(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_GET, {"org_id": org_id, "consent_id": consent_id}).fetchone()
    return None if row is None else dict(row)


def revoke_consent(conn: psycopg.Connection[Any], org_id: UUID, consent_id: UUID, at: datetime) -> bool:
    """Set the record's revocation time; False when it does not exist or was revoked already."""
    from psycopg.rows import tuple_row

    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(_REVOKE, {"org_id": org_id, "consent_id": consent_id, "at": at}).fetchone()
    return row is not None


def consent_history(conn: psycopg.Connection[Any], org_id: UUID, external_id: str) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row

    with driver_errors(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_HISTORY, {"org_id": org_id, "external_id": external_id}).fetchall()
    return [dict(row) for row in rows]


def with_active_consent(
    conn: psycopg.Connection[Any], org_id: UUID, external_ids: Iterable[str], purpose: str
) -> set[str]:
    """Which of the platform's subject ids have an active ``purpose`` consent right now."""
    from psycopg.rows import tuple_row

    wanted = sorted(set(external_ids))
    if not wanted:
        return set()
    params = {"org_id": org_id, "external_ids": json.dumps(wanted), "purpose": purpose}
    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        return {row[0] for row in cur.execute(_WITH_ACTIVE, params).fetchall()}


def subject_of(conn: psycopg.Connection[Any], org_id: UUID, consent_id: UUID) -> UUID | None:
    """The subject uuid a record belongs to."""
    from psycopg.rows import tuple_row

    query = "SELECT subject_id FROM consents WHERE org_id = %s AND consent_id = %s"
    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(query, (org_id, consent_id)).fetchone()
    return None if row is None else UUID(str(row[0]))
