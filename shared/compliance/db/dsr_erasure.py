"""The SQL of a data subject's erasure (compliance.dsr.erase): one statement per plan step.

Everything runs on the caller's connection, inside its ``Database.tenant(org_id)`` transaction:
RLS shows only that organisation's rows, and every statement names the scope again
(``org_id = %s``), so a table whose policy were missing still touches only this org's rows.

Table and column names come from the erasure plan (the catalog) and reach SQL only as
:class:`psycopg.sql.Identifier`, after a check against the catalog's identifier pattern and the
step's own columns; values (org, subject) are always parameters. Driver errors leave as
``DataAccessError``. The application role may delete subjects and clear
``usage_records.subject_id`` since migration 0008; nothing else.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID

from compliance.db.connection import driver_errors
from compliance.dsr.erasure_plan import TableErasure

# psycopg is imported inside the functions: handlers import this module at cold start.
if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

__all__ = [
    "ORG_COLUMN",
    "SealedValue",
    "SubjectKeys",
    "apply_step",
    "lingering_rows",
    "sample_sealed",
    "subject_keys",
]

#: Every linked table is tenant data with this column (the statements name the scope with it).
ORG_COLUMN = "org_id"
# Unquoted PostgreSQL identifiers as the migrations write them (the catalog's own rule).
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_KEYS = """
    SELECT count(*) FILTER (WHERE destroyed_at IS NULL) AS live, count(*) AS total
    FROM data_keys WHERE org_id = %s AND subject_id = %s
"""


class SealedValue(NamedTuple):
    """A ciphertext of the subject read before the erasure, to prove afterwards that it no longer
    decrypts. Held in memory only, never logged nor written anywhere."""

    table: str
    column: str
    text: str


class SubjectKeys(NamedTuple):
    live: int  # keys that still unwrap
    total: int  # live + destroyed (tombstones included)


def _name(name: str) -> sql.Identifier:
    from psycopg import sql

    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a catalog identifier: {name!r}")
    return sql.Identifier(name)


def _checked(step: TableErasure, columns: tuple[str, ...]) -> None:
    """The step must be the catalog's: its columns include the link, the org and ``columns``."""
    known = {c.column for c in step.columns}
    unknown = sorted({step.subject_link, ORG_COLUMN, *columns} - known)
    if unknown:
        raise ValueError(f"{step.table}: columns not in the plan: {unknown}")


def _where(step: TableErasure) -> sql.Composed:
    from psycopg import sql

    return sql.SQL("{org} = %s AND {link} = %s").format(org=_name(ORG_COLUMN), link=_name(step.subject_link))


def _count(conn: psycopg.Connection[Any], query: sql.Composed, params: tuple[Any, ...]) -> int:
    from psycopg.rows import tuple_row

    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(query, params).fetchone()
    return int(row[0]) if row is not None else 0


def apply_step(conn: psycopg.Connection[Any], step: TableErasure, org_id: UUID, subject_id: UUID) -> int:
    """Apply one plan step to the subject's rows; the rows deleted, updated or retained.

    ``delete``: the rows go. ``update``: the step's ``set_null`` columns are set to NULL (the
    link itself, when anonymized, so the rows no longer name the subject). ``retain``: nothing
    changes, the rows are counted."""
    from psycopg import sql

    _checked(step, step.set_null)
    table = _name(step.table)
    params = (org_id, subject_id)
    if step.action == "retain":
        return _count(conn, sql.SQL("SELECT count(*) FROM {} WHERE {}").format(table, _where(step)), params)
    if step.action == "delete":
        query = sql.SQL("DELETE FROM {} WHERE {}").format(table, _where(step))
    else:
        if not step.set_null:  # pragma: no cover - the plan makes an update only with set_null columns
            raise ValueError(f"{step.table}: an update step without columns to clear")
        assignments = sql.SQL(", ").join(sql.SQL("{} = NULL").format(_name(c)) for c in step.set_null)
        query = sql.SQL("UPDATE {} SET {} WHERE {}").format(table, assignments, _where(step))
    with driver_errors(), conn.cursor() as cur:
        cur.execute(query, params)
        return max(cur.rowcount, 0)


def sample_sealed(
    conn: psycopg.Connection[Any], step: TableErasure, org_id: UUID, subject_id: UUID, *, limit: int
) -> list[SealedValue]:
    """Up to ``limit`` ciphertexts per crypto-shredded column of the subject's rows (before they
    are changed): the verification tries them after the key is destroyed."""
    from psycopg import sql
    from psycopg.rows import tuple_row

    _checked(step, step.shredded)
    found: list[SealedValue] = []
    for column in step.shredded:
        query = sql.SQL("SELECT {col} FROM {table} WHERE {where} AND {col} IS NOT NULL LIMIT %s").format(
            col=_name(column), table=_name(step.table), where=_where(step)
        )
        with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
            rows = cur.execute(query, (org_id, subject_id, limit)).fetchall()
        found.extend(SealedValue(step.table, column, str(row[0])) for row in rows)
    return found


def lingering_rows(conn: psycopg.Connection[Any], step: TableErasure, org_id: UUID, subject_id: UUID) -> int:
    """After the erasure: the subject's rows that should be gone or cleared and are not.

    ``delete``: rows still linked. ``update``: linked rows with a cleared column not NULL (every
    linked row when the link itself is cleared). ``retain``: rows kept, which is their purpose."""
    from psycopg import sql

    _checked(step, step.set_null)
    table = _name(step.table)
    query = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(table, _where(step))
    if step.action == "update":
        pending = sql.SQL(" OR ").join(sql.SQL("{} IS NOT NULL").format(_name(c)) for c in step.set_null)
        query = sql.SQL("SELECT count(*) FROM {} WHERE {} AND ({})").format(table, _where(step), pending)
    return _count(conn, query, (org_id, subject_id))


def subject_keys(conn: psycopg.Connection[Any], org_id: UUID, subject_id: UUID) -> SubjectKeys:
    """How many data keys of the subject exist and how many still unwrap."""
    from psycopg.rows import tuple_row

    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(_KEYS.encode(), (org_id, subject_id)).fetchone()
    return SubjectKeys(0, 0) if row is None else SubjectKeys(int(row[0]), int(row[1]))
