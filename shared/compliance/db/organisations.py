"""Organisations (tenants). Created with the owner's connection: the application role may
only read its own organisation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb


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
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT id, name, created_at, settings FROM organisations WHERE id = %s", (org_id,)
        ).fetchone()
    return None if row is None else Organisation(**row)
