"""Organisations (tenants). Created with the owner's connection: the application role may
read its own organisation and change its settings. psycopg is imported inside the functions:
the admin handler imports this module at cold start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class Organisation:
    id: UUID
    name: str
    created_at: datetime
    settings: dict[str, Any]


def create_organisation(
    conn: psycopg.Connection[Any],
    name: str,
    *,
    settings: Mapping[str, Any] | None = None,
    org_id: UUID | None = None,
) -> UUID:
    """Insert an organisation and return its id (owner/superuser connection: seeding, tooling).

    ``org_id`` pins the id (the local demo organisation that the sample events name).
    """
    from psycopg.rows import tuple_row
    from psycopg.types.json import Jsonb

    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(
            "INSERT INTO organisations (id, name, settings) VALUES (COALESCE(%s, gen_random_uuid()), %s, %s)"
            " RETURNING id",
            (org_id, name, Jsonb(dict(settings or {}))),
        ).fetchone()
    assert row is not None
    new_id: UUID = row[0]
    return new_id


def get_organisation(conn: psycopg.Connection[Any], org_id: UUID) -> Organisation | None:
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT id, name, created_at, settings FROM organisations WHERE id = %s", (org_id,)
        ).fetchone()
    return None if row is None else Organisation(**row)


def get_setting(conn: psycopg.Connection[Any], org_id: UUID, key: str) -> dict[str, Any] | None:
    """One entry of the organisation's settings document (``None`` when unset)."""
    from psycopg.rows import tuple_row

    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT settings -> %s FROM organisations WHERE id = %s", (key, org_id)).fetchone()
    value = None if row is None else row[0]
    return value if isinstance(value, dict) else None


def set_setting(
    conn: psycopg.Connection[Any], org_id: UUID, key: str, value: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Replace one entry of the settings document; returns the previous value. The row is
    locked first, so concurrent changes are applied (and audited) one after the other."""
    from psycopg.rows import tuple_row
    from psycopg.types.json import Jsonb

    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(
            "SELECT settings -> %s FROM organisations WHERE id = %s FOR UPDATE", (key, org_id)
        ).fetchone()
        if row is None:
            raise LookupError("organisation not found")
        cur.execute(
            "UPDATE organisations SET settings = jsonb_set(settings, ARRAY[%s], %s) WHERE id = %s",
            (key, Jsonb(dict(value)), org_id),
        )
    previous = row[0]
    return previous if isinstance(previous, dict) else None
