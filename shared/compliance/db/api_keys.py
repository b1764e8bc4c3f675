"""API keys. Lookup for authentication goes through the SECURITY DEFINER function
``auth_find_api_key`` (the organisation is not known yet); everything else runs inside a
tenant transaction and sees that organisation's keys only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from compliance.models.auth import ApiKeyOut, Role

# psycopg (dict_row) is imported inside the functions: handlers import this module at
# cold start, and the driver is only needed once a request reaches the database.
if TYPE_CHECKING:
    import psycopg

_INSERT = """
    INSERT INTO api_keys (org_id, name, prefix, secret_hash, roles, expires_at)
    VALUES (%s, %s, %s, %s, %s, %s)
    RETURNING id, name, prefix, roles, created_at, expires_at, revoked_at
"""
_LIST = (
    "SELECT id, name, prefix, roles, created_at, expires_at, revoked_at FROM api_keys ORDER BY created_at, id"
)
_GET = "SELECT id, name, prefix, roles, created_at, expires_at, revoked_at FROM api_keys WHERE id = %s"
_REVOKE = """
    UPDATE api_keys SET revoked_at = COALESCE(revoked_at, %s) WHERE id = %s
    RETURNING id, name, prefix, roles, created_at, expires_at, revoked_at
"""


@dataclass(frozen=True)
class StoredKey:
    """What authentication needs of a key. Carries its org: the caller scopes by it next."""

    id: UUID
    org_id: UUID
    secret_hash: bytes = field(repr=False)
    roles: frozenset[Role]
    expires_at: datetime | None
    revoked_at: datetime | None


def insert_api_key(
    conn: psycopg.Connection[Any],
    *,
    org_id: UUID,
    name: str,
    prefix: str,
    secret_hash: bytes,
    roles: Sequence[Role],
    expires_at: datetime | None,
) -> ApiKeyOut:
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            _INSERT,
            (org_id, name, prefix, secret_hash, sorted({Role(r).value for r in roles}), expires_at),
        ).fetchone()
    assert row is not None
    return ApiKeyOut.model_validate(row)


def find_key_for_auth(conn: psycopg.Connection[Any], prefix: str) -> StoredKey | None:
    """The key with ``prefix``, from any organisation (works on an unscoped connection)."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT id, org_id, secret_hash, roles, expires_at, revoked_at FROM auth_find_api_key(%s)",
            (prefix,),
        ).fetchone()
    if row is None:
        return None
    return StoredKey(
        id=row["id"],
        org_id=row["org_id"],
        secret_hash=bytes(row["secret_hash"]),
        roles=frozenset(Role(r) for r in row["roles"]),
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


def list_api_keys(conn: psycopg.Connection[Any]) -> list[ApiKeyOut]:
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_LIST).fetchall()
    return [ApiKeyOut.model_validate(row) for row in rows]


def get_api_key(conn: psycopg.Connection[Any], key_id: UUID) -> ApiKeyOut | None:
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_GET, (key_id,)).fetchone()
    return None if row is None else ApiKeyOut.model_validate(row)


def revoke_api_key(conn: psycopg.Connection[Any], key_id: UUID, now: datetime) -> ApiKeyOut | None:
    """Revoke a key; revoking again keeps the first revocation time. None if not found."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_REVOKE, (now, key_id)).fetchone()
    return None if row is None else ApiKeyOut.model_validate(row)


def mark_api_key_used(conn: psycopg.Connection[Any], key_id: UUID, at: datetime) -> None:
    """Record a use of the key; never moves ``last_used_at`` backwards."""
    conn.execute(
        "UPDATE api_keys SET last_used_at = %s WHERE id = %s AND (last_used_at IS NULL OR last_used_at < %s)",
        (at, key_id, at),
    )
